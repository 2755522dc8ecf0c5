#!/usr/bin/env python3
"""Iris model worker for modelserver-sidecar, Python standard library only.

The sidecar starts N copies of this file. Each one loads the logistic-regression model shipped
beside it (model.json), serves plain HTTP/1.1 on the Unix socket in $MODELSERVER_SOCKET, answers
GET /ready with 200 once the model is loaded (503 before), and predicts on POST /predict:

    curl -s localhost:8080/predict -H 'Content-Type: application/json' \
         -d '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'
    {"predictions": ["setosa", "virginica"], "probabilities": [...], "worker": 0, ...}

Rows are lists of the four measurements (cm) or objects keyed by feature name. For tests:
--load-delay makes loading slow, --predict-delay makes answers slow, and --test-hooks adds
endpoints that exercise the sidecar (echo a body's size with the request headers, argv and
token variable the worker saw, answer with chosen headers, stream server-sent events, hold a
response until released); --require-header NAME:VALUE turns away every request without that
header (a backend with its own token). With --port the worker serves TCP instead (proxy mode).
Answers name the $MODEL_VERSION they came from (the canary example sets it).
"""

import argparse
import json
import math
import os
import signal
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_ID = os.environ.get("MODELSERVER_WORKER_ID", "0")
MAX_CHUNK_LINE = 1024


def log(message):
    print(f"[iris worker {WORKER_ID} pid {os.getpid()}] {message}", file=sys.stderr, flush=True)


class Model:
    """Multinomial logistic regression: argmax/softmax of intercept + coefficients . x."""

    def __init__(self, spec):
        self.features = spec["features"]
        self.classes = spec["classes"]
        self.coefficients = spec["coefficients"]
        self.intercepts = spec["intercepts"]
        if len(self.coefficients) != len(self.classes) or any(
            len(row) != len(self.features) for row in self.coefficients
        ):
            raise ValueError("model.json: coefficients do not match classes x features")

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def row(self, raw):
        if isinstance(raw, dict):
            missing = [name for name in self.features if name not in raw]
            if missing:
                raise ValueError(f"row is missing {', '.join(missing)}")
            raw = [raw[name] for name in self.features]
        if not isinstance(raw, list) or len(raw) != len(self.features):
            raise ValueError(f"each row needs {len(self.features)} numbers: {', '.join(self.features)}")
        try:
            values = [float(v) for v in raw]
        except (TypeError, ValueError):
            raise ValueError("row values must be numbers") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError("row values must be finite numbers")
        return values

    def predict(self, rows):
        labels, probabilities = [], []
        for raw in rows:
            x = self.row(raw)
            scores = [b + sum(w * v for w, v in zip(ws, x)) for ws, b in zip(self.coefficients, self.intercepts)]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            total = sum(exps)
            probs = [round(e / total, 6) for e in exps]
            labels.append(self.classes[scores.index(top)])
            probabilities.append(probs)
        return labels, probabilities


class State:
    def __init__(self, args):
        self.args = args
        self.model = None
        self.gates = {}
        self.gates_lock = threading.Lock()

    def gate(self, name):
        with self.gates_lock:
            return self.gates.setdefault(name, threading.Event())

    def load(self):
        try:
            if self.args.load_delay > 0:
                log(f"loading slowly ({self.args.load_delay}s)")
                time.sleep(self.args.load_delay)
            self.model = Model.load(self.args.model)
        except Exception as e:  # noqa: BLE001 - any failure to load ends the worker
            log(f"cannot load the model from {self.args.model}: {e}")
            os._exit(1)
        log(f"model loaded from {self.args.model}")


