#!/usr/bin/env bash
# `make bench-operator`: a report, not a test. Starts a local control plane of its own (cluster
# "bench"), runs the release operator against it, creates N ModelServers (default 500) with one
# server-side apply, and reports: time until every ModelServer has its Deployment, time until
# every one is Ready, API requests per ModelServer (the operator's own counters: single-object
# GETs and writes; the watches are a fixed cost and not counted), reconciles, the operator's peak
# RSS, the writes and GETs per minute at rest (target 0), and the requests per ModelServer by
# kind and verb.
#
# Knobs: N (ModelServers), REST_SECONDS (the at-rest window, default 60), OPERATOR (binary).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${N:-500}
REST_SECONDS=${REST_SECONDS:-60}
OPERATOR=${OPERATOR:-${CARGO_TARGET_DIR:-target}/release/modelserver-operator}
export MODELSERVER_E2E_CLUSTER=bench
# A kwok node takes 110 pods (the kubelet default): enough nodes for one pod per ModelServer.
export MODELSERVER_E2E_NODES=${MODELSERVER_E2E_NODES:-$(( N / 100 + 1 ))}
cluster=e2e/cluster.sh
namespace=bench
work=$(mktemp -d)
operator_pid=

cleanup() {
  [ -n "$operator_pid" ] && kill "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null
  "$cluster" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
log() { echo "bench-operator: $*" >&2; }

[ -x "$OPERATOR" ] || { log "no operator binary at $OPERATOR (make bench-operator builds it)"; exit 1; }
"$cluster" up >&2
export KUBECONFIG
KUBECONFIG=$("$cluster" kubeconfig)
kubectl=$("$cluster" kubectl-path)
"$kubectl" apply --server-side -f crds/ >/dev/null
"$kubectl" wait --for=condition=Established crd/modelservers.modelserver.dev --timeout=60s >/dev/null
"$kubectl" create namespace "$namespace" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$OPERATOR" run --namespace "$namespace" --metrics-addr "127.0.0.1:$port" --log-level warn \
  --sidecar-image registry.example.com/modelserver/modelserver-sidecar:bench 2>"$work/operator.log" &
operator_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { log "operator not ready"; cat "$work/operator.log" >&2; exit 1; }

metric() { # sum of a metric over its labels
  curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'
}

python3 - "$N" "$namespace" > "$work/modelservers.yaml" <<'PY'
import sys
n, ns = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    print(f"""---
apiVersion: modelserver.dev/v1alpha1
kind: ModelServer
metadata: {{name: ms-{i:04d}, namespace: {ns}}}
spec:
  image: registry.example.com/acme/iris:1.4.0
  replicas: 1
  model: {{command: [python3, /app/worker.py]}}
  server: {{workers: 2}}""")
PY

log "creating $N ModelServers"
start=$(now)
"$kubectl" apply --server-side --field-manager bench -f "$work/modelservers.yaml" >/dev/null
created=$(since "$start")
deployments_at= ready_at=
deadline=$(( $(date +%s) + 1800 ))
while [ -z "$ready_at" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { log "not all Ready within 30 minutes"; exit 1; }
  if [ -z "$deployments_at" ]; then
    count=$("$kubectl" get deployments -n "$namespace" --no-headers 2>/dev/null | wc -l)
    [ "$count" -ge "$N" ] && deployments_at=$(since "$start")
  fi
  ready=$("$kubectl" get modelservers -n "$namespace" \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
  [ "$ready" -ge "$N" ] && [ -n "$deployments_at" ] && ready_at=$(since "$start")
  sleep 1
done

reads=$(metric modelserver_operator_api_reads_total)
writes=$(metric modelserver_operator_api_writes_total)
reconciles=$(metric modelserver_operator_reconcile_total)
curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^modelserver_operator_api_(reads|writes)_total\{' > "$work/requests.txt" || true
log "all Ready after ${ready_at}s; measuring ${REST_SECONDS}s at rest"
rest_before=$(metric modelserver_operator_api_writes_total)
rest_reads_before=$(metric modelserver_operator_api_reads_total)
rest_reconciles_before=$(metric modelserver_operator_reconcile_total)
sleep "$REST_SECONDS"
rest_after=$(metric modelserver_operator_api_writes_total)
rest_reads_after=$(metric modelserver_operator_api_reads_total)
rest_reconciles_after=$(metric modelserver_operator_reconcile_total)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator_pid/status")

python3 - <<PY
n = $N
print(f"| ModelServers | {n} |")
print(f"| apply of all {n} (one kubectl apply --server-side) | ${created} s |")
print(f"| until every ModelServer has its Deployment | ${deployments_at} s |")
print(f"| until every ModelServer is Ready | ${ready_at} s |")
print(f"| reconciles | {int($reconciles)} ({$reconciles / n:.1f} per ModelServer) |")
print(f"| API requests per ModelServer (GETs + writes) | {($reads + $writes) / n:.1f} ({$reads / n:.1f} GETs, {$writes / n:.1f} writes) |")
print(f"| operator peak RSS (VmHWM) | {$peak_kib / 1024:.1f} MiB |")
print(f"| writes per minute at rest (target 0) | {($rest_after - $rest_before) * 60 / $REST_SECONDS:.0f} |")
print(f"| GETs per minute at rest (target 0) | {($rest_reads_after - $rest_reads_before) * 60 / $REST_SECONDS:.0f} |")
print(f"| reconciles per minute at rest | {($rest_reconciles_after - $rest_reconciles_before) * 60 / $REST_SECONDS:.0f} |")
import re
for line in open("$work/requests.txt"):
    series, value = line.rsplit(" ", 1)
    labels = dict(re.findall(r'(\w+)="([^"]*)"', series))
    what = "GET" if "_reads_" in series else labels.get("verb", "?")
    print(f"| per ModelServer: {labels.get('kind', '?')} {what} | {float(value) / n:.2f} |")
PY
