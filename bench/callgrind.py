#!/usr/bin/env python3
"""User-space instructions per request in modelserver-sidecar, counted by valgrind's callgrind
(repeatable, unlike timings on a shared machine). A profile, not a test.

Two paths, one worker, one connection (oha -c 1), POST /predict with the iris body:
  503   every request refused at once: a worker that never gets ready (`sleep`) and --max-queue 0
  fwd   every request forwarded to examples/iris/worker.py over its Unix socket
Each path runs twice (N1 and N2 requests); the difference divided by N2-N1 is the cost of one
request without start-up and shutdown. Prints the instructions per request by crate and the top
functions (self cost). Needs a sidecar with symbols (make bench-callgrind builds one).

Usage: SIDECAR=path [OHA=path] bench/callgrind.py
Knobs: N1 (300), N2 (1300), PATHS ("503 fwd"), ACCESS_LOG ("false"; "true" counts the access log
line too), KEEP ("1" keeps the callgrind output files). Without OHA the requests go through one keep-alive connection of Python's http.client.
"""

import collections
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDECAR = os.environ.get("SIDECAR") or sys.exit("set SIDECAR to a sidecar binary with symbols")
OHA = os.environ.get("OHA")
ACCESS_LOG = os.environ.get("ACCESS_LOG", "false")
N1, N2 = int(os.environ.get("N1", "300")), int(os.environ.get("N2", "1300"))
PATHS = os.environ.get("PATHS", "503 fwd").split()
BODY = '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'
WORK = tempfile.mkdtemp(prefix="bench-callgrind-")


def run(path, n):
    out = os.path.join(WORK, f"cg-{path}-{n}.out")
    log_path = os.path.join(WORK, f"log-{path}-{n}.txt")
    worker = ["sleep", "600"] if path == "503" else [sys.executable, os.path.join(ROOT, "examples", "iris", "worker.py")]
    extra = ["--max-queue", "0"] if path == "503" else []
    env = dict(os.environ, MODELSERVER_ACCESS_LOG=ACCESS_LOG, MODELSERVER_SOCKET_DIR=os.path.join(WORK, f"sock-{path}-{n}"))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", SIDECAR, "serve",
                                 "--bind", "127.0.0.1", "--port", "0", "--admin-port", "0", "--workers", "1",
                                 "--drain-delay", "0s"] + extra + ["--"] + worker,
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        public = admin = None
        deadline = time.monotonic() + 120
        while public is None and time.monotonic() < deadline:
            text = open(log_path).read()
            p, a = re.search(r"public_addr=([0-9.:]+)", text), re.search(r"admin_addr=([0-9.:]+)", text)
            if p and a:
                public, admin = p.group(1), a.group(1)
            time.sleep(0.1)
        if public is None:
            raise RuntimeError(f"sidecar did not start under valgrind:\n{open(log_path).read()[-2000:]}")
        if path != "503":
            while time.monotonic() < deadline:
                r = subprocess.run(["curl", "-fs", "-o", "/dev/null", f"http://{admin}/readyz"], check=False)
                if r.returncode == 0:
                    break
                time.sleep(0.2)
        if OHA:
            res = subprocess.run([OHA, "--no-tui", "-n", str(n), "-c", "1", "-m", "POST", "-T", "application/json",
                                  "-d", BODY, "--output-format", "json", f"http://{public}/predict"],
                                 capture_output=True, text=True, check=True, timeout=600)
            codes = json.loads(res.stdout).get("statusCodeDistribution")
        else:
            codes = post_keep_alive(public, n)
        print(f"  {path} x{n}: status codes {codes}", file=sys.stderr, flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", out],
                          capture_output=True, text=True, check=True).stdout
    return parse(text)


def post_keep_alive(public, n):
    """Sends n POSTs on one keep-alive connection; returns the status code counts."""
    host, port = public.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    codes = collections.Counter()
    for _ in range(n):
        conn.request("POST", "/predict", body=BODY, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        codes[str(response.status)] += 1
        if response.getheader("connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.close()
    return dict(codes)


def parse(text):
    """(per crate, per function) self instruction counts from callgrind_annotate."""
    crates, funcs = collections.Counter(), collections.Counter()
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([\d. %]+\)\s+(\S.*?):(.*?)( \[.*\])?$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        ir, file, func = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        crate = re.search(r"registry/src/[^/]+/([A-Za-z0-9_\-]+?)-\d", file)
        if crate:
            key = crate.group(1)
        elif "/sidecar/src/" in file:
            key = "sidecar (own code)"
        elif "/rustc/" in file:
            key = "Rust std/core/alloc (inlined)"
        elif file == "???":
            key = "libc (malloc/free, memcpy, syscall stubs)"
        else:
            key = file
        crates[key] += ir
        funcs[(key, func[:90])] += ir
    return crates, funcs


def main():
    for path in PATHS:
        (c1, f1), (c2, f2) = run(path, N1), run(path, N2)
        n = N2 - N1
        total = (sum(c2.values()) - sum(c1.values())) / n
        label = "refused with 503 (queue full)" if path == "503" else "forwarded to the stdlib iris worker"
        print(f"### {label}: {total:,.0f} user-space instructions per request\n")
        print("| instructions | share | where |\n| ---: | ---: | --- |")
        for k, v in sorted(((k, (c2[k] - c1.get(k, 0)) / n) for k in c2), key=lambda x: -x[1])[:12]:
            print(f"| {v:,.0f} | {100 * v / total:.1f}% | {k} |")
        print("\nTop functions (self):\n\n| instructions | share | function |\n| ---: | ---: | --- |")
        for (k, fn), v in sorted((((k, fn), (f2[(k, fn)] - f1.get((k, fn), 0)) / n) for (k, fn) in f2),
                                 key=lambda x: -x[1])[:12]:
            print(f"| {v:,.0f} | {100 * v / total:.1f}% | {fn.replace('|', '/')} ({k}) |")
        print()


if __name__ == "__main__":
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        sys.exit("valgrind is needed (Debian: apt-get install valgrind)")
    try:
        main()
    finally:
        if os.environ.get("KEEP") == "1":
            print(f"callgrind output kept in {WORK}", file=sys.stderr)
        else:
            shutil.rmtree(WORK, ignore_errors=True)
