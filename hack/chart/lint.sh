#!/usr/bin/env bash
# `make chart-lint`: every check of the chart, the install bundle and the Argo CD health check
# that needs no cluster.
#   1. the chart's CRD copy and deploy/install.yaml are what the generators make (no drift);
#   2. helm lint --strict, with the default values and each charts/modelserver-operator/ci/ file;
#   3. helm template of each of them, strictly validated against the Kubernetes schemas of the
#      oldest and newest versions we support (kubernetes-validate --strict); the ServiceMonitor, a
#      CRD kind, is checked against the metrics Service it must select instead;
#   4. what each render must contain (RBAC mode, leader election, CRD policy, security context),
#      and that the rendered RBAC grants exactly rbac-expected.txt;
#   5. values.schema.json refuses bad values;
#   6. docs/argocd/health.lua against its fixtures with real Lua interpreters;
#   7. the alerts and the Grafana dashboard (hack/chart/observability-test.sh: promtool check and
#      test rules, every dashboard query parsed, metric names from the real sidecar's /metrics,
#      the ServiceMonitor, PodMonitor and PrometheusRule against the Prometheus Operator's CRDs).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
chart=charts/modelserver-operator
release=modelserver-operator
namespace=modelserver-system
helm=$(hack/chart/tools.sh helm)
python=$(./hack/venv.sh)
bin=$(dirname "$python")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: runs the command, output shown only on failure.
check() {
  local what=$1
  shift
  if "$@" > "$work/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$work/out"; fi
}

echo "== generated files"
check "chart CRD copy matches crds/ (hack/chart/sync-crd.sh)" hack/chart/sync-crd.sh --check
check "deploy/install.yaml matches the chart (hack/chart/gen-install.sh)" hack/chart/gen-install.sh --check

