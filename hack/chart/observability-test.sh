#!/usr/bin/env bash
# The chart's alerts (templates/prometheusrule.yaml) and Grafana dashboard (files/dashboard.json),
# checked with Prometheus's own promtool (built from its Go module by hack/chart/tools.sh) and the
# real binaries; run by hack/chart/lint.sh (`make chart-lint`, part of `make test`):
#   1. `promtool check rules` on the PrometheusRule's groups as the chart renders them;
#   2. `promtool test rules` (hack/chart/alerts.test.yaml): each alert fires on a bad series and
#      not on healthy ones, with the chart's default thresholds;
#   3. every alert has summary, description and runbook, a runbook_url to its section of
#      docs/alerts.md, and docs/alerts.md has a section for each alert and no other;
#   4. every dashboard query parses (each wrapped as a recording rule, `promtool check rules`),
#      filters the sidecar's series by the dashboard's namespace and ModelServer variables;
#   5. the ServiceMonitor, PodMonitor and PrometheusRule of every ci/ scenario are valid against
#      the Prometheus Operator's CRDs (from its Go module), unknown fields refused;
#   6. every metric name in the alerts and the dashboard exists: the sidecar's in the /metrics of
#      the real modelserver-sidecar serving examples/iris on loopback, the operator's in
#      operator/src/metrics.rs (the operator cannot run without an API server).
# Prints ok/FAIL lines and exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
chart=charts/modelserver-operator
release=modelserver-operator
namespace=modelserver-system
helm=$(hack/chart/tools.sh helm)
promtool=$(hack/chart/tools.sh promtool)
python=$(./hack/venv.sh)
crds=$(hack/chart/tools.sh prometheus-operator-crds)
work=$(mktemp -d)
sidecar_pid=
cleanup() {
  if [ -n "$sidecar_pid" ]; then kill "$sidecar_pid" 2>/dev/null || true; wait "$sidecar_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
check() {
  local what=$1
  shift
  if "$@" > "$work/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$work/out"; fi
}
# results FILE: turns the "ok ..."/"FAIL ..." lines a Python step printed into results.
results() {
  local line
  [ -s "$1" ] || { fail "$1 printed nothing"; return; }
  while IFS= read -r line; do
    case "$line" in
      "ok   "*) pass "${line#ok   }" ;;
      "FAIL "*) fail "${line#FAIL }" ;;
      *) echo "     $line" ;;
    esac
  done < "$1"
}

echo "== alerts (promtool: $promtool)"
"$helm" template "$release" "$chart" --namespace "$namespace" \
  --values "$chart/ci/observability-values.yaml" > "$work/observability.yaml"
"$helm" template "$release" "$chart" --namespace "$namespace" \
  --set metrics.prometheusRule.enabled=true > "$work/defaults.yaml"
mkdir "$work/unit"
# The rules files promtool reads: the PrometheusRule's spec (a Prometheus rules file), as
# rendered; for the unit tests the default render without annotations (see alerts.test.yaml).
"$python" - "$work/observability.yaml" "$work/rules.yaml" "$work/defaults.yaml" "$work/unit/rules.yaml" <<'PY'
import sys, yaml
def spec(path):
    (rule,) = [d for d in yaml.safe_load_all(open(path)) if d and d["kind"] == "PrometheusRule"]
    return rule["spec"]
yaml.safe_dump(spec(sys.argv[1]), open(sys.argv[2], "w"))
bare = spec(sys.argv[3])
for group in bare["groups"]:
    for rule in group["rules"]:
        rule.pop("annotations", None)
yaml.safe_dump(bare, open(sys.argv[4], "w"))
PY
check "promtool check rules: the PrometheusRule as rendered (ci/observability-values.yaml)" "$promtool" check rules "$work/rules.yaml"
check "promtool check rules: the PrometheusRule with the default values" "$promtool" check rules "$work/unit/rules.yaml"
cp hack/chart/alerts.test.yaml "$work/unit/"
check "promtool test rules hack/chart/alerts.test.yaml (each alert fires on bad series only)" \
  "$promtool" test rules "$work/unit/alerts.test.yaml"

# The unit tests must be able to fail: each alert made to fire on every series, never, or
# without waiting for its `for`, must fail them.
"$python" - "$work/unit/rules.yaml" "$work/mutants" <<'PY'
import copy, os, sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
mutations = {
    "everything": lambda r: r.update(expr='{__name__=~"modelserver_.+"}'),
    "never": lambda r: r.update(expr="absent(vector(1))"),
    "no-for": lambda r: r.pop("for"),
}
for gi, group in enumerate(rules["groups"]):
    for ri, rule in enumerate(group["rules"]):
        for what, mutate in mutations.items():
            mutant = copy.deepcopy(rules)
            mutate(mutant["groups"][gi]["rules"][ri])
            d = os.path.join(sys.argv[2], f"{rule['alert']}-{what}")
            os.makedirs(d)
            yaml.safe_dump(mutant, open(os.path.join(d, "rules.yaml"), "w"))
