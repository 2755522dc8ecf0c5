#!/usr/bin/env bash
# `make chart-prometheus-test`: the chart's dashboard queries and alerts against a real Prometheus
# server (cmd/prometheus from the same Go module as promtool, built once by hack/chart/tools.sh;
# a larger build, so not part of `make test`) scraping the real modelserver-sidecar serving
# examples/iris. Everything listens on 127.0.0.1 only, and the load is bounded in time and count.
#   1. the sidecar runs with one worker, one executor slot and a queue of one, recycling its
#      worker every 50 requests, so a short load gives 200s, 503 refusals and worker loads;
#      one worker is killed once, for a restart and an exit;
#   2. Prometheus scrapes its admin port every second, with the labels the chart's PodMonitor
#      gives (namespace, pod, modelserver), and loads the chart's rules as rendered;
#   3. every sidecar query of files/dashboard.json (variables set to that namespace and
#      ModelServer) must return data through the HTTP API; the operator's queries must run
#      without error (no operator runs here: it needs an API server); every alerting rule must
#      evaluate without error, and those this load sets off (5xx ratio, 503 refusals, a worker
#      restart; their `for` set to 0s) must fire with the scraped labels, the others not.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
chart=charts/modelserver-operator
helm=$(hack/chart/tools.sh helm)
prometheus=$(hack/chart/tools.sh prometheus)
python=$(./hack/venv.sh)
work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
log() { printf 'prometheus-test: %s\n' "$*" >&2; }

