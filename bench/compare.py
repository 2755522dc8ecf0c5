#!/usr/bin/env python3
"""Side by side (a report, never a test): modelserver-sidecar against uvicorn serving the same
Python model, on one machine, in one run, with one load generator (oha).

Servers, two workers each, all serving the iris model of examples/fastapi (POST /predict):
  a   uvicorn --workers 2 on TCP, the FastAPI app            (how DRUM / KServe's server run)
  an  a with TCP_NODELAY restored on its listener (bench/uvicorn_nodelay.py): uvicorn's
      --workers N path leaves Nagle on (Kludex/uvicorn#3149), which costs ~40 ms per keep-alive
      request; `an` shows uvicorn without that bug
  b   modelserver-sidecar serve --workers 2, each worker the same FastAPI app under uvicorn --uds
  c   modelserver-sidecar serve --workers 2, each worker examples/iris/worker.py (stdlib)
  ng  nginx (one process, upstream keepalive, request bodies streamed) in front of the same two
      uvicorn --uds workers as b: a mature front door on the same hop, to tell what the hop costs
      on this machine from what the sidecar costs
  bc  (overload only) b with the queue bounded by a count instead of by time (the defaults before
      maxQueueWait: --max-queue 128, and a wait bound of an hour), to show what the time bound buys
  bt  b with a tight time bound, --max-queue-wait 10ms (latency first: refuses what would wait)
  Other variants of b (VARIANTS below: bq, b1, b1q2, b8) can be named in CONFIGS or OVERLOAD_EXTRA.

Phases (PHASES, all by default, in this order):
  upload    peak RSS (VmRSS sampled every 10 ms) of the sidecar alone and of the whole tree while
            one UPLOAD_BYTES JSON body is POSTed to /predict (fresh servers, after a warm-up)
  closed    closed loop at CONCURRENCY connections, DURATION s each, ROUNDS rounds with the servers
            interleaved (all three run, idle ones cost nothing), median round by 2xx/s
  overload  open loop at twice each server's capacity (its best 2xx/s above) for OVERLOAD_SECONDS,
            with oha's latency correction (latency counts from the intended send time)
  cpu       CPU seconds (utime+stime of the whole process tree, /proc) per 10,000 requests at 16
            connections, CPU_REQUESTS requests per round, ROUNDS rounds, median
  ready     time from spawning the server to ready with a model that takes LOAD_DELAY s to load

Usage (make bench-compare sets the first three):
  SIDECAR=path OHA=path PYTHON=venv-python venv-python bench/compare.py
Prints the report (Markdown) and writes it with the small raw results to RESULTS
(default bench/results/compare-<UTC timestamp>/). Loopback only; every process it starts runs in
its own session and is stopped on exit.
"""

