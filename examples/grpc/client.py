#!/usr/bin/env python3
"""A gRPC client (grpcio) for examples/grpc/server.py behind modelserver-sidecar; prints JSON.

    client.py TARGET unary                one ModelInfer call
    client.py TARGET stream               one ModelInferStream call
    client.py TARGET health               grpc.health.v1.Health/Check
    client.py TARGET slow SECONDS [TIMEOUT]   test.Slow/Wait, optionally with a deadline
    client.py TARGET big BYTES            ModelInfer with a request of BYTES bytes
    client.py TARGET invalid              ModelInfer with a row of the wrong length
    client.py TARGET load SECONDS CONCURRENCY   calls until SECONDS have passed, then counts

TARGET is a gRPC target such as 127.0.0.1:8080, or ipv4:127.0.0.1:8080,127.0.0.1:8081 (load
balanced round robin). --token sends "authorization: Bearer TOKEN".
"""

import argparse
import json
import sys
import threading
import time

import grpc

SERVICE = "/inference.GRPCInferenceService/"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]]


def identity(b):
    return b


def status_of(e):
    return {"code": e.code().name, "details": e.details()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("target")
    p.add_argument("what")
    p.add_argument("args", nargs="*")
    p.add_argument("--token")
    a = p.parse_args()
    options = [("grpc.lb_policy_name", "round_robin")]
    if "," in a.target:
        # A list of addresses is no valid :authority.
        options.append(("grpc.default_authority", "modelserver"))
    channel = grpc.insecure_channel(a.target, options=options)
    metadata = [("authorization", f"Bearer {a.token}")] if a.token else None
    request = json.dumps({"inputs": ROWS}).encode()
    unary = lambda path: channel.unary_unary(path, request_serializer=identity, response_deserializer=identity)  # noqa: E731
    try:
        if a.what == "unary":
            out = json.loads(unary(SERVICE + "ModelInfer")(request, metadata=metadata, timeout=30))
        elif a.what == "stream":
            call = channel.unary_stream(SERVICE + "ModelInferStream", request_serializer=identity,
                                        response_deserializer=identity)
            out = [json.loads(m) for m in call(request, metadata=metadata, timeout=30)]
        elif a.what == "health":
            # HealthCheckRequest{} is empty; the response is field 1 = status.
            raw = unary("/grpc.health.v1.Health/Check")(b"", metadata=metadata, timeout=10)
            out = {"status": {1: "SERVING", 2: "NOT_SERVING"}.get(raw[1] if len(raw) > 1 else 0, "UNKNOWN")}
        elif a.what == "slow":
            timeout = float(a.args[1]) if len(a.args) > 1 else 60
            out = json.loads(unary("/test.Slow/Wait")(json.dumps({"seconds": float(a.args[0])}).encode(),
                                                       metadata=metadata, timeout=timeout))
        elif a.what == "invalid":
            out = json.loads(unary(SERVICE + "ModelInfer")(json.dumps({"inputs": [[1.0]]}).encode(),
                                                           metadata=metadata, timeout=30))
        elif a.what == "big":
            pad = b" " * int(a.args[0])
            out = json.loads(unary(SERVICE + "ModelInfer")(request + pad, metadata=metadata, timeout=30))
        elif a.what == "load":
            out = load(unary(SERVICE + "ModelInfer"), request, metadata, float(a.args[0]), int(a.args[1]))
        else:
            p.error(f"unknown call {a.what}")
    except grpc.RpcError as e:
        out = {"error": status_of(e)}
    print(json.dumps(out), flush=True)


def load(call, request, metadata, seconds, concurrency):
    counts = {"ok": 0, "failed": 0, "errors": {}, "workers": {}}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def run():
        while time.monotonic() < end:
            try:
                reply = json.loads(call(request, metadata=metadata, timeout=30))
                with lock:
                    counts["ok"] += 1
                    w = str(reply.get("worker"))
                    counts["workers"][w] = counts["workers"].get(w, 0) + 1
            except grpc.RpcError as e:
                with lock:
                    counts["failed"] += 1
                    key = f"{e.code().name}: {e.details()}"
                    counts["errors"][key] = counts["errors"].get(key, 0) + 1

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for t in threads:
        t.start()
    print(json.dumps({"started": True}), flush=True)
    for t in threads:
        t.join()
    return counts


if __name__ == "__main__":
    sys.exit(main())