cargo build --quiet -p modelserver-sidecar --bin modelserver-sidecar --message-format=json > "$work/cargo.json"
sidecar=$("$python" -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "modelserver-sidecar" and m.get("executable"):
        print(m["executable"])' "$work/cargo.json" | tail -1)
read -r port admin prom < <("$python" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

# The chart's rules, with no `for` on the alerts this load must set off (so they fire within
# the test) and any restart counted as crash looping.
"$helm" template modelserver-operator "$chart" --namespace modelserver-system \
  --set metrics.prometheusRule.enabled=true \
  --set metrics.prometheusRule.alerts.highErrorRatio.for=0s \
  --set metrics.prometheusRule.alerts.requestsRejected.for=0s \
  --set metrics.prometheusRule.alerts.workerCrashLooping.for=0s \
  --set metrics.prometheusRule.alerts.workerCrashLooping.restarts=0 > "$work/render.yaml"
"$python" - "$work/render.yaml" "$work/rules.yaml" <<'PY'
import sys, yaml
(rule,) = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"]
yaml.safe_dump(rule["spec"], open(sys.argv[2], "w"))
PY
cat > "$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yaml]
scrape_configs:
  - job_name: modelserver-sidecars
    static_configs:
      - targets: ["127.0.0.1:$admin"]
        # What the chart's PodMonitor gives a ModelServer pod's series.
        labels: {namespace: ml, modelserver: iris, pod: iris-local}
EOF

log "sidecar on 127.0.0.1:$port (admin $admin), Prometheus on 127.0.0.1:$prom"
"$sidecar" serve --bind 127.0.0.1 --port "$port" --admin-port "$admin" --workers 1 \
  --executor-threads 1 --max-queue 1 --max-requests-per-worker 50 --drain-delay 0s \
  -- "$python" examples/iris/worker.py > "$work/sidecar.log" 2>&1 &
pids+=($!)
"$prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom" --log.level=warn > "$work/prometheus.log" 2>&1 &
pids+=($!)

if ! "$python" - "$port" "$admin" "$prom" "$chart/files/dashboard.json" <<'PY'; then
import json, re, sys, threading, time, urllib.error, urllib.parse, urllib.request, os, signal
port, admin, prom, dashboard_path = sys.argv[1:]
def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()
def wait(what, probe, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    sys.exit(f"{what}: not within {seconds}s")
def query(expr):
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.loads(get(url)[1])
    except urllib.error.HTTPError as e:
        return json.loads(e.read())
wait("sidecar ready", lambda: get(f"http://127.0.0.1:{admin}/readyz")[0] == 200)
wait("Prometheus ready", lambda: get(f"http://127.0.0.1:{prom}/-/ready")[0] == 200)
wait("first scrape", lambda: query('up{job="modelserver-sidecars"} == 1')["data"]["result"])

# Bounded load: 6 clients, at most 20 s and 400 requests each, on loopback.
body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}).encode()
codes = {}
lock = threading.Lock()
def client():
    deadline = time.monotonic() + 20
    for _ in range(400):
        if time.monotonic() > deadline:
            return
        req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", body, {"Content-Type": "application/json"})
        try:
            code = get(req, timeout=10)[0]
        except urllib.error.HTTPError as e:
            code = e.code
        except (urllib.error.URLError, OSError):
            code = "error"
        with lock:
            codes[code] = codes.get(code, 0) + 1
threads = [threading.Thread(target=client) for _ in range(6)]
for t in threads:
    t.start()
# One worker killed once, mid-load: a restart and an exit by signal.
time.sleep(5)
status = json.loads(get(f"http://127.0.0.1:{admin}/status")[1])
pid = next(w["pid"] for w in status["workers"] if w.get("pid"))
os.kill(pid, signal.SIGKILL)
for t in threads:
    t.join()
print(f"load: responses by code {codes}")
time.sleep(3)  # the last scrapes

dashboard = json.load(open(dashboard_path))
failures = 0
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        expr = target["expr"]
        concrete = expr.replace("$__rate_interval", "1m").replace("$namespace", "ml").replace("$modelserver", "iris")
        answer = query(concrete)
        operator = "modelserver_operator_" in expr
        where = f"{panel['title']!r} {target['refId']}"
        if answer.get("status") != "success":
            print(f"FAIL {where}: {answer.get('error')}\n     {concrete}")
            failures += 1
        elif operator:
            print(f"ok   {where}: runs (operator series: no operator here)")
        elif not answer["data"]["result"]:
            print(f"FAIL {where}: no data\n     {concrete}")
            failures += 1
        else:
            values = [r["value"][1] for r in answer["data"]["result"]]
            print(f"ok   {where}: {len(values)} series, {', '.join(values[:3])}")
for variable in dashboard["templating"]["list"]:
    if variable["type"] != "query":
        continue
    series = re.sub(r"^label_values[(](.*), *\w+[)]$", r"\1", variable["query"]).replace("$namespace", "ml")
    if query(series).get("data", {}).get("result"):
        print(f"ok   variable {variable['name']}: {series} has data")
    else:
        print(f"FAIL variable {variable['name']}: no data for {series}")
        failures += 1
# Every alerting rule evaluated against these series without an error.
wait("rules evaluated", lambda: all(r.get("lastEvaluation", "0001").startswith("2")
                                      for g in json.loads(get(f"http://127.0.0.1:{prom}/api/v1/rules")[1])["data"]["groups"]
                                      for r in g["rules"]), 30)
# Set off by this load (5xx and 503 refusals over their ratios, a restart), with the labels of the
# scraped series; the others stay quiet (the pod is ready, not draining, its queue empties).
firing = {"ModelServerHighErrorRatio", "ModelServerRequestsRejected", "ModelServerWorkerCrashLooping"}
for group in json.loads(get(f"http://127.0.0.1:{prom}/api/v1/rules")[1])["data"]["groups"]:
    for rule in group["rules"]:
        name = rule["name"]
        expected = "firing" if name in firing else "inactive"
        labels = [a["labels"] for a in rule.get("alerts", [])]
        if rule["health"] != "ok":
            print(f"FAIL rule {name}: {rule['health']} {rule.get('lastError', '')}")
            failures += 1
        elif rule["state"] != expected:
            print(f"FAIL rule {name}: {rule['state']}, expected {expected} {labels}")
            failures += 1
        elif expected == "firing" and not all(l.get("namespace") == "ml" and l.get("modelserver") == "iris" for l in labels):
            print(f"FAIL rule {name}: fires without the namespace and modelserver labels: {labels}")
            failures += 1
        else:
            print(f"ok   rule {name}: evaluates, {rule['state']} {labels if labels else ''}")
print(f"prometheus-test: {failures} failed")
sys.exit(1 if failures else 0)
PY
  log "failed; the sidecar's and Prometheus's logs:"
  tail -n 30 "$work/sidecar.log" "$work/prometheus.log" >&2
  exit 1
fi