PY
survived=()
for dir in "$work"/mutants/*; do
  cp hack/chart/alerts.test.yaml "$dir/"
  if "$promtool" test rules "$dir/alerts.test.yaml" > /dev/null 2>&1; then survived+=("$(basename "$dir")"); fi
done
if [ ${#survived[@]} -eq 0 ]; then
  pass "the unit tests fail for each alert made to fire on everything, never, or without its for ($(ls "$work/mutants" | wc -l) mutants)"
else
  fail "the unit tests pass with these alerts broken: ${survived[*]}"
fi
"$python" - "$work/observability.yaml" "$work/rules.yaml" hack/chart/alerts.test.yaml docs/alerts.md > "$work/alerts.out" <<'PY' || true
import re, sys, yaml
render, rules_path, tests_path, doc_path = sys.argv[1:]
def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
rules = [r for g in yaml.safe_load(open(rules_path))["groups"] for r in g["rules"]]
alerts = [r for r in rules if "alert" in r]
names = [r["alert"] for r in alerts]
expect(len(names) == 10 and len(set(names)) == len(names), f"{len(names)} distinct alerts rendered: {', '.join(names)}")
values = yaml.safe_load(open("charts/modelserver-operator/ci/observability-values.yaml"))
base = values["metrics"]["prometheusRule"]["runbookBaseUrl"]
for r in alerts:
    a = r.get("annotations", {})
    expect(all(a.get(k) for k in ("summary", "description", "runbook")),
           f"{r['alert']}: summary, description and runbook annotations")
    expect(a.get("runbook_url") == f"{base}#{r['alert'].lower()}", f"{r['alert']}: runbook_url {a.get('runbook_url')}")
    expect(r.get("labels", {}).get("severity") in ("warning", "critical") and r["labels"].get("team") == "ml",
           f"{r['alert']}: severity and additionalAlertLabels")
# docs/alerts.md: one `## <AlertName>` section per alert (GitHub's anchor: the name in lower case).
sections = re.findall(r"^## (\S+)\s*$", open(doc_path).read(), re.M)
alert_sections = [s for s in sections if s.startswith("ModelServer")]
expect(sorted(alert_sections) == sorted(names),
       f"docs/alerts.md has a section for each alert and no other (sections {alert_sections})")
tested = set(re.findall(r"alertname: (\S+)", open(tests_path).read()))
expect(tested == set(names), f"alerts.test.yaml tests every alert (untested: {sorted(set(names) - tested)})")
# Off by default, and without runbook_url when no base URL is set.
docs = [d for d in yaml.safe_load_all(open(render)) if d]
(cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
expect(cm["metadata"]["labels"].get("grafana_dashboard") == "1" and cm["metadata"]["namespace"] == "monitoring"
       and cm["metadata"].get("annotations") == {"grafana_folder": "ModelServer"},
       "dashboard ConfigMap: label grafana_dashboard=1, namespace and annotations from the values")
(pm,) = [d for d in docs if d["kind"] == "PodMonitor"]
ep = pm["spec"]["podMetricsEndpoints"][0]
expect(pm["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "modelserver",
                                                  "app.kubernetes.io/managed-by": "modelserver-operator"}
       and ep["port"] == "admin" and ep["path"] == "/metrics"
       and {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"], "targetLabel": "modelserver"} in ep["relabelings"],
       "PodMonitor: ModelServer pods' admin port, app.kubernetes.io/instance as label modelserver")
PY
results "$work/alerts.out"
# Both renders without runbookBaseUrl: no runbook_url.
if grep -q runbook_url "$work/defaults.yaml"; then fail "runbook_url rendered without runbookBaseUrl"; else pass "no runbook_url without runbookBaseUrl"; fi
if "$helm" template "$release" "$chart" --namespace "$namespace" | grep -qE '^kind: (PrometheusRule|PodMonitor)$|grafana_dashboard'; then
  fail "the default values render a PrometheusRule, PodMonitor or dashboard"
else
  pass "the default values render no PrometheusRule, PodMonitor or dashboard"
fi

echo "== dashboard"
"$python" - "$chart/files/dashboard.json" "$work/observability.yaml" "$work/dashboard-rules.yaml" "$work/rules.yaml" "$work/names" > "$work/dashboard.out" <<'PY' || true
import json, re, sys, yaml
path, render, out_rules, alert_rules, names_out = sys.argv[1:]
def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
text = open(path).read()
dash = json.loads(text)
docs = [d for d in yaml.safe_load_all(open(render)) if d]
(cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
expect(json.loads(cm["data"]["modelserver.json"]) == dash, "the ConfigMap holds files/dashboard.json")
variables = {v["name"]: v for v in dash["templating"]["list"]}
expect(variables.get("datasource", {}).get("type") == "datasource" and variables["datasource"].get("query") == "prometheus",
       "a datasource variable (Prometheus)")
expect(all(variables.get(n, {}).get("type") == "query" for n in ("namespace", "modelserver")),
       "namespace and modelserver variables")
panels = [p for p in dash["panels"] if p["type"] != "row"]
ids = [p["id"] for p in dash["panels"]]
expect(len(ids) == len(set(ids)), f"{len(panels)} panels with distinct ids")
queries = []  # (where, expr)
for p in panels:
    expect(p.get("datasource", {}).get("uid") == "${datasource}" and p.get("targets")
           and all(t.get("datasource", {}).get("uid") == "${datasource}" for t in p["targets"]),
           f"panel {p['title']!r}: queries through $datasource")
    for t in p["targets"]:
        queries.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
for name in ("namespace", "modelserver"):
    q = variables[name]["query"]
    queries.append((f"variable {name}", re.sub(r"^label_values\((.*), *\w+\)$", r"\1", q["query"] if isinstance(q, dict) else q)))
rules, names = [], set()
for i, (where, expr) in enumerate(queries):
    # Grafana's variables, as Prometheus would see them after Grafana's interpolation.
    concrete = re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)
    concrete = re.sub(r"\$\{?\w+\}?", ".*", concrete)
    rules.append({"record": f"dashboard:query_{i}", "expr": concrete})
    used = set(re.findall(r"\bmodelserver_[a-z0-9_]+", expr))
    names |= used
    if not where.startswith("panel"):
        continue
    expect(bool(used), f"{where}: uses a modelserver metric")
    for m in re.finditer(r"\b(modelserver_(?!operator_)[a-z0-9_]+)(\{[^}]*\})?", expr):
        sel = m.group(2) or ""
        expect('namespace=~"$namespace"' in sel and 'modelserver=~"$modelserver"' in sel,
               f"{where}: {m.group(1)} filtered by $namespace and $modelserver")
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(out_rules, "w"))
for group in yaml.safe_load(open(alert_rules))["groups"]:
    for r in group["rules"]:
        names |= set(re.findall(r"\bmodelserver_[a-z0-9_]+", r["expr"]))
open(names_out, "w").write("\n".join(sorted(names)) + "\n")
# Every series the sidecar and operator export is on the dashboard.
expect(all(re.search(rf"\b{n}(_bucket|_sum|_count)?\b", text) for n in (
    "modelserver_requests_total", "modelserver_request_duration_seconds", "modelserver_inflight_requests",
    "modelserver_queue_depth", "modelserver_rejected_total", "modelserver_worker_restarts_total",
    "modelserver_worker_recycles_total", "modelserver_worker_load_seconds", "modelserver_worker_exits_total",
    "modelserver_workers_ready", "modelserver_ready", "modelserver_draining",
    "modelserver_operator_reconcile_total", "modelserver_operator_reconcile_duration_seconds",
    "modelserver_operator_managed_modelservers", "modelserver_operator_api_writes_total",
    "modelserver_operator_api_reads_total")), "the dashboard shows every series of sidecar/src/metrics.rs and operator/src/metrics.rs")
PY
results "$work/dashboard.out"
check "promtool check rules: every dashboard query (as recording rules)" "$promtool" check rules "$work/dashboard-rules.yaml"

echo "== Prometheus Operator objects against the Prometheus Operator's CRDs ($(basename "$(dirname "$(dirname "$crds")")"))"
for file in "$chart"/ci/*-values.yaml; do
  "$helm" template "$release" "$chart" --namespace "$namespace" --values "$file" > "$work/ci-$(basename "$file" -values.yaml).yaml"
done
"$python" - "$crds" "$work"/ci-*.yaml > "$work/crds.out" <<'PY' || true
import os, sys, yaml, jsonschema
crds, renders = sys.argv[1], sys.argv[2:]
def strict(schema):
    # The API server prunes fields a structural schema does not name; refuse them instead.
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: strict(v) for k, v in schema.items()}
    if (schema.get("type") == "object" and isinstance(schema.get("properties"), dict)
            and "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields")):
        schema["additionalProperties"] = False
    return schema
schemas = {}
for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PodMonitor", "podmonitors"), ("PrometheusRule", "prometheusrules")):
    crd = yaml.safe_load(open(os.path.join(crds, f"monitoring.coreos.com_{plural}.yaml")))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schemas[kind] = strict(version["schema"]["openAPIV3Schema"])
seen = set()
for path in renders:
    scenario = os.path.basename(path)[3:-5]
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") not in schemas:
            continue
        seen.add(doc["kind"])
        errors = sorted(jsonschema.Draft7Validator(schemas[doc["kind"]]).iter_errors(doc), key=str)
        ok = doc["apiVersion"] == "monitoring.coreos.com/v1" and not errors
        print(("ok   " if ok else "FAIL ") + f"{scenario}: {doc['kind']} {doc['metadata']['name']} valid against its CRD")
        for e in errors[:5]:
            print(f"     {'/'.join(map(str, e.absolute_path))}: {e.message}")
print(("ok   " if seen == set(schemas) else "FAIL ") + f"the ci/ scenarios render every Prometheus Operator kind ({sorted(seen)})")
PY
results "$work/crds.out"

echo "== metric names in the alerts and the dashboard exist"
# The sidecar's: from the real binary's /metrics.
if ! cargo build --quiet -p modelserver-sidecar --bin modelserver-sidecar --message-format=json > "$work/cargo.json" 2> "$work/out"; then
  fail "cargo build -p modelserver-sidecar"; sed 's/^/     /' "$work/out"
else
  sidecar=$("$python" -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "modelserver-sidecar" and m.get("executable"):
        print(m["executable"])' "$work/cargo.json" | tail -1)
  read -r port admin < <("$python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
  "$sidecar" serve --bind 127.0.0.1 --port "$port" --admin-port "$admin" --workers 2 --drain-delay 0s \
    -- "$python" examples/iris/worker.py > "$work/sidecar.log" 2>&1 &
  sidecar_pid=$!
  # Ready, a few requests (a 200 and a 404, so requests_total has series), then /metrics.
  if "$python" - "$port" "$admin" "$work/metrics.txt" > "$work/out" 2>&1 <<'PY'; then
import json, sys, time, urllib.error, urllib.request
port, admin, out = sys.argv[1:]
deadline = time.monotonic() + 60
while True:
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=2).status == 200:
            break
    except (urllib.error.URLError, OSError):
        pass
    if time.monotonic() > deadline:
        sys.exit("the sidecar was not ready within 60s")
    time.sleep(0.2)
body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
for _ in range(5):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", body, {"Content-Type": "application/json"})
    assert urllib.request.urlopen(req, timeout=10).status == 200
try:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/no-such-path", timeout=10)
except urllib.error.HTTPError:
    pass
open(out, "w").write(urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode())
PY
    pass "the real modelserver-sidecar served examples/iris and /metrics on loopback"
  else
    fail "running the real modelserver-sidecar"; sed 's/^/     /' "$work/out" "$work/sidecar.log"
  fi
  kill "$sidecar_pid" 2>/dev/null || true
  wait "$sidecar_pid" 2>/dev/null || true
  sidecar_pid=
fi
"$python" - "$work/names" "$work/metrics.txt" operator/src/metrics.rs > "$work/names.out" <<'PY' || true
import os, re, sys
names_path, metrics_path, operator_src = sys.argv[1:]
def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
used = open(names_path).read().split()
exposed = set()
if os.path.exists(metrics_path):
    for line in open(metrics_path):
        m = re.match(r"(?:# (?:TYPE|HELP) )?([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m:
            exposed.add(m.group(1))
src = open(operator_src).read()
operator = set(re.findall(r'"(modelserver_operator_[a-z0-9_]+)"', src))
histograms = set(re.findall(r'HistogramOpts::new\(\s*"(modelserver_operator_[a-z0-9_]+)"', src))
operator |= {h + s for h in histograms for s in ("_bucket", "_sum", "_count")}
expect(len(operator) > 5, f"{len(operator)} operator series names in {operator_src}")
expect(len([n for n in exposed if n.startswith("modelserver_")]) > 10, f"the sidecar's /metrics names {len(exposed)} series")
for name in used:
    if name.startswith("modelserver_operator_"):
        expect(name in operator, f"{name} is in {operator_src}")
    else:
        expect(name in exposed, f"{name} is in the sidecar's /metrics")
PY
results "$work/names.out"

echo "observability: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