import csv
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from nginx_conf import main_conf as nginx_main_conf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDECAR = os.environ.get("SIDECAR") or sys.exit("set SIDECAR to the sidecar binary")
OHA = os.environ.get("OHA") or sys.exit("set OHA to the oha binary")
PYTHON = os.environ.get("PYTHON") or sys.executable
DURATION = float(os.environ.get("DURATION", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
CONCURRENCY = [int(c) for c in os.environ.get("CONCURRENCY", "1 16 256").split()]
OVERLOAD_SECONDS = float(os.environ.get("OVERLOAD_SECONDS", "30"))
OVERLOAD_CONNECTIONS = int(os.environ.get("OVERLOAD_CONNECTIONS", "512"))
CPU_REQUESTS = int(os.environ.get("CPU_REQUESTS", "10000"))
UPLOAD_BYTES = int(os.environ.get("UPLOAD_BYTES", str(100 * 1000 * 1000)))
LOAD_DELAY = float(os.environ.get("LOAD_DELAY", "2"))
READY_ROUNDS = int(os.environ.get("READY_ROUNDS", "3"))
CONFIGS = os.environ.get("CONFIGS", "a an b ng c").split()
OVERLOAD_EXTRA = os.environ.get("OVERLOAD_EXTRA", "bc").split()
# Configurations measured in the closed loop at these connection counts only (else at all of them).
ONLY_AT = {}
PHASES = os.environ.get("PHASES", "upload closed overload cpu ready").split()
# The machine is shared: before each load run wait (at most QUIET_WAIT s) until other processes use
# under QUIET of the CPU; repeat a run (RETRIES times) that they disturbed by more than QUIET.
QUIET = float(os.environ.get("QUIET", "0.10"))
QUIET_WAIT = float(os.environ.get("QUIET_WAIT", "300"))
RETRIES = int(os.environ.get("RETRIES", "1"))
# The load generator shares the two cores with the servers. Starved of CPU it sends late, and
# with latency correction its own delay is counted as the server's: a 503 p99 measured 7-200 ms
# at normal priority was 3-4 ms with oha at nice -10. So oha runs at OHA_NICE when the harness may
# raise priority (root or CAP_SYS_NICE); the report says which.
OHA_NICE = int(os.environ.get("OHA_NICE", "-10"))
STAMP = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%MZ")
RESULTS = os.environ.get("RESULTS") or os.path.join(ROOT, "bench", "results", f"compare-{STAMP}")

BODY = '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'
FASTAPI_DIR = os.path.join(ROOT, "examples", "fastapi")
IRIS_WORKER = os.path.join(ROOT, "examples", "iris", "worker.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

LABELS = {
    "a": "(a) uvicorn --workers 2, FastAPI app, TCP",
    "an": "(a') = (a) with TCP_NODELAY restored",
    "b": "(b) sidecar, 2 FastAPI workers (uvicorn --uds)",
    "c": "(c) sidecar, 2 stdlib iris workers",
    "ng": "(n) nginx in front of the same 2 uvicorn --uds workers",
    "bq": "(b) with --max-queue 8",
    "b1": "(b) with --executor-threads 1 --max-queue 0",
    "b1q2": "(b) with --executor-threads 1 --max-queue 2",
    "bc": "(b) with a queue bounded by count (--max-queue 128, no time bound)",
    "bt": "(b) with a tight time bound (--max-queue-wait 10ms)",
    "b8": "(b) with --executor-threads 8",
}
# Variants of b: the same workers, other sidecar flags.
VARIANTS = {
    "bq": ["--max-queue", "8"],
    "b1": ["--executor-threads", "1", "--max-queue", "0"],
    "b1q2": ["--executor-threads", "1", "--max-queue", "2"],
    "bc": ["--max-queue", "128", "--max-queue-wait", "1h"],
    "bt": ["--max-queue-wait", "10ms"],
    "b8": ["--executor-threads", "8"],
}

# The configurations whose front process serves no request (uvicorn's supervisor): no CPU of
# their own to report.
UVICORN_ONLY = ("a", "an")

WORK = tempfile.mkdtemp(prefix="bench-compare-")
STARTED = []  # every Server started, for cleanup
DISTURBANCE = []  # share of the CPU other processes used during each load run


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid):
    """(ppid, session, utime+stime ticks, rss pages) of one process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), int(fields[3]), int(fields[11]) + int(fields[12]), int(fields[21])


def session_pids(sid):
    """Every live process of a session (each server is started as a session leader)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[1] == sid:
                pids.append(int(name))
    return pids


# The http block of `ng`; max_fails=0: a worker still starting is not taken out of rotation for 10 s.
NGINX_IN_FRONT = """client_max_body_size 0;
  upstream workers {{
    server unix:{dir}/w0.sock max_fails=0;
    server unix:{dir}/w1.sock max_fails=0;
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://workers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }}
  }}
"""


def nginx_in_front(port, uvicorn, app, d):
    """The `ng` command: two uvicorn workers on Unix sockets in d and nginx in front of them (one
    process, so the session's main process is the front door, as the sidecar is for b). nginx
    answers 502 until the workers listen, which the readiness wait and the start-up phase see."""
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as fh:
        fh.write(nginx_main_conf(d, NGINX_IN_FRONT.format(dir=d, port=port), error_log="stderr", connections=4096))
    workers = " ".join(shlex.join(uvicorn + ["--uds", f"{d}/w{i}.sock", app]) + " &" for i in range(2))
    return ["bash", "-c", f"{workers} exec {shlex.join(['nginx', '-e', 'stderr', '-c', conf])}"]


class Server:
    """One server under test, started in a session of its own."""

    def __init__(self, key, delay=0.0):
        self.key, self.delay = key, delay
        self.proc = None
        self.public = self.admin = None
        self.log_path = os.path.join(WORK, f"{key}-{len(STARTED)}.log")

    @property
    def sidecar(self):
        return self.key not in UVICORN_ONLY + ("ng",)

    def command(self):
        app_dir, app = (os.path.join(ROOT, "bench"), "iris_slow_start:app") if self.delay else (FASTAPI_DIR, "app:app")
        uvicorn = [PYTHON, "-m", "uvicorn", "--app-dir", app_dir, "--no-access-log", "--log-level", "warning"]
        if not self.sidecar:
            self.port = free_port()
            if self.key == "an":
                uvicorn = [PYTHON, os.path.join(ROOT, "bench", "uvicorn_nodelay.py")] + uvicorn[3:]
            if self.key == "ng":
                return nginx_in_front(self.port, uvicorn, app, os.path.join(WORK, f"ng-{len(STARTED)}"))
            return uvicorn + ["--workers", "2", "--host", "127.0.0.1", "--port", str(self.port), app]
        sidecar = [SIDECAR, "serve", "--bind", "127.0.0.1", "--port", "0", "--admin-port", "0",
                   "--workers", "2", "--drain-delay", "0s"]
        sidecar += VARIANTS.get(self.key, [])
        if self.key == "b" or self.key in VARIANTS:
            return sidecar + ["--"] + uvicorn + ["--uds", "$(MODELSERVER_SOCKET)", app]
        return sidecar + ["--", PYTHON, IRIS_WORKER]

    def env(self):
        env = dict(os.environ, MODELSERVER_ACCESS_LOG="false", MODELSERVER_SOCKET_DIR=os.path.join(WORK, f"sock-{len(STARTED)}"))
        for k in ("MODELSERVER_AUTH_TOKEN", "MODELSERVER_EXECUTOR_THREADS", "MODELSERVER_MAX_QUEUE"):
            env.pop(k, None)
        env.pop("PYTHONPATH", None)
        if self.delay:
            env["PYTHONPATH"] = FASTAPI_DIR  # iris_slow_start imports the example's app module
        env["IRIS_LOAD_DELAY"] = str(self.delay)
        return env

    def start(self):
        cmd, env = self.command(), self.env()
        self.log_file = open(self.log_path, "w")
        STARTED.append(self)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if not self.sidecar:
            self.public = f"127.0.0.1:{self.port}"
        return self

    def addresses(self, deadline):
        """For the sidecar, its public and admin addresses from its log (it binds port 0)."""
        while self.sidecar and self.admin is None:
            with open(self.log_path) as f:
                text = f.read()
            pub, adm = re.search(r"public_addr=([0-9.:]+)", text), re.search(r"admin_addr=([0-9.:]+)", text)
            if pub and adm:
                self.public, self.admin = pub.group(1), adm.group(1)
                break
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.key}: no listening line in {self.log_path}")
            time.sleep(0.005)

    def check_alive(self):
        if self.proc.poll() is not None:
            with open(self.log_path) as f:
                raise RuntimeError(f"{self.key} exited with {self.proc.returncode}:\n{f.read()[-3000:]}")

    def ready_target(self):
        return (self.admin, "/readyz") if self.sidecar else (self.public, "/ready")

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        self.addresses(deadline)
        addr, path = self.ready_target()
        while time.monotonic() < deadline:
            self.check_alive()
            if http_status(addr, "GET", path, timeout=1.0) == 200:
                return self
            time.sleep(0.02)
        raise RuntimeError(f"{self.key} not ready within {timeout}s; log {self.log_path}")

    def pids(self):
        return session_pids(self.proc.pid)

    def cpu_ticks(self):
        """(whole tree, main process) utime+stime in clock ticks."""
        total = main = 0
        for pid in self.pids():
            st = proc_stat(pid)
            if st:
                total += st[2]
                if pid == self.proc.pid:
                    main = st[2]
        return total, main

    def ticks_by_process(self):
        """utime+stime clock ticks of each process of the server's tree."""
        return {pid: st[2] for pid in self.pids() if (st := proc_stat(pid))}

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            self._kill_rest()
            return
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        self._kill_rest()

    def _kill_rest(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything of this session still running
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.log_file.close()


def cleanup():
    for s in reversed(STARTED):
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            log(f"cleanup of {s.key}: {e}")
    subprocess.run(["rm", "-rf", WORK], check=False)


def meter():
    """(monotonic time, machine busy ticks, steal ticks, ticks of this harness, its children and every
    server started) for `foreign_share`."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    busy = sum(v[:3])  # user nice system: what processes are charged (irq and softirq are not)
    own = 0
    for s in STARTED:
        if s.proc is not None and s.proc.poll() is None:
            own += s.cpu_ticks()[0]
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        own += (r.ru_utime + r.ru_stime) * CLK_TCK
    return time.monotonic(), busy, v[7], own


def foreign_share(before):
    """Share of the machine's CPU that processes other than ours (and the hypervisor: steal) used
    since `before`: a measurement with a large share was disturbed."""
    after = meter()
    capacity = (after[0] - before[0]) * CLK_TCK * (os.cpu_count() or 1)
    other = (after[1] - before[1]) - (after[3] - before[3])
    return {"other": round(max(0.0, other / capacity), 3), "steal": round((after[2] - before[2]) / capacity, 3)}


def wait_quiet():
    t0 = time.monotonic()
    while True:
        m = meter()
        time.sleep(1.0)
        share = foreign_share(m)["other"]
        if share < QUIET or time.monotonic() - t0 > QUIET_WAIT:
            return
        log(f"other processes use {100 * share:.0f}% of the CPU; waiting before the next run")
        time.sleep(4.0)


def undisturbed(run):
    """run() -> (result, disturbance); waits for a quiet machine first and repeats a disturbed run,
    keeping the least disturbed attempt."""
    best = None
    for attempt in range(1 + RETRIES):
        wait_quiet()
        result, disturbance = run()
        if best is None or disturbance["other"] < best[1]["other"]:
            best = (result, disturbance)
        if disturbance["other"] <= QUIET:
            break
        log(f"other processes used {100 * disturbance['other']:.0f}% of the CPU during the run; "
            + ("repeating it" if attempt < RETRIES else "keeping the least disturbed attempt"))
    DISTURBANCE.append(best[1]["other"])
    return best


def http_status(addr, method, path, body=None, timeout=1.0, headers=None):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


# -- load --------------------------------------------------------------------------------------


def may_renice(n):
    """True when a child of this harness may run at niceness n."""
    probe = subprocess.run([sys.executable, "-c", f"import os; os.nice({n})"], capture_output=True, check=False)
    return probe.returncode == 0


OHA_PREFIX = ["nice", "-n", str(OHA_NICE)] if OHA_NICE and may_renice(OHA_NICE) else []


def oha(args, timeout):
    cmd = OHA_PREFIX + [OHA, "--no-tui", "-m", "POST", "-T", "application/json", "-d", BODY] + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
    return out.stdout


def pct(sorted_values, q):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def closed_loop(server, connections, seconds=None, n=None):
    """One closed-loop run: oha JSON, summarised and trimmed."""
    args = ["--output-format", "json", "--stats-success-breakdown", "-c", str(connections)]
    args += ["-n", str(n)] if n else ["-z", f"{seconds}s"]
    def run():
        m0, t0 = meter(), server.ticks_by_process()
        out = oha(args + [f"http://{server.public}/predict"], timeout=(seconds or 120) + 60)
        t1 = server.ticks_by_process()
        return (json.loads(out), cpu_by_process(server, t0, t1)), foreign_share(m0)

    (raw, cpu), disturbance = undisturbed(run)
    codes = {str(k): v for k, v in raw.get("statusCodeDistribution", {}).items()}
    errors = raw.get("errorDistribution", {}) or {}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    non2xx = sum(v for k, v in codes.items() if not k.startswith("2"))
    failed = sum(v for k, v in errors.items() if "deadline" not in k)
    lat = raw.get("latencyPercentilesSuccessful") or {}
    elapsed = raw["summary"]["total"]
    summary = {
        "connections": connections, "seconds": elapsed, "ok": ok, "ok_rps": ok / elapsed,
        "non2xx": non2xx, "failed": failed, "codes": codes,
        "error_rate": (non2xx + failed) / max(1, ok + non2xx + failed),
        "p50_ms": ms(lat.get("p50")), "p99_ms": ms(lat.get("p99")), "p999_ms": ms(lat.get("p99.9")),
        "non2xx_p99_ms": ms((raw.get("latencyPercentilesNotSuccessful") or {}).get("p99")),
        "foreign_cpu": disturbance,
        "cpu_seconds": cpu,
    }
    trimmed = {k: raw.get(k) for k in ("summary", "latencyPercentilesSuccessful", "latencyPercentilesNotSuccessful",
                                        "statusCodeDistribution", "errorDistribution")}
    return summary, trimmed


def cpu_by_process(server, before, after):
    """CPU seconds each process used between two ticks_by_process: the sidecar (or uvicorn's
    supervisor) and each worker, so an uneven split between the workers shows."""
    used = {pid: (after[pid] - before.get(pid, 0)) / CLK_TCK for pid in after}
    main = server.proc.pid
    return {"main": round(used.pop(main, 0.0), 2), "workers": sorted((round(v, 2) for v in used.values()), reverse=True)}


def ms(seconds):
    return None if seconds is None else seconds * 1000.0


def open_loop(server, rate, seconds, connections):
    """Open loop at `rate` requests/s: oha -q with latency correction, per-request CSV."""
    def run():
        m0 = meter()
        out = oha(["--output-format", "csv", "-q", str(rate), "--latency-correction", "-w", "-z", f"{seconds}s",
                   "-c", str(connections), f"http://{server.public}/predict"], timeout=seconds + 120)
        return out, foreign_share(m0)

    out, disturbance = undisturbed(run)
    rows = list(csv.reader(out.splitlines()))[1:]
    intended = int(rate * seconds)
    lat = {}
    per_second = {}
    for r in rows:
        start, duration, status = float(r[0]), float(r[4]), r[6]
        lat.setdefault(status, []).append(duration)
        sec = int(start)
        ps = per_second.setdefault(sec, {"2xx": 0, "503": 0, "other": 0, "lat2xx": []})
        kind = "2xx" if status.startswith("2") else ("503" if status == "503" else "other")
        ps[kind] += 1
        if kind == "2xx":
            ps["lat2xx"].append(duration)
    for v in lat.values():
        v.sort()
    ok = sorted(d for s, v in lat.items() if s.startswith("2") for d in v)
    s503 = lat.get("503", [])
    answered = sum(len(v) for v in lat.values())
    summary = {
        "rate": rate, "seconds": seconds, "connections": connections, "intended": intended, "answered": answered,
        "codes": {s: len(v) for s, v in sorted(lat.items())},
        "unanswered": max(0, intended - answered),
        "ok": len(ok), "ok_rps": len(ok) / seconds,
        "ok_within_1s": sum(1 for d in ok if d <= 1.0),
        "share_ok_within_1s": sum(1 for d in ok if d <= 1.0) / intended,
        "ok_p50_ms": ms(pct(ok, 50)), "ok_p99_ms": ms(pct(ok, 99)), "ok_p999_ms": ms(pct(ok, 99.9)),
        "n503": len(s503), "p50_503_ms": ms(pct(s503, 50)), "p99_503_ms": ms(pct(s503, 99)),
        "p999_503_ms": ms(pct(s503, 99.9)), "foreign_cpu": disturbance,
    }
    series = [{"second": s, "2xx": v["2xx"], "503": v["503"], "other": v["other"],
               "p99_2xx_ms": round(ms(pct(sorted(v["lat2xx"]), 99)) or 0, 2)} for s, v in sorted(per_second.items())]
    return summary, series


# -- phases ------------------------------------------------------------------------------------


def everywhere(keys):
    """The configurations measured in every phase (not limited by ONLY_AT), in order."""
    return [k for k in keys if k not in ONLY_AT]


def warm(server):
    oha(["--output-format", "quiet", "-n", "2000", "-c", "16", f"http://{server.public}/predict"], timeout=120)


def phase_closed(servers, out):
    results = {k: {} for k in servers}
    warmed = set()
    for c in CONCURRENCY:
        here = [k for k in servers if c in ONLY_AT.get(k, [c])]
        runs = {k: [] for k in here}
        for r in range(ROUNDS):
            order = here[r % len(here):] + here[:r % len(here)]
            for k in order:
                if k not in warmed:
                    warm(servers[k])
                    warmed.add(k)
                summary, trimmed = closed_loop(servers[k], c, seconds=DURATION)
                runs[k].append(summary)
                save(out, f"closed-{k}-c{c}-r{r + 1}.json", trimmed)
                log(f"closed c={c} round {r + 1} {k}: {summary['ok_rps']:.0f} 2xx/s p50 {f(summary['p50_ms'], 2)} ms "
                    f"p99 {f(summary['p99_ms'], 2)} ms errors {summary['non2xx'] + summary['failed']} "
                    f"CPU s {cpu_text(k, summary['cpu_seconds'])}")
        for k in here:
            ordered = sorted(runs[k], key=lambda s: s["ok_rps"])
            median = ordered[(len(ordered) - 1) // 2] if len(ordered) % 2 else ordered[len(ordered) // 2 - 1]
            results[k][c] = dict(median, rounds_ok_rps=[round(s["ok_rps"]) for s in runs[k]],
                                 rounds_cpu_seconds=[s["cpu_seconds"] for s in runs[k]])
    return {k: v for k, v in results.items() if v}


def phase_overload(servers, capacity, out):
    results = {}
    for k in everywhere(servers) + OVERLOAD_EXTRA:
        # Variants of b share its workers, so twice the capacity is twice b's.
        base = "b" if k in VARIANTS and "b" in capacity else k
        if base not in capacity:
            continue
        rate = int(round(2 * capacity[base]))
        own = k not in servers
        server = Server(k).start().wait_ready() if own else servers[k]
        try:
            warm(server)
            time.sleep(1)
            log(f"overload {k}: {rate}/s for {OVERLOAD_SECONDS:.0f}s, {OVERLOAD_CONNECTIONS} connections")
            summary, series = open_loop(server, rate, OVERLOAD_SECONDS, OVERLOAD_CONNECTIONS)
            summary["capacity_of"] = base
            results[k] = summary
            save(out, f"overload-{k}.json", {"summary": summary, "per_second": series})
            log(f"overload {k}: {summary}")
        finally:
            if own:
                server.stop()
        time.sleep(3)  # let any backlog drain before the next server
    return results


def phase_cpu(servers, out):
    results = {}
    servers = {k: servers[k] for k in everywhere(servers)}
    runs = {k: [] for k in servers}
    for r in range(ROUNDS):
        for k, server in servers.items():
            if r == 0:
                warm(server)
            def run():
                m0, before = meter(), server.cpu_ticks()
                raw = json.loads(oha(["--output-format", "json", "-c", "16", "-n", str(CPU_REQUESTS),
                                      f"http://{server.public}/predict"], timeout=600))
                return (raw, before, server.cpu_ticks()), foreign_share(m0)

            (raw, before, after), disturbance = undisturbed(run)
            ok = sum(v for code, v in raw.get("statusCodeDistribution", {}).items() if str(code).startswith("2"))
            tree = (after[0] - before[0]) / CLK_TCK
            main = (after[1] - before[1]) / CLK_TCK
            per = 10000.0 / max(1, ok)
            runs[k].append({"tree_s": tree * per, "main_s": main * per, "ok": ok,
                            "wall_s": raw["summary"]["total"], "foreign_cpu": disturbance})
            log(f"cpu {k} round {r + 1}: tree {tree * per:.2f} s, main {main * per:.2f} s per 10k")
    for k in servers:
        results[k] = {
            "tree_s_per_10k": statistics.median(x["tree_s"] for x in runs[k]),
            "main_s_per_10k": statistics.median(x["main_s"] for x in runs[k]),
            "rounds": runs[k],
        }
    save(out, "cpu.json", results)
    return results


def rss_kib(pid):
    st = proc_stat(pid)
    return st[3] * PAGE_KIB if st else 0


def phase_upload(servers, out):
    path = os.path.join(WORK, "upload.json")
    head, tail = b'{"instances": [[5.1, 3.5, 1.4, 0.2]], "pad": "', b'"}'
    with open(path, "wb") as f:
        f.write(head)
        left = UPLOAD_BYTES - len(head) - len(tail)
        chunk = b"x" * (1 << 20)
        while left > 0:
            f.write(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))
        f.write(tail)
    results = {}
    for k in everywhere(servers):
        server = servers[k]
        warm(server)
        time.sleep(1)
        pids = server.pids()
        idle_main = rss_kib(server.proc.pid)
        idle_tree = sum(rss_kib(p) for p in pids)
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                per = {p: rss_kib(p) for p in server.pids()}
                samples.append((time.monotonic(), per.get(server.proc.pid, 0), sum(per.values()), max(per.values())))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t = time.monotonic()
        curl = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}",
                               "-X", "POST", "-H", "Content-Type: application/json", "-H", "Expect:",
                               "-T", path, f"http://{server.public}/predict"],
                              capture_output=True, text=True, timeout=300, check=False)
        took = time.monotonic() - t
        time.sleep(0.3)
        stop.set()
        sampler.join()
        code, sent = (curl.stdout.split() + ["?", "?"])[:2]
        results[k] = {
            "status": code, "bytes_sent": sent, "seconds": round(took, 2), "samples": len(samples),
            "idle_main_kib": idle_main, "idle_tree_kib": idle_tree,
            "peak_main_kib": max(s[1] for s in samples), "peak_tree_kib": max(s[2] for s in samples),
            "peak_one_process_kib": max(s[3] for s in samples),
        }
        if k in UVICORN_ONLY:
            results[k]["idle_main_kib"] = results[k]["peak_main_kib"] = None  # uvicorn's parent serves nothing
        log(f"upload {k}: {results[k]}")
    os.unlink(path)
    save(out, "upload.json", results)
    return results


def connects(addr):
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.2):
            return True
    except OSError:
        return False


def predict_pid(addr):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=2.0)
    try:
        conn.request("POST", "/predict", body=BODY, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        return json.loads(data).get("pid") if resp.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def measure_ready(key):
    """Seconds from spawn to: accepting connections, first 200 on the readiness path, and (for
    uvicorn) answers from both workers; plus how probes before ready ended."""
    server = Server(key, delay=LOAD_DELAY).start()
    try:
        deadline = server.t0 + 60
        probes = {"refused": 0, "timeout_1s": 0, "503": 0, "other": 0}
        if server.sidecar:
            server.addresses(deadline)
        accept_at = None
        while time.monotonic() < deadline:
            server.check_alive()
            if connects(server.public):
                accept_at = time.monotonic() - server.t0
                break
            time.sleep(0.01)
        addr, path = server.ready_target()
        ready_at = None
        while time.monotonic() < deadline:
            server.check_alive()
            t = time.monotonic()
            status = http_status(addr, "GET", path, timeout=1.0)  # a kubelet probe's default timeout
            if status == 200:
                ready_at = time.monotonic() - server.t0
                break
            if status is None:
                probes["timeout_1s" if time.monotonic() - t >= 0.99 else "refused"] += 1
            elif status == 503:
                probes["503"] += 1
            else:
                probes["other"] += 1
            time.sleep(0.01)
        all_at = None
        if not server.sidecar:
            seen = set()
            while time.monotonic() < server.t0 + ready_at + 10:
                pid = predict_pid(server.public)
                if pid:
                    seen.add(pid)
                if len(seen) >= 2:
                    all_at = time.monotonic() - server.t0
                    break
                time.sleep(0.005)
        else:
            all_at = ready_at  # the sidecar's /readyz is 200 only once every worker is
        return {"accepting_s": accept_at, "ready_s": ready_at, "all_workers_s": all_at, "probes_before_ready": probes}
    finally:
        server.stop()


def phase_ready(out):
    results = {k: [] for k in everywhere(CONFIGS)}
    for r in range(READY_ROUNDS):
        for k in results:
            m = measure_ready(k)
            results[k].append(m)
            log(f"ready {k} round {r + 1}: {m}")
            time.sleep(0.5)
    summary = {}
    for k, runs in results.items():
        def med(field):
            vals = [x[field] for x in runs if x[field] is not None]
            return statistics.median(vals) if vals else None
        summary[k] = {"accepting_s": med("accepting_s"), "ready_s": med("ready_s"), "all_workers_s": med("all_workers_s"),
                      "runs": runs}
    save(out, "ready.json", summary)
    return summary


# -- report ------------------------------------------------------------------------------------


def save(out, name, data):
    with open(os.path.join(out, name), "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


def background_cpu(seconds=3.0):
    """Share of the machine's CPU busy (all processes) over a short window before the run."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t1, i1 = snap()
    time.sleep(seconds)
    t2, i2 = snap()
    return 1.0 - (i2 - i1) / max(1, t2 - t1)


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def f(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


def report(meta, closed, overload, cpu, upload, ready):
    lines = ["# Side by side: modelserver-sidecar and uvicorn serving the iris FastAPI model", ""]
    for k, v in meta.items():
        lines.append(f"- {k}: {v}")
    lines.append("")
    if closed:
        lines += ["## Closed loop (POST /predict, 2 rows; median of rounds by 2xx/s)", "",
                  "| server | connections | 2xx/s | p50 ms | p99 ms | p99.9 ms | errors | rounds 2xx/s | "
                  "CPU s: front door; each worker |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for k in closed:
            for c, s in closed[k].items():
                err = s["non2xx"] + s["failed"]
                codes = ",".join(f"{n}x{code}" for code, n in s["codes"].items() if not code.startswith("2"))
                err_text = f"{err} ({100 * s['error_rate']:.1f}%{', ' + codes if codes else ''})" if err else "0"
                lines.append(f"| {LABELS[k]} | {c} | {s['ok_rps']:.0f} | {f(s['p50_ms'], 2)} | {f(s['p99_ms'], 2)} | "
                             f"{f(s['p999_ms'], 2)} | {err_text} | {' / '.join(map(str, s['rounds_ok_rps']))} | "
                             f"{cpu_text(k, s.get('cpu_seconds'))} |")
        lines.append("")
    if overload:
        lines += ["## Overload: open loop at twice the capacity (latency from the intended send time)", "",
                  "| server | offered/s | 2xx/s | answered 2xx within 1 s | 2xx p50 ms | 2xx p99 ms | 2xx p99.9 ms | 503s | "
                  "503 p99 ms | unanswered | other |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for k, s in overload.items():
            other = {c: n for c, n in s["codes"].items() if not c.startswith("2") and c != "503"}
            lines.append(f"| {LABELS[k]} | {s['rate']} | {s['ok_rps']:.0f} | {100 * s['share_ok_within_1s']:.1f}% | "
                         f"{f(s['ok_p50_ms'])} | {f(s['ok_p99_ms'])} | {f(s['ok_p999_ms'])} | {s['n503']} | {f(s['p99_503_ms'], 2)} | "
                         f"{s['unanswered']} | {other or '-'} |")
        lines.append("")
    if cpu:
        lines += ["## CPU seconds per 10,000 requests (16 connections)", "",
                  "| server | whole process tree | front door alone (sidecar or nginx) |", "| --- | ---: | ---: |"]
        for k, s in cpu.items():
            main = f(s["main_s_per_10k"], 2) if k not in UVICORN_ONLY else "-"
            lines.append(f"| {LABELS[k]} | {s['tree_s_per_10k']:.2f} | {main} |")
        lines.append("")
    if upload:
        lines += [f"## Peak RSS while one {UPLOAD_BYTES / 1e6:.0f} MB body is POSTed to /predict", "",
                  "| server | status | seconds | front door before → peak MiB | whole tree before → peak MiB | "
                  "largest process peak MiB | front door after all load phases MiB |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for k, s in upload.items():
            after = "-" if s.get("after_load_main_kib") is None else f"{s['after_load_main_kib'] / 1024:.1f}"
            side = "-" if s["peak_main_kib"] is None else f"{s['idle_main_kib'] / 1024:.1f} → {s['peak_main_kib'] / 1024:.1f}"
            lines.append(f"| {LABELS[k]} | {s['status']} | {s['seconds']} | {side} | "
                         f"{s['idle_tree_kib'] / 1024:.0f} → {s['peak_tree_kib'] / 1024:.0f} | "
                         f"{s['peak_one_process_kib'] / 1024:.0f} | {after} |")
        lines.append("")
    if ready:
        lines += [f"## Start to ready, model load {LOAD_DELAY:g} s (median of {READY_ROUNDS})", "",
                  "| server | port accepts | first 200 on readiness path | every worker answers | probes before ready |",
                  "| --- | ---: | ---: | ---: | --- |"]
        for k, s in ready.items():
            probes = {}
            for run in s["runs"]:
                for p, n in run["probes_before_ready"].items():
                    probes[p] = probes.get(p, 0) + n
            lines.append(f"| {LABELS[k]} | {f(s['accepting_s'], 2)} s | {f(s['ready_s'], 2)} s | {f(s['all_workers_s'], 2)} s | "
                         f"{', '.join(f'{n} {p}' for p, n in probes.items() if n) or '-'} |")
        lines.append("")
    lines += targets(closed, overload, upload)
    return "\n".join(lines)


def cpu_text(key, cpu):
    """`main; w1 + w2` CPU seconds of the median round: the front door (sidecar or nginx) and each
    worker (uvicorn's supervisor serves nothing: `-`)."""
    if not cpu:
        return "n/a"
    workers = " + ".join(f"{w:.1f}" for w in cpu["workers"] if w >= 0.05) or "0"
    return f"{'-' if key in UVICORN_ONLY else format(cpu['main'], '.1f')}; {workers}"


def targets(closed, overload, upload):
    rows = []
    # With the defaults: at or above uvicorn without its Nagle bug (a'); against (a) for reference.
    for base, floor in (("an", 1.0), ("a", 1.0)):
        for c in (16, 256):
            if closed and "b" in closed and base in closed and c in closed[base] and c in closed["b"]:
                r = closed["b"][c]["ok_rps"] / closed[base][c]["ok_rps"]
                rows.append((f"{LABELS['b']}: at least {floor:.1f}x the 2xx/s of {LABELS[base].split(' ')[0]} "
                             f"at {c} connections", f"{r:.2f}x", r >= floor))
    # The same hop with nginx as the front door: what any proxy in front of these workers costs here.
    for num, den in (("ng", "an"), ("b", "ng")):
        for c in (16, 256):
            if closed and num in closed and den in closed and c in closed[num] and c in closed[den]:
                r = closed[num][c]["ok_rps"] / closed[den][c]["ok_rps"]
                rows.append((f"reference: 2xx/s of {LABELS[num].split(' ')[0]} against {LABELS[den].split(' ')[0]} "
                             f"at {c} connections", f"{r:.2f}x", r >= 1.0))
    for k in ("b", "bc", "bt", "bq", "b1q2"):
        if overload and k in overload and closed and "b" in closed and CONCURRENCY[0] in closed["b"]:
            unloaded = closed["b"][CONCURRENCY[0]]["p99_ms"]
            acc, p503 = overload[k]["ok_p99_ms"], overload[k]["p99_503_ms"]
            rows.append((f"{LABELS[k]}, overload: p99 of accepted within 2x the unloaded p99 "
                         f"({CONCURRENCY[0]} connection)", f"{f(acc)} ms vs 2 x {unloaded:.2f} ms",
                         acc is not None and acc <= 2 * unloaded))
            rows.append((f"{LABELS[k]}, overload: the rest answered 503 in under 5 ms (p99)",
                         f"{f(p503, 2)} ms" if p503 is not None else "no 503s", p503 is None or p503 < 5))
    if upload and "b" in upload:
        peak = upload["b"]["peak_main_kib"] / 1024
        rows.append((f"sidecar peak RSS during a {UPLOAD_BYTES / 1e6:.0f} MB upload under 20 MiB", f"{peak:.1f} MiB",
                     peak < 20))
    if not rows:
        return []
    out = ["## Targets", "", "| target | measured | |", "| --- | ---: | --- |"]
    out += [f"| {name} | {value} | {'met' if ok else '**missed**'} |" for name, value, ok in rows]
    return out + [""]


def main():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: sys.exit(128 + s))
    os.makedirs(RESULTS, exist_ok=True)
    busy = background_cpu()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({cpu_model()}), Linux {platform.release()}, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "CPU busy before the run (other processes)": f"{100 * busy:.0f}%",
        "load generator": f"{version([OHA, '--version'])} on the same machine, keep-alive, "
                          + (f"at nice {OHA_NICE} so that it is not starved by the servers" if OHA_PREFIX else
                             "at normal priority (could not raise it: latency tails include its own delays)"),
        "sidecar": f"{version([SIDECAR, '--version'])} ({os.path.getsize(SIDECAR) / 2**20:.1f} MiB static), defaults "
                   "(executor threads 4, max queue 1024, max queue wait 1s, 1 runtime thread), access log off",
        "python": f"{version([PYTHON, '-V'])}; " + version([PYTHON, "-c",
                  "import fastapi, uvicorn, pydantic; print('fastapi', fastapi.__version__, 'uvicorn', "
                  "uvicorn.__version__, 'pydantic', pydantic.VERSION)"]) + " (asyncio loop, h11), access log off",
        "knobs": f"DURATION={DURATION:g} ROUNDS={ROUNDS} CONCURRENCY='{' '.join(map(str, CONCURRENCY))}' "
                 f"OVERLOAD_SECONDS={OVERLOAD_SECONDS:g} OVERLOAD_CONNECTIONS={OVERLOAD_CONNECTIONS} "
                 f"CPU_REQUESTS={CPU_REQUESTS} UPLOAD_BYTES={UPLOAD_BYTES} LOAD_DELAY={LOAD_DELAY:g}",
    }
    log(f"results in {RESULTS}; CPU busy before start {100 * busy:.0f}%")
    closed = overload = cpu = upload = ready = None
    needs_servers = {"closed", "overload", "cpu", "upload"} & set(PHASES)
    if needs_servers:
        servers = {k: Server(k).start() for k in CONFIGS}
        for s in servers.values():
            s.wait_ready()
        log("servers ready: " + ", ".join(f"{k} {s.public}" for k, s in servers.items()))
        if "upload" in PHASES:
            upload = phase_upload(servers, RESULTS)
        if "closed" in PHASES:
            closed = phase_closed(servers, RESULTS)
        if "overload" in PHASES and closed:
            capacity = {k: max(s["ok_rps"] for s in closed[k].values()) for k in closed}
            overload = phase_overload(servers, capacity, RESULTS)
        if "cpu" in PHASES:
            cpu = phase_cpu(servers, RESULTS)
        after = {k: {"sidecar_kib": rss_kib(s.proc.pid) if s.key not in UVICORN_ONLY else None,
                     "tree_kib": sum(rss_kib(p) for p in s.pids())} for k, s in servers.items()}
        save(RESULTS, "rss-after-load.json", after)
        if upload:
            for k in upload:
                upload[k]["after_load_main_kib"] = after[k]["sidecar_kib"]
        for s in servers.values():
            s.stop()
    if "ready" in PHASES:
        ready = phase_ready(RESULTS)
    if closed:
        save(RESULTS, "closed.json", closed)
    if overload:
        save(RESULTS, "overload.json", overload)
    if DISTURBANCE:
        meta["CPU used by other processes during the load runs"] = (
            f"median {100 * statistics.median(DISTURBANCE):.1f}%, max {100 * max(DISTURBANCE):.1f}% of the machine "
            "(per run in the raw results: foreign_cpu)")
    text = report(meta, closed, overload, cpu, upload, ready)
    with open(os.path.join(RESULTS, "report.md"), "w") as fh:
        fh.write(text + "\n")
    print(text)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
