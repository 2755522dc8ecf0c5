#!/usr/bin/env python3
"""modelserver-sidecar against other proxies, side by side in one run (a report, not a test).

Every proxy fronts the same origin: an nginx that answers `return 200` (one worker process,
access log off). Proxy mode: the proxy talks to the origin over loopback TCP. Serve mode: the
sidecar runs that nginx as its managed worker on a Unix socket, and an nginx proxy points at the
very same socket. Load: `wrk -t1` at 1 and 16 keep-alive connections, GET /, on loopback only.
Rounds interleave every proxy and concurrency so all see the same machine state; each figure is
the median over rounds. CPU per request is the proxy process's own utime+stime (children not
counted: the origin is not the proxy's cost) divided by the requests wrk completed. RSS is the
proxy process's peak (VmHWM) at the end of the run.

Table 1 (access log off): direct to the origin (reference), the sidecar in proxy mode, nginx,
HAProxy, Knative's queue-proxy, the sidecar in serve mode, nginx to the worker's Unix socket.
Table 2 (access log on): the sidecar (its log lines on stderr, redirected to a file) against
nginx with a buffered access log (`access_log file buffer=64k`), in both modes.

Usage (make bench-proxies sets these): SIDECAR=path QUEUE_PROXY=path bench/proxies.py
Knobs (environment): ROUNDS (3), SECONDS (8), CONCURRENCY ("1 16"), PROXIES (all; names as in
the tables' first column, separated by ";"), OUT (a directory for the raw wrk output; a temporary
one by default), RUNTIME_THREADS (the sidecar's, 1), SIDECAR_BEFORE (another sidecar binary, say
the previous release, measured in the same run as "sidecar before" rows).
"""

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from nginx_conf import main_conf as nginx_main_conf

