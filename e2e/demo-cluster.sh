#!/usr/bin/env bash
# `make demo-cluster`: the whole product for real on this machine. Starts the local control plane
# with the real node (e2e/cluster.sh up --real-node), builds and pushes the real images, starts
# the operator as its own process, applies the iris example on the real node, waits until it is
# Ready, and prints what to try. `make cluster-down` undoes all of it (the operator included).
#
# Environment: MODELSERVER_E2E_CLUSTER (default dev), as for cluster.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cluster=e2e/cluster.sh
cluster_name=${MODELSERVER_E2E_CLUSTER:-dev}
state=$root/e2e/.state/$cluster_name
target_dir=${CARGO_TARGET_DIR:-$root/target}
namespace=ml

log() { printf 'demo-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

start=$SECONDS
"$cluster" up --real-node
kubectl=$("$cluster" kubectl-path)
kc() { "$kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }

log "building the operator and the real images"
cargo build --quiet --release -p modelserver-operator
"$cluster" images >/dev/null
# shellcheck source=/dev/null
. "$state/images.env"

kc apply --server-side -f crds/ >/dev/null
kc wait --for condition=Established crd/modelservers.modelserver.dev --timeout 60s >/dev/null

# The operator runs from the state dir, so `cluster.sh down` knows it as the cluster's own.
mkdir -p "$state/bin" "$state/pids" "$state/logs"
install -m 0755 "$target_dir/release/modelserver-operator" "$state/bin/modelserver-operator"
if ! { [ -f "$state/pids/operator.pid" ] && kill -0 "$(cat "$state/pids/operator.pid")" 2>/dev/null; }; then
  KUBECONFIG=$state/admin.kubeconfig setsid "$state/bin/modelserver-operator" run \
    --sidecar-image "$SIDECAR_IMAGE" --metrics-addr 127.0.0.1:0 \
    >>"$state/logs/operator.log" 2>&1 </dev/null &
  echo $! >"$state/pids/operator.pid"
fi

kc create namespace "$namespace" --dry-run=client -o yaml | kc apply -f - >/dev/null
# The example as it is, with the real image and on the real node (spec is its last key).
{
  sed -e "s#image: registry.example.com/acme/iris:1.4.0#image: $IRIS_IMAGE#" examples/iris/modelserver.yaml
  echo "  pod:"
  echo "    nodeSelector: {modelserver.dev/node: real}"
  echo "    tolerations: [{key: modelserver.dev/node, operator: Equal, value: real, effect: NoSchedule}]"
} | kc apply --server-side --field-manager demo -f - >/dev/null
log "waiting for ms/iris to be Ready (2 pods, 2 workers each, on node real-0)"
if ! kc wait -n "$namespace" ms/iris --for condition=Ready --timeout 300s >/dev/null; then
  kc get -n "$namespace" ms,pods -o wide >&2 || true
  tail -20 "$state/logs/operator.log" >&2 || true
  die "ms/iris did not become Ready"
fi
ip=$(kc get -n "$namespace" service iris -o jsonpath='{.spec.clusterIP}')
kc get -n "$namespace" ms
cat <<EOF

The iris model runs on a real node (containerd + kubelet), $((SECONDS - start))s from start. Try:

  export KUBECONFIG=$state/admin.kubeconfig; alias kubectl=$kubectl
  curl -s http://$ip/predict -H 'Content-Type: application/json' -d '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
  kubectl get ms,deploy,pods -n $namespace -o wide
  kubectl scale ms/iris -n $namespace --replicas 3
  kubectl patch ms/iris -n $namespace --type merge -p '{"spec":{"model":{"env":[{"name":"IRIS_LOAD_DELAY","value":"3"}]}}}'   # a rollout
  kubectl describe ms/iris -n $namespace
  tail -f $state/logs/operator.log

make cluster-down stops all of it.
EOF