# Scenarios: the default values and every ci/*-values.yaml (namespaced, ha, servicemonitor,
# networkpolicy, observability, everything).
scenarios=(default)
for file in "$chart"/ci/*-values.yaml; do
  name=$(basename "$file" -values.yaml)
  scenarios+=("$name")
done
values_args() { [ "$1" = default ] || echo "--values=$chart/ci/$1-values.yaml"; }

echo "== helm lint --strict and helm template"
for scenario in "${scenarios[@]}"; do
  # shellcheck disable=SC2046 # no argument for the defaults
  check "helm lint --strict ($scenario)" "$helm" lint --strict "$chart" --namespace "$namespace" $(values_args "$scenario")
  # shellcheck disable=SC2046
  if "$helm" template "$release" "$chart" --namespace "$namespace" $(values_args "$scenario") \
    > "$work/$scenario.yaml" 2> "$work/out"; then
    pass "helm template ($scenario)"
  else
    fail "helm template ($scenario)"; sed 's/^/     /' "$work/out"
    continue
  fi
  # The Prometheus Operator's kinds out (hack/chart/observability-test.sh validates them against
  # that operator's CRDs; the ServiceMonitor's selection is also checked below); the rest must
  # all be kinds kubernetes-validate knows.
  "$python" - "$work/$scenario.yaml" "$work/$scenario.core.yaml" "$work/$scenario.servicemonitor.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if d["kind"] not in ("ServiceMonitor", "PodMonitor", "PrometheusRule")]
monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
yaml.safe_dump_all(monitors, open(sys.argv[3], "w"))
PY
  for version in 1.33.0 1.37.0; do
    # No warning either: a kind without a schema would otherwise pass unchecked.
    if "$bin/kubernetes-validate" --strict --quiet -k "$version" "$work/$scenario.core.yaml" > "$work/out" 2>&1 \
      && ! [ -s "$work/out" ]; then
      pass "kubernetes-validate --strict -k $version ($scenario)"
    else
      fail "kubernetes-validate --strict -k $version ($scenario)"; sed 's/^/     /' "$work/out"
    fi
  done
done

echo "== what the renders contain"
# Each scenario's expectations, in one place; prints "ok ..." / "FAIL ..." lines.
"$python" - "$work" "$root/crds/modelserver.dev_modelservers.yaml" "$namespace" > "$work/assert.out" <<'PY' || true
import json, os, sys, yaml
work, crd_path, namespace = sys.argv[1:]
results = []
def expect(cond, what):
    results.append(("ok  " if cond else "FAIL") + " " + what)
def load(scenario):
    path = os.path.join(work, scenario + ".yaml")
    return [d for d in yaml.safe_load_all(open(path)) if d] if os.path.exists(path) else None
def kinds(docs, kind):
    return [d for d in docs if d["kind"] == kind]
def deployment(docs):
    (d,) = kinds(docs, "Deployment")
    return d
def container(docs):
    (c,) = deployment(docs)["spec"]["template"]["spec"]["containers"]
    return c
def operator_roles(docs):
    return [d for d in docs if d["kind"] in ("ClusterRole", "Role")
            and d["metadata"]["name"] not in ("modelserver-edit", "modelserver-view")]

docs = load("default")
if docs:
    crd = kinds(docs, "CustomResourceDefinition")
    expect(len(crd) == 1, "default: the CRD is installed")
    source = yaml.safe_load(open(crd_path))
    rendered = dict(crd[0]) if crd else {}
    meta = rendered.pop("metadata", {})
    source.pop("metadata")
    # fromYaml/toYaml in the template must not change a thing. Numbers compare as numbers: the
    # generator writes `minimum: 1.0` and Helm `minimum: 1`, the same JSON number to the API server.
    def numbers(node):
        if isinstance(node, dict):
            return {k: numbers(v) for k, v in node.items()}
        if isinstance(node, list):
            return [numbers(v) for v in node]
        if isinstance(node, float) and node.is_integer():
            return int(node)
        return node
    expect(json.dumps(numbers(rendered), sort_keys=True) == json.dumps(numbers(source), sort_keys=True),
           "default: the rendered CRD equals crds/modelserver.dev_modelservers.yaml")
    expect(meta.get("name") == "modelservers.modelserver.dev", "default: the CRD keeps its name")
    expect(meta.get("annotations", {}).get("helm.sh/resource-policy") == "keep",
           "default: the CRD is kept on uninstall (helm.sh/resource-policy: keep)")
    roles = operator_roles(docs)
    expect([r["kind"] for r in roles] == ["ClusterRole"], "default: one ClusterRole for the operator, no Role")
    expect(len(kinds(docs, "ClusterRoleBinding")) == 1, "default: one ClusterRoleBinding")
    d = deployment(docs)
    c = container(docs)
    args = c["args"]
    expect(d["spec"]["strategy"]["type"] == "Recreate", "default: Recreate without leader election")
    expect("--leader-elect" not in args, "default: no --leader-elect with one replica")
    expect(not any(a.startswith("--namespace") for a in args), "default: watches all namespaces")
    expect(not any(a.startswith("--sidecar-image-pull-policy") for a in args), "default: the kubelet's pull policy")
    expect(args[0] == "run" and "--sidecar-image=modelserver-sidecar:0.1.0" in args
           and "--metrics-addr=0.0.0.0:8080" in args, "default: run --sidecar-image --metrics-addr")
    expect(c["image"] == "modelserver-operator:0.1.0", "default: image tag is the appVersion")
    expect(c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
           and c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"},
           "default: liveness /healthz, readiness /readyz on the metrics port")
    expect(c["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}], "default: port metrics 8080")
    env = {e["name"]: e for e in c["env"]}
    expect(env.get("POD_NAMESPACE", {}).get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.namespace"}},
           "default: POD_NAMESPACE from the downward API")
    pod = d["spec"]["template"]["spec"]
    sc, psc = c["securityContext"], pod["securityContext"]
    expect(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532
           and psc.get("seccompProfile") == {"type": "RuntimeDefault"}
           and sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
           and sc.get("capabilities") == {"drop": ["ALL"]},
           "default: restricted security context (non-root 65532, RuntimeDefault, no escalation, read-only, drop ALL)")
    expect(c["resources"].get("requests") and c["resources"].get("limits"), "default: resources set")
    (svc,) = kinds(docs, "Service")
    expect(svc["spec"]["ports"][0]["name"] == "metrics" and svc["spec"]["selector"]
           == d["spec"]["selector"]["matchLabels"], "default: the metrics Service selects the operator pods")
    agg = {r["metadata"]["name"]: r["metadata"]["labels"] for r in kinds(docs, "ClusterRole")}
    expect(agg.get("modelserver-edit", {}).get("rbac.authorization.k8s.io/aggregate-to-edit") == "true"
           and agg.get("modelserver-view", {}).get("rbac.authorization.k8s.io/aggregate-to-view") == "true",
           "default: modelserver-edit/view aggregate to the built-in edit/view roles")
    expect(not kinds(docs, "NetworkPolicy") and not kinds(docs, "ServiceMonitor"),
           "default: no NetworkPolicy, no ServiceMonitor")
    expect(not [r for r in kinds(docs, "Role")], "default: no leader-election Role")

docs = load("namespaced")
if docs:
    roles = operator_roles(docs)
    expect(not kinds(docs, "ClusterRole") and not kinds(docs, "ClusterRoleBinding"),
           "namespaced: no ClusterRole or ClusterRoleBinding at all")
    expect([(r["kind"], r["metadata"]["namespace"]) for r in roles] == [("Role", "ml")],
           "namespaced: one Role, in the watched namespace ml")
    expect([b["metadata"]["namespace"] for b in kinds(docs, "RoleBinding")] == ["ml"], "namespaced: its RoleBinding in ml")
    expect("--namespace=ml" in container(docs)["args"], "namespaced: --namespace=ml")

docs = load("ha")
if docs:
    d = deployment(docs)
    args = container(docs)["args"]
    expect(d["spec"]["replicas"] == 2 and "--leader-elect" in args, "ha: 2 replicas with --leader-elect")
    expect(d["spec"]["strategy"]["type"] == "RollingUpdate", "ha: RollingUpdate with leader election")
    lease = [r for r in kinds(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    expect(len(lease) == 1 and lease[0]["metadata"]["namespace"] == namespace,
           "ha: a leader-election Role in the release namespace")

docs = load("networkpolicy")
if docs:
    (np,) = kinds(docs, "NetworkPolicy")
    spec = np["spec"]
    expect(spec["podSelector"]["matchLabels"] == deployment(docs)["spec"]["selector"]["matchLabels"],
           "networkpolicy: selects the operator pods")
    expect(spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}],
           "networkpolicy: ingress only to the metrics port, egress restricted")
    expect(sorted(p["port"] for p in spec["egress"][0]["ports"]) == [443, 6443], "networkpolicy: egress to the API server ports")

docs = load("everything")
if docs:
    c = container(docs)
    args = c["args"]
    expect(c["image"] == "registry.example.com/acme/modelserver-operator@sha256:" + "0123456789abcdef" * 4,
           "everything: registry prefix and digest")
    expect("--sidecar-image=registry.example.com/acme/modelserver-sidecar:0.1.0-rc.1" in args, "everything: sidecar image")
    expect("--sidecar-image-pull-policy=Always" in args, "everything: sidecar image pull policy")
    expect(not kinds(docs, "CustomResourceDefinition"), "everything: crds.install=false renders no CRD")
    expect("--concurrency=8" in args and "--debounce=250ms" in args and "--log-format=text" in args
           and "--some-future-flag=1" in args,
           "everything: --concurrency, --debounce, --log-format, extraArgs")

for scenario in ("servicemonitor", "everything"):
    path = os.path.join(work, scenario + ".servicemonitor.yaml")
    docs = load(scenario)
    if not docs:
        continue
    monitors = [d for d in yaml.safe_load_all(open(path)) if d]
    expect(len(monitors) == 1, f"{scenario}: one ServiceMonitor")
    if not monitors:
        continue
    sm = monitors[0]
    (svc,) = kinds(docs, "Service")
    selector = sm["spec"]["selector"]["matchLabels"]
    expect(sm["apiVersion"] == "monitoring.coreos.com/v1"
           and all(svc["metadata"]["labels"].get(k) == v for k, v in selector.items())
           and sm["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]],
           f"{scenario}: the ServiceMonitor selects the metrics Service")
    expect([e["port"] for e in sm["spec"]["endpoints"]] == [p["name"] for p in svc["spec"]["ports"]]
           and set(sm["spec"]["endpoints"][0]) <= {"port", "path", "interval", "scrapeTimeout", "honorLabels"},
           f"{scenario}: the ServiceMonitor scrapes the Service's metrics port")
    # The per-ModelServer condition series carry the ModelServer's namespace; without
    # honorLabels Prometheus renames it and the Stalled alert groups by the operator's namespace.
    expect(sm["spec"]["endpoints"][0].get("honorLabels") is True,
           f"{scenario}: the ServiceMonitor keeps the operator's series' own labels (honorLabels)")
print("\n".join(results))
PY
while IFS= read -r line; do
  case "$line" in
    "ok   "*) pass "${line#ok   }" ;;
    *) fail "${line#FAIL }" ;;
  esac
done < "$work/assert.out"
[ -s "$work/assert.out" ] || fail "the render assertions printed nothing"

echo "== RBAC: rendered rules against rbac-expected.txt"
sa=$release
rbac_case() { # rbac_case SCENARIO NAMESPACE SECTION...
  local scenario=$1 ns=$2
  shift 2
  [ -f "$work/$scenario.yaml" ] || { fail "rbac ($scenario, $ns): no render"; return; }
  if diff <(hack/chart/rbac.sh expected "$@") \
    <(hack/chart/rbac.sh rendered "$work/$scenario.yaml" "$ns" "$namespace" "$sa") > "$work/out" 2>&1; then
    pass "rbac ($scenario, namespace $ns) grants exactly [$*]"
  else
    fail "rbac ($scenario, namespace $ns) differs from [$*] (< expected, > rendered)"; sed 's/^/     /' "$work/out"
  fi
}
rbac_case default "$namespace" operator
rbac_case default ml operator
rbac_case ha "$namespace" operator leader-election
rbac_case ha ml operator
rbac_case namespaced ml operator
if [ -n "$(hack/chart/rbac.sh rendered "$work/namespaced.yaml" other "$namespace" "$sa")" ]; then
  fail "rbac (namespaced, namespace other) grants something outside the watched namespace"
else
  pass "rbac (namespaced, namespace other) grants nothing"
fi

echo "== values.schema.json refuses bad values"
check "values.schema.json is a valid JSON Schema (draft 7)" "$bin/check-jsonschema" --check-metaschema "$chart/values.schema.json"
refuse() { # refuse WHAT PATTERN HELM-ARGS...: helm template must fail, naming the value
  local what=$1 pattern=$2
  shift 2
  if "$helm" template "$release" "$chart" "$@" > /dev/null 2> "$work/out"; then
    fail "refused: $what (helm template $* succeeded)"
  elif grep -qE "$pattern" "$work/out"; then
    pass "refused: $what"
  else
    fail "refused: $what, but without naming it (/$pattern/):"; sed 's/^/     /' "$work/out"
  fi
}
refuse "replicas=notanumber" "replicas" --set replicas=notanumber
refuse "replicas=-1" "replicas" --set replicas=-1
refuse "a misspelt top-level value" "replica" --set replica=2
refuse "operator.logFormat=xml" "logFormat" --set operator.logFormat=xml
refuse "two watched namespaces" "watchNamespaces" --set 'watchNamespaces={a,b}'
refuse "a watched namespace that is not a DNS label" "watchNamespaces" --set 'watchNamespaces={Not_A_Namespace}'
refuse "image.digest without sha256:" "digest" --set image.digest=latest
refuse "metrics.port=70000" "port" --set metrics.port=70000
refuse "crds.install=yes (a string)" "install" --set-string crds.install=yes
refuse "serviceAccount.create=false without a name" "serviceAccount.name is required" --set serviceAccount.create=false
refuse "metrics.prometheusRule.alerts.highErrorRatio.ratio=5 (not a fraction)" "highErrorRatio/ratio" --set metrics.prometheusRule.alerts.highErrorRatio.ratio=5
refuse "an alert's for=soon" "notReady/for" --set metrics.prometheusRule.alerts.notReady.for=soon
refuse "a misspelt alert" "alerts.*notready" --set metrics.prometheusRule.alerts.notready.for=5m
refuse "metrics.prometheusRule.modelServerLabel=app.kubernetes.io/instance (not a label name)" "modelServerLabel" --set metrics.prometheusRule.modelServerLabel=app.kubernetes.io/instance
refuse "metrics.prometheusRule.runbookBaseUrl with an anchor" "runbookBaseUrl" --set metrics.prometheusRule.runbookBaseUrl=https://x/alerts.md#top
refuse "metrics.dashboard.labelValue=1 (a number)" "dashboard/labelValue" --set metrics.dashboard.labelValue=1

echo "== Argo CD health check"
if hack/chart/health-test.sh > "$work/health.out" 2>&1; then
  pass "docs/argocd/health.lua: $(grep -c '^ok' "$work/health.out") checks (hack/chart/health-test.sh)"
else
  fail "docs/argocd/health.lua (hack/chart/health-test.sh):"; sed 's/^/     /' "$work/health.out"
fi
check "kubernetes-validate --strict docs/argocd/argocd-cm.yaml" "$bin/kubernetes-validate" --strict --quiet docs/argocd/argocd-cm.yaml
check "examples/gitops parse as YAML with apiVersion and kind" "$python" - examples/gitops <<'PY'
import pathlib, sys, yaml
files = sorted(pathlib.Path(sys.argv[1]).glob("*.yaml"))
assert files, "no examples/gitops/*.yaml"
for path in files:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            assert doc.get("apiVersion") and doc.get("kind"), f"{path}: a document without apiVersion/kind"
PY

echo "== alerts and dashboard (hack/chart/observability-test.sh)"
if hack/chart/observability-test.sh > "$work/observability.out" 2>&1; then
  pass "alerts and dashboard: $(grep -c '^ok' "$work/observability.out") checks (hack/chart/observability-test.sh)"
else
  fail "alerts and dashboard (hack/chart/observability-test.sh):"; grep -v '^ok' "$work/observability.out" | sed 's/^/     /'
fi

echo "chart-lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