SIDECAR = os.environ.get("SIDECAR") or sys.exit("set SIDECAR to the sidecar binary")
SIDECAR_BEFORE = os.environ.get("SIDECAR_BEFORE", "")
QUEUE_PROXY = os.environ.get("QUEUE_PROXY", "")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = int(os.environ.get("SECONDS", "8"))
CONCURRENCY = [int(c) for c in os.environ.get("CONCURRENCY", "1 16").split()]
RUNTIME_THREADS = os.environ.get("RUNTIME_THREADS", "1")
ONLY = [p.strip() for p in os.environ.get("PROXIES", "").split(";") if p.strip()]
WORK = tempfile.mkdtemp(prefix="bench-proxies-")
OUT = os.environ.get("OUT") or WORK
os.makedirs(OUT, exist_ok=True)
TICK = os.sysconf("SC_CLK_TCK")
PROCS = []


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, argv, env=None, cwd=None):
    log = open(os.path.join(WORK, f"{slug(name)}.log"), "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    PROCS.append(proc)
    return proc


def wait_http(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def nginx_conf(name, body, access="off"):
    d = os.path.join(WORK, slug(name))
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(nginx_main_conf(d, body, access=access.format(dir=d)))
    return path


def origin_body(listen):
    return f"server {{ listen {listen}; default_type text/plain; location / {{ return 200 \"ok\\n\"; }} }}"


def nginx_proxy_body(port, upstream):
    return f"""upstream origin {{ server {upstream}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}"""


BUFFERED_LOG = "{dir}/access.log combined buffer=64k"


class Target:
    """One proxy under test: the URL wrk loads and the process whose CPU and RSS are counted."""

    def __init__(self, name, table, url, proc):
        self.name, self.table, self.url, self.proc = name, table, url, proc
        self.rounds = {c: [] for c in CONCURRENCY}


def start_sidecar(name, mode, access_log, binary):
    port, admin = free_port(), free_port()
    env = dict(os.environ, MODELSERVER_ACCESS_LOG="true" if access_log else "false")
    common = ["--bind", "127.0.0.1", "--port", str(port), "--admin-port", str(admin),
              "--executor-threads", str(max(CONCURRENCY) * 2), "--runtime-threads", RUNTIME_THREADS,
              "--drain-delay", "0s", "--readiness-path", "/"]
    if mode == "proxy":
        argv = [binary, "proxy", "--upstream", f"127.0.0.1:{ORIGIN_PORT}"] + common
    else:
        sockets = os.path.join(WORK, f"{name}-sockets")
        os.makedirs(sockets)
        env["MODELSERVER_SOCKET_DIR"] = sockets
        conf = nginx_conf(f"{name}-worker", origin_body(f"unix:{sockets}/worker-0.sock"))
        argv = [binary, "serve", "--workers", "1"] + common + ["--", "nginx", "-e", "stderr", "-c", conf]
    proc = start(name, argv, env=env)
    wait_http(f"http://127.0.0.1:{admin}/readyz")
    sock = os.path.join(WORK, f"{name}-sockets", "worker-0.sock") if mode == "serve" else None
    return f"http://127.0.0.1:{port}/", proc, sock


def start_all():
    global ORIGIN_PORT
    ORIGIN_PORT = free_port()
    origin = start("origin", ["nginx", "-e", "stderr", "-c", nginx_conf("origin", origin_body(f"127.0.0.1:{ORIGIN_PORT}"))])
    wait_http(f"http://127.0.0.1:{ORIGIN_PORT}/")
    targets = [Target("direct to the origin", "off", f"http://127.0.0.1:{ORIGIN_PORT}/", origin)]

    def nginx(name, table, upstream, access="off"):
        port = free_port()
        proc = start(name, ["nginx", "-e", "stderr", "-c", nginx_conf(name, nginx_proxy_body(port, upstream), access)])
        wait_http(f"http://127.0.0.1:{port}/")
        targets.append(Target(name, table, f"http://127.0.0.1:{port}/", proc))

    def sidecar(name, table, mode, log, binary=SIDECAR):
        url, proc, sock = start_sidecar(slug(name), mode, log, binary)
        targets.append(Target(name, table, url, proc))
        return sock

    up = f"127.0.0.1:{ORIGIN_PORT}"
    sidecar("sidecar, proxy mode", "off", "proxy", False)
    nginx("nginx", "off", up)
    port = free_port()
    cfg = os.path.join(WORK, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend front
  bind 127.0.0.1:{port}
  default_backend origin
backend origin
  server origin {up}
""")
    proc = start("haproxy", ["haproxy", "-db", "-f", cfg])
    wait_http(f"http://127.0.0.1:{port}/")
    targets.append(Target("HAProxy", "off", f"http://127.0.0.1:{port}/", proc))
    if QUEUE_PROXY:
        port = free_port()
        env = dict(os.environ, CONTAINER_CONCURRENCY="0", QUEUE_SERVING_PORT=str(port),
                   QUEUE_SERVING_TLS_PORT=str(free_port()), USER_PORT=str(ORIGIN_PORT),
                   REVISION_TIMEOUT_SECONDS="300", SERVING_LOGGING_CONFIG="",
                   SERVING_LOGGING_LEVEL="error", SERVING_NAMESPACE="bench", SERVING_CONFIGURATION="bench",
                   SERVING_REVISION="bench", SERVING_POD="bench", SERVING_POD_IP="127.0.0.1")
        proc = start("queue-proxy", [QUEUE_PROXY], env=env)
        wait_http(f"http://127.0.0.1:{port}/")
        targets.append(Target("queue-proxy", "off", f"http://127.0.0.1:{port}/", proc))
    sock = sidecar("sidecar, serve mode", "off", "serve", False)
    nginx("nginx to the worker's socket", "off", f"unix:{sock}")
    sidecar("sidecar, proxy mode, log on", "on", "proxy", True)
    nginx("nginx, buffered log", "on", up, BUFFERED_LOG)
    sock = sidecar("sidecar, serve mode, log on", "on", "serve", True)
    nginx("nginx to the worker's socket, buffered log", "on", f"unix:{sock}", BUFFERED_LOG)
    if SIDECAR_BEFORE:
        sidecar("sidecar before, proxy mode", "off", "proxy", False, SIDECAR_BEFORE)
        sidecar("sidecar before, serve mode", "off", "serve", False, SIDECAR_BEFORE)
        sidecar("sidecar before, proxy mode, log on", "on", "proxy", True, SIDECAR_BEFORE)
        sidecar("sidecar before, serve mode, log on", "on", "serve", True, SIDECAR_BEFORE)
    return [t for t in targets if not ONLY or t.name in ONLY]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def wrk(url, connections, seconds, tag):
    res = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True, timeout=seconds + 60)
    with open(os.path.join(OUT, f"{tag}.txt"), "w") as f:
        f.write(res.stdout)
    text = res.stdout
    if not re.search(r"^\s+99%\s+[\d.]+(us|ms|s)\b", text, re.M):
        raise RuntimeError(f"wrk {url} -c{connections}: no latency distribution:\n{text}\n{res.stderr}")
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock_err = re.search(r"Socket errors: (.*)", text)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50": to_us(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)),
        "p99": to_us(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)),
        "errors": (int(errors.group(1)) if errors else 0) + (1 if sock_err else 0),
    }


def measure(target, connections, rnd):
    pid = target.proc.pid
    before = cpu_ticks(pid)
    r = wrk(target.url, connections, SECONDS, f"{slug(target.name)}-c{connections}-r{rnd}")
    r["cpu_us"] = (cpu_ticks(pid) - before) / TICK * 1e6 / max(r["requests"], 1)
    target.rounds[connections].append(r)


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def report(targets):
    print(f"- date: {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}; machine: {os.cpu_count()} cores, "
          f"{cpu_model()}; load generator, proxies and origin share them")
    print(f"- wrk -t1, {SECONDS} s per run, {ROUNDS} rounds interleaving every proxy, median of the rounds; "
          f"sidecar runtime threads {RUNTIME_THREADS}")
    print(f"- versions: {version(['nginx', '-v'])}; {version(['haproxy', '-v'])}; sidecar {SIDECAR}"
          + (f"; sidecar before {SIDECAR_BEFORE}" if SIDECAR_BEFORE else ""))
    print()
    for table, title in (("off", "Access log off"), ("on", "Access log on (nginx: buffer=64k)")):
        rows = [t for t in targets if t.table == table]
        if not rows:
            continue
        print(f"### {title}\n")
        print("| proxy | conn. | req/s | p50 µs | p99 µs | CPU µs/req | peak RSS MiB | errors |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for c in CONCURRENCY:
            for t in rows:
                rs = t.rounds[c]
                if not rs:
                    continue
                print(f"| {t.name} | {c} | {med(rs, 'rps'):.0f} | {med(rs, 'p50'):.0f} | {med(rs, 'p99'):.0f} "
                      f"| {med(rs, 'cpu_us'):.1f} | {t.rss / 1024:.1f} | {sum(r['errors'] for r in rs)} |")
        print()


PAIRS = [("sidecar, proxy mode", "nginx"), ("sidecar, serve mode", "nginx to the worker's socket"),
         ("sidecar, proxy mode, log on", "nginx, buffered log"),
         ("sidecar, serve mode, log on", "nginx to the worker's socket, buffered log")]


def against_nginx(targets):
    """The issue's targets: CPU per request and p50 at or below nginx's, same mode and log."""
    by_name = {t.name: t for t in targets}
    print("### The sidecar against nginx (same mode, same log setting)\n")
    print("| sidecar | conn. | CPU µs/req sidecar / nginx | ratio | p50 µs sidecar / nginx | difference |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for c in CONCURRENCY:
        for ours, theirs in PAIRS:
            a, b = by_name.get(ours), by_name.get(theirs)
            if not a or not b or not a.rounds[c] or not b.rounds[c]:
                continue
            ca, cb = med(a.rounds[c], "cpu_us"), med(b.rounds[c], "cpu_us")
            pa, pb = med(a.rounds[c], "p50"), med(b.rounds[c], "p50")
            print(f"| {ours} | {c} | {ca:.1f} / {cb:.1f} | {ca / cb:.2f} | {pa:.0f} / {pb:.0f} | {pa - pb:+.0f} |")
    print()


def cpu_model():
    with open("/proc/cpuinfo") as f:
        m = re.search(r"model name\s*:\s*(.*)", f.read())
    return m.group(1).strip() if m else "?"


def version(argv):
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (r.stdout + r.stderr).strip().splitlines()[0]


def main():
    targets = start_all()
    for t in targets:  # warm up: connection pools, page cache
        for c in CONCURRENCY:
            wrk(t.url, c, 1, f"warmup-{slug(t.name)}-c{c}")
    for rnd in range(1, ROUNDS + 1):
        for c in CONCURRENCY:
            for t in targets:
                measure(t, c, rnd)
        print(f"round {rnd}/{ROUNDS} done", file=sys.stderr, flush=True)
    for t in targets:
        t.rss = hwm_kib(t.proc.pid)
    report(targets)
    against_nginx(targets)


def stop_all():
    for proc in reversed(PROCS):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(PROCS):
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    for tool in ("nginx", "haproxy", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (make bench-proxies installs it with apt-get)")
    try:
        main()
    finally:
        stop_all()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(WORK, ignore_errors=True)
