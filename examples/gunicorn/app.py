"""The iris model as a plain WSGI app under gunicorn, a server that binds TCP only.

modelserver-sidecar runs it as managed workers on TCP: with `--worker-port-base 8000` (the
ModelServer field `spec.model.workerPortBase`) worker i gets MODELSERVER_WORKER_PORT=8000+i and
the sidecar connects to 127.0.0.1 there:

    modelserver-sidecar serve --bind 127.0.0.1 --workers 2 --worker-port-base 8000 -- \
        gunicorn --bind '127.0.0.1:$(MODELSERVER_WORKER_PORT)' --workers 1 \
            --threads '$(MODELSERVER_EXECUTOR_THREADS)' --chdir examples/gunicorn app:application

GET /ready answers 200 once the model is loaded; POST /predict takes {"instances": [[...], ...]}
with rows of the four measurements (cm). The model is the logistic regression of examples/iris
(model.json beside this file, else ../iris/model.json, or $IRIS_MODEL).
"""

import json
import math
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER_ID = int(os.environ.get("MODELSERVER_WORKER_ID", "0"))
WORKER_PORT = os.environ.get("MODELSERVER_WORKER_PORT")


def model_path() -> Path:
    if os.environ.get("IRIS_MODEL"):
        return Path(os.environ["IRIS_MODEL"])
    beside = HERE / "model.json"
    return beside if beside.exists() else HERE.parent / "iris" / "model.json"


MODEL = json.loads(model_path().read_text())


def predict(row):
    if len(row) != len(MODEL["features"]):
        raise ValueError(f"each row needs {len(MODEL['features'])} numbers")
    scores = [
        b + sum(w * float(x) for w, x in zip(weights, row))
        for weights, b in zip(MODEL["coefficients"], MODEL["intercepts"])
    ]
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    return MODEL["classes"][exps.index(max(exps))]


def reply(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    if method == "GET" and path == "/ready":
        return reply(start_response, "200 OK", {"ready": True})
    if method == "POST" and path == "/predict":
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            rows = json.loads(environ["wsgi.input"].read(length))["instances"]
            predictions = [predict(row) for row in rows]
        except (ValueError, KeyError, TypeError) as e:
            return reply(start_response, "400 Bad Request", {"error": str(e)})
        return reply(
            start_response,
            "200 OK",
            {"predictions": predictions, "worker": WORKER_ID, "port": WORKER_PORT},
        )
    return reply(start_response, "404 Not Found", {"error": f"no route {method} {path}"})
