#!/usr/bin/env python3
"""An Open Inference Protocol style gRPC model server (grpcio from PyPI), for modelserver-sidecar.

It serves gRPC (HTTP/2 without TLS) on one port and an HTTP/1.1 readiness path on another, as
KServe, Triton and MLServer do (REST and gRPC on separate ports). Messages are JSON bytes so the
example needs no generated code:

- /inference.GRPCInferenceService/ModelInfer (unary): {"inputs": [[5.1, 3.5, 1.4, 0.2], ...]}
  -> {"outputs": ["setosa", ...], "worker": N}, with the iris model of examples/iris.
- /inference.GRPCInferenceService/ModelInferStream (server streaming): the same request, one
  message per row.
- /test.Slow/Wait (unary, for tests): answers after {"seconds": S}.

Managed mode: `modelserver-sidecar serve --worker-port-base 8000 --worker-grpc-port-base 8100 --
python examples/grpc/server.py` (each worker reads MODELSERVER_WORKER_PORT and
MODELSERVER_GRPC_PORT). Proxy mode: `python examples/grpc/server.py --port 8000 --grpc-port 8001`
beside `modelserver-sidecar proxy --upstream 127.0.0.1:8000 --upstream-grpc 127.0.0.1:8001`.
"""

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
WORKER_ID = int(os.environ.get("MODELSERVER_WORKER_ID", "0"))
SERVICE = "inference.GRPCInferenceService"
MODEL = json.loads((HERE.parent / "iris" / "model.json").read_text())


def log(message):
    print(f"[grpc worker {WORKER_ID} pid {os.getpid()}] {message}", file=sys.stderr, flush=True)


def classify(row):
    scores = [
        b + sum(w * float(x) for w, x in zip(weights, row))
        for weights, b in zip(MODEL["coefficients"], MODEL["intercepts"])
    ]
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    return MODEL["classes"][exps.index(max(exps))]


def rows(request, context):
    try:
        inputs = json.loads(request)["inputs"]
        if not all(isinstance(r, list) and len(r) == len(MODEL["features"]) for r in inputs):
            raise ValueError(f"each input needs {len(MODEL['features'])} numbers")
        return inputs
    except (ValueError, KeyError, TypeError) as e:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))


def model_infer(request, context):
    outputs = [classify(r) for r in rows(request, context)]
    return json.dumps({"outputs": outputs, "worker": WORKER_ID}).encode()


def model_infer_stream(request, context):
    for r in rows(request, context):
        yield json.dumps({"output": classify(r), "worker": WORKER_ID}).encode()


def slow_wait(request, context):
    time.sleep(float(json.loads(request).get("seconds", 1)))
    return json.dumps({"waited": True, "worker": WORKER_ID}).encode()


def identity(b):
    return b


def grpc_server(port, threads):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    unary = lambda f: grpc.unary_unary_rpc_method_handler(  # noqa: E731
        f, request_deserializer=identity, response_serializer=identity)
    stream = grpc.unary_stream_rpc_method_handler(
        model_infer_stream, request_deserializer=identity, response_serializer=identity)
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler(SERVICE, {
            "ModelInfer": unary(model_infer),
            "ModelInferStream": stream,
        }),
        grpc.method_handlers_generic_handler("test.Slow", {"Wait": unary(slow_wait)}),
    ))
    server.add_insecure_port(f"127.0.0.1:{port}")
    return server


class Ready(BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/ready"
        body = json.dumps({"ready": True} if ok else {"error": "no such path"}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("MODELSERVER_WORKER_PORT", "0")),
                        help="HTTP port of the readiness path (default $MODELSERVER_WORKER_PORT)")
    parser.add_argument("--grpc-port", type=int, default=int(os.environ.get("MODELSERVER_GRPC_PORT", "0")),
                        help="gRPC port (default $MODELSERVER_GRPC_PORT)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("MODELSERVER_EXECUTOR_THREADS", "4")))
    args = parser.parse_args()
    if not args.port or not args.grpc_port:
        parser.error("--port and --grpc-port (or MODELSERVER_WORKER_PORT and MODELSERVER_GRPC_PORT) are required")

    server = grpc_server(args.grpc_port, args.threads)
    server.start()
    http = ThreadingHTTPServer(("127.0.0.1", args.port), Ready)
    stopped = threading.Event()

    def stop(signum, frame):
        # Finish the calls in progress, then exit.
        log(f"signal {signum}: stopping")
        threading.Thread(target=lambda: (server.stop(grace=30).wait(), http.shutdown(), stopped.set())).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"serving gRPC on 127.0.0.1:{args.grpc_port}, readiness on 127.0.0.1:{args.port}/ready")
    http.serve_forever()
    stopped.wait()


if __name__ == "__main__":
    main()
