"""The iris model as a FastAPI app, run by modelserver-sidecar as managed workers.

Each worker is one uvicorn process on its own Unix socket:

    modelserver-sidecar serve --workers 2 -- \
        python -m uvicorn --uds '$(MODELSERVER_SOCKET)' --app-dir examples/fastapi app:app

The sidecar expands `$(MODELSERVER_SOCKET)` per worker, waits for GET /ready (200 once the
lifespan has loaded the model), and forwards POST /predict. The model is the same logistic
regression as examples/iris (model.json beside this file, else ../iris/model.json, or $IRIS_MODEL).
Sync endpoints run in a thread pool sized to MODELSERVER_EXECUTOR_THREADS, the number of requests
the sidecar gives each worker at once.
"""

import json
import math
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Union

import anyio.to_thread
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

HERE = Path(__file__).resolve().parent
WORKER_ID = int(os.environ.get("MODELSERVER_WORKER_ID", "0"))
EXECUTOR_THREADS = int(os.environ.get("MODELSERVER_EXECUTOR_THREADS", "4"))


def model_path() -> Path:
    if os.environ.get("IRIS_MODEL"):
        return Path(os.environ["IRIS_MODEL"])
    beside = HERE / "model.json"
    return beside if beside.exists() else HERE.parent / "iris" / "model.json"


class IrisModel:
    """Multinomial logistic regression: argmax/softmax of intercept + coefficients . x."""

    def __init__(self, spec: dict):
        self.features: list[str] = spec["features"]
        self.classes: list[str] = spec["classes"]
        self.coefficients: list[list[float]] = spec["coefficients"]
        self.intercepts: list[float] = spec["intercepts"]

    def row(self, raw: Union[list[float], dict[str, float]]) -> list[float]:
        if isinstance(raw, dict):
            missing = [f for f in self.features if f not in raw]
            if missing:
                raise ValueError(f"row is missing {', '.join(missing)}")
            raw = [raw[f] for f in self.features]
        if len(raw) != len(self.features):
            raise ValueError(f"each row needs {len(self.features)} numbers: {', '.join(self.features)}")
        return [float(v) for v in raw]

    def predict(self, rows):
        labels, probabilities = [], []
        for raw in rows:
            x = self.row(raw)
            scores = [b + sum(w * v for w, v in zip(ws, x)) for ws, b in zip(self.coefficients, self.intercepts)]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            total = sum(exps)
            labels.append(self.classes[scores.index(top)])
            probabilities.append([round(e / total, 6) for e in exps])
        return labels, probabilities


class PredictRequest(BaseModel):
    instances: list[Union[list[float], dict[str, float]]] = Field(min_length=1)


class PredictResponse(BaseModel):
    predictions: list[str]
    probabilities: list[list[float]]
    classes: list[str]
    worker: int
    pid: int
    request_id: Union[str, None] = None


MODEL: dict[str, IrisModel] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI):
    anyio.to_thread.current_default_thread_limiter().total_tokens = EXECUTOR_THREADS
    with open(model_path(), encoding="utf-8") as f:
        MODEL["iris"] = IrisModel(json.load(f))
    yield
    MODEL.clear()


app = FastAPI(title="iris", description="Iris logistic regression behind modelserver-sidecar", lifespan=lifespan)


@app.get("/ready")
def ready():
    if "iris" not in MODEL:
        raise HTTPException(status_code=503, detail="model not loaded")
    return {"ready": True, "worker": WORKER_ID}


@app.post("/predict", response_model=PredictResponse)
def predict(body: PredictRequest, x_request_id: Annotated[Union[str, None], Header()] = None):
    model = MODEL["iris"]
    try:
        labels, probabilities = model.predict(body.instances)
    except ValueError as e:
        raise HTTPException(status_code=400, detail=str(e)) from None
    return PredictResponse(
        predictions=labels,
        probabilities=probabilities,
        classes=model.classes,
        worker=WORKER_ID,
        pid=os.getpid(),
        request_id=x_request_id,
    )