class BadRequest(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "iris-worker/1"
    state = None  # set in main()

    def address_string(self):
        # Unix socket peers have no address.
        return self.client_address[0] if self.client_address else "unix"

    def log_message(self, fmt, *args):
        if self.state.args.verbose:
            log(fmt % args)

    # -- helpers ------------------------------------------------------------------------------

    def send_json(self, status, payload, extra_headers=()):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        """The whole request body, Content-Length or chunked."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                line = self.rfile.readline(MAX_CHUNK_LINE)
                if not line:
                    raise BadRequest("body ended inside a chunk header")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BadRequest("malformed chunk size") from None
                if size == 0:
                    while self.rfile.readline(MAX_CHUNK_LINE) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                data = self.rfile.read(size)
                if len(data) != size:
                    raise BadRequest("body ended inside a chunk")
                parts.append(data)
                self.rfile.readline(MAX_CHUNK_LINE)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BadRequest("malformed Content-Length") from None
        data = self.rfile.read(n)
        if len(data) != n:
            raise BadRequest("body shorter than Content-Length")
        return data

    def query(self):
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def route(self):
        return urlsplit(self.path).path

    # -- endpoints ----------------------------------------------------------------------------

    def denied(self):
        """--require-header: answer 401 to a request without that header and value."""
        required = self.state.args.require_header
        if not required:
            return False
        name, _, value = required.partition(":")
        if self.headers.get(name.strip()) == value.strip():
            return False
        self.send_json(HTTPStatus.UNAUTHORIZED, {"error": f"{name.strip()} required"})
        return True

    def do_GET(self):
        path = self.route()
        if self.denied():
            return
        if path == "/ready":
            if self.state.model is None:
                self.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "worker": int(WORKER_ID)})
            else:
                self.send_json(HTTPStatus.OK, {"ready": True, "worker": int(WORKER_ID)})
        elif path == "/health":
            self.send_json(HTTPStatus.OK, {"live": True})
        elif path == "/model":
            self.send_json(HTTPStatus.OK, {"features": self.state.model and self.state.model.features})
        elif path == "/stream" and self.state.args.test_hooks:
            self.stream()
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {path}"})

    def do_POST(self):
        path = self.route()
        try:
            body = self.read_body()
        except (BadRequest, ConnectionError, OSError) as e:
            # The sidecar cuts a request off when it crosses the upload limit.
            log(f"request body not read: {e}")
            self.close_connection = True
            return
        if self.denied():
            return
        if path == "/predict":
            self.predict(body)
        elif path == "/echo" and self.state.args.test_hooks:
            self.echo(body)
        elif path == "/release" and self.state.args.test_hooks:
            self.state.gate(self.query().get("gate", "")).set()
            self.send_json(HTTPStatus.OK, {"released": True, "worker": int(WORKER_ID)})
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {path}"})

    def echo(self, body):
        """What reached the worker: body size, request headers (names lowercased), its argv,
        MODELSERVER_AUTH_TOKEN and the names of its environment variables; each
        ?header=Name:Value is added to the response."""
        extra = []
        for item in parse_qs(urlsplit(self.path).query).get("header", []):
            name, _, value = item.partition(":")
            extra.append((name.strip(), value.strip()))
        self.send_json(
            HTTPStatus.OK,
            {
                "bytes": len(body),
                "worker": int(WORKER_ID),
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "argv": sys.argv,
                "env_token": os.environ.get("MODELSERVER_AUTH_TOKEN"),
                "env_names": sorted(os.environ),
            },
            extra,
        )

    def predict(self, body):
        model = self.state.model
        if model is None:
            self.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "model not loaded yet"})
            return
        query = self.query()
        delay = self.state.args.predict_delay
        if self.state.args.test_hooks and "delay" in query:
            delay = float(query["delay"])
        if self.state.args.test_hooks and "gate" in query:
            self.state.gate(query["gate"]).wait()
        if delay > 0:
            time.sleep(delay)
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"})
            return
        rows = payload.get("instances", payload.get("rows")) if isinstance(payload, dict) else payload
        if not isinstance(rows, list) or not rows:
            self.send_json(
                HTTPStatus.BAD_REQUEST,
                {"error": 'send {"instances": [[sepal_length, sepal_width, petal_length, petal_width], ...]}'},
            )
            return
        try:
            labels, probabilities = model.predict(rows)
        except ValueError as e:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return
        self.send_json(
            HTTPStatus.OK,
            {
                "predictions": labels,
                "probabilities": probabilities,
                "classes": model.classes,
                "worker": int(WORKER_ID),
                "workers": int(os.environ.get("MODELSERVER_WORKERS", "1")),
                "executor_threads": int(os.environ.get("MODELSERVER_EXECUTOR_THREADS", "1")),
                "pid": os.getpid(),
                "request_id": self.headers.get("X-Request-ID"),
                "model_version": os.environ.get("MODEL_VERSION"),
            },
        )

    def stream(self):
        """Server-sent events, one per chunk; with gate=NAME, waits for POST /release?gate=NAME
        after the first event, so a test can prove the first event arrived on its own."""
        query = self.query()
        count = int(query.get("chunks", "3"))
        gate = query.get("gate")
        interval = float(query.get("interval", "0"))
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(count):
            if i == 1 and gate:
                self.state.gate(gate).wait()
            elif i > 0 and interval > 0:
                time.sleep(interval)
            event = f"data: {json.dumps({'chunk': i, 'worker': int(WORKER_ID)})}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class QuietErrors:
    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError)):
            # The sidecar gave up on the request (timeout, client gone): nothing to answer.
            log(f"connection closed before the answer was written: {error}")
        else:
            super().handle_error(request, client_address)


class UnixServer(QuietErrors, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TCPServer(QuietErrors, socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def env_float(name, default):
    value = os.environ.get(name)
    return float(value) if value else default


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", default=os.environ.get("MODELSERVER_SOCKET"),
                        help="Unix socket to serve on (default: $MODELSERVER_SOCKET)")
    parser.add_argument("--port", type=int, help="serve TCP on this port instead (proxy mode)")
    parser.add_argument("--host", default="127.0.0.1", help="TCP address with --port")
    parser.add_argument("--model", default=os.path.join(HERE, "model.json"), help="model file")
    parser.add_argument("--load-delay", type=float, default=env_float("IRIS_LOAD_DELAY", 0.0),
                        help="seconds to spend loading (default: $IRIS_LOAD_DELAY or 0)")
    parser.add_argument("--predict-delay", type=float, default=env_float("IRIS_PREDICT_DELAY", 0.0),
                        help="seconds each prediction takes (default: $IRIS_PREDICT_DELAY or 0)")
    parser.add_argument("--test-hooks", action="store_true", default=bool(os.environ.get("IRIS_TEST_HOOKS")),
                        help="add /echo, /stream and /release, and ?delay= and ?gate= on /predict")
    parser.add_argument("--require-header", metavar="NAME:VALUE",
                        help="answer 401 to every request without this header (a backend with its own token)")
    parser.add_argument("--label", default="", help="free text, ignored (tests of $(VAR) expansion read it in argv)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args()

    state = State(args)
    Handler.state = state
    if args.port is not None:
        server = TCPServer((args.host, args.port), Handler)
        where = f"{args.host}:{args.port}"
    elif args.socket:
        if os.path.exists(args.socket):
            os.unlink(args.socket)
        server = UnixServer(args.socket, Handler)
        where = args.socket
    else:
        parser.error("no socket: set MODELSERVER_SOCKET (the sidecar does) or pass --socket or --port")

    def stop(signum, _frame):
        log(f"{signal.Signals(signum).name}: shutting down")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    threading.Thread(target=state.load, daemon=True).start()
    log(f"serving on {where} (executor threads {os.environ.get('MODELSERVER_EXECUTOR_THREADS', '?')})")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.port is None and os.path.exists(args.socket):
            os.unlink(args.socket)
    log("stopped")


if __name__ == "__main__":
    main()
