"""examples/fastapi/app.py with a model that takes $IRIS_LOAD_DELAY seconds to load.

For the start-to-ready measurement of `make bench-compare` only: the FastAPI example has no
load-delay knob (the stdlib example has IRIS_LOAD_DELAY), so this module wraps the example app's
own lifespan with a blocking sleep first, as a real model load (torch.load, reading weights) blocks
the event loop. Everything else is the example app unchanged. Run it with the example's directory
on the import path:

    PYTHONPATH=examples/fastapi IRIS_LOAD_DELAY=2 python -m uvicorn --app-dir bench iris_slow_start:app
"""

import os
import time
from contextlib import asynccontextmanager

import app as example  # examples/fastapi/app.py

LOAD_DELAY = float(os.environ.get("IRIS_LOAD_DELAY", "0"))
_example_lifespan = example.app.router.lifespan_context


@asynccontextmanager
async def _slow_lifespan(app):
    time.sleep(LOAD_DELAY)  # blocking on purpose: a model load does not yield to the event loop
    async with _example_lifespan(app) as state:
        yield state


example.app.router.lifespan_context = _slow_lifespan
app = example.app
