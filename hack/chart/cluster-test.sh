#!/usr/bin/env bash
# `make chart-cluster-test`: the chart and deploy/install.yaml on a real API server (the local
# control plane of e2e/cluster.sh: etcd, kube-apiserver, kube-controller-manager, kwok), without
# the operator running:
#   1. `kubectl apply --server-side -f deploy/install.yaml`: the CRD is accepted, the operator pod
#      is admitted in a namespace enforcing the restricted Pod Security Standard; what the
#      ServiceAccount may do (`kubectl auth can-i --list`) is exactly rbac-expected.txt; acting as
#      the ServiceAccount, everything the operator does works (server-side apply of the children
#      `modelserver-operator render` makes, status patch, Secret get, events, deleting an HPA) and
#      the rest is forbidden (spec writes, Secret list, update); `kubectl delete -f` removes it;
#   2. `helm install` (cluster-wide): the same RBAC; the aggregated modelserver-edit/-view reach
#      users bound to the built-in edit and view roles;
#   3. `helm upgrade --set replicas=2`: leader election, its Lease rights and no more;
#   4. `helm upgrade` with a changed CRD: the new schema reaches the cluster (Helm never upgrades
#      crds/, which is why the chart ships the CRD as a template);
#   5. `helm upgrade` to namespace-scoped mode: rights in the watched namespace only;
#   6. `helm uninstall` keeps the CRD and the ModelServers; a new install adopts the kept CRD.
#
# Runs its own cluster (MODELSERVER_E2E_CLUSTER=chart, state under $HOME/.cache/modelserver),
# stopped on exit. Prints "N passed, N failed".
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

export MODELSERVER_E2E_CLUSTER=${MODELSERVER_E2E_CLUSTER:-chart}
export MODELSERVER_E2E_STATE=${MODELSERVER_E2E_STATE:-${MODELSERVER_CACHE:-$HOME/.cache/modelserver}/cluster-$MODELSERVER_E2E_CLUSTER}
cluster=e2e/cluster.sh
helm=$(hack/chart/tools.sh helm)
chart=charts/modelserver-operator
release=modelserver-operator
ns=modelserver-system
sa=modelserver-operator
as_sa=system:serviceaccount:$ns:$sa
models=ml
work=$(mktemp -d)
passed=0
failed=0

cleanup() {
  "$cluster" down > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '\n== %s\n' "$*"; }
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: the command must succeed (its output shown when it fails).
check() {
  local what=$1
  shift
  if "$@" > "$work/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$work/out"; fi
}
# forbidden DESCRIPTION COMMAND...: the command must fail with Forbidden.
forbidden() {
  local what=$1
  shift
  if "$@" > "$work/out" 2>&1; then
    fail "$what: allowed, should be forbidden"
  elif grep -qi 'forbidden' "$work/out"; then
    pass "$what: forbidden"
  else
    fail "$what: failed, but not as forbidden:"; sed 's/^/     /' "$work/out"
  fi
}
# require DESCRIPTION COMMAND...: like check, but nothing after it makes sense if it fails.
require() {
  local before=$failed
  check "$@"
  if [ "$failed" -gt "$before" ]; then
    echo
    echo "chart-cluster-test: stopped at \"$1\": $passed passed, $failed failed"
    exit 1
  fi
}
# eventually SECONDS DESCRIPTION COMMAND...: polls the command until it succeeds or time is up.
eventually() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" > "$work/out" 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      fail "$what (not within ${seconds}s)"; sed 's/^/     /' "$work/out"
      return 0
    fi
    sleep 0.5
  done
  pass "$what"
}
# rbac_is NAMESPACE SECTION...: what the ServiceAccount may do in NAMESPACE, as the API server
# says, must be exactly the union of those sections of rbac-expected.txt.
rbac_is() {
  local namespace=$1
  shift
  if diff <(hack/chart/rbac.sh expected "$@") <(hack/chart/rbac.sh live "$namespace" "$ns" "$sa") \
    > "$work/out" 2>&1; then
    pass "the ServiceAccount may do exactly [$*] in namespace $namespace"
  else
    fail "the ServiceAccount's rights in namespace $namespace differ from [$*] (< expected, > live):"
    sed 's/^/     /' "$work/out"
  fi
}
# The children of a ModelServer as the operator would apply them, from the live object (its uid
# makes the controller ownerReference).
render_children() { # render_children NAME OUTPUT
  k -n "$models" get modelserver "$1" -o yaml | "$operator" render -f - > "$2"
}

operator=${OPERATOR_BIN:-${CARGO_TARGET_DIR:-target}/debug/modelserver-operator}
[ -x "$operator" ] || cargo build --quiet -p modelserver-operator
[ -x "$operator" ] || { echo "cluster-test.sh: $operator is missing" >&2; exit 1; }

log "cluster"
start=$SECONDS
"$cluster" down > /dev/null 2>&1 || true
"$cluster" up
KUBECONFIG=$("$cluster" kubeconfig)
KUBECTL=$("$cluster" kubectl-path)
export KUBECONFIG KUBECTL
k() { "$KUBECTL" "$@"; }
as_operator() { "$KUBECTL" --as "$as_sa" "$@"; }
h() { "$helm" --kubeconfig "$KUBECONFIG" "$@"; }

# --------------------------------------------------------------------------------------------
log "1. deploy/install.yaml with kubectl"
require "kubectl apply --server-side -f deploy/install.yaml" k apply --server-side -f deploy/install.yaml
check "the CRD is established" k wait crd/modelservers.modelserver.dev --for=condition=Established --timeout=60s
check "the operator pod is admitted (restricted Pod Security) and rolled out" \
  k -n "$ns" rollout status "deployment/$release" --timeout=120s
rbac_is "$ns" operator every-authenticated-user
rbac_is default operator every-authenticated-user

k create namespace "$models" > /dev/null
k -n "$models" create secret generic iris-token --from-literal=token=s3cret > /dev/null
check "a ModelServer is accepted (examples/autoscaled)" k apply --server-side -f examples/autoscaled/modelserver.yaml
name=iris-autoscaled
render_children "$name" "$work/children.yaml"
check "as the operator: server-side apply creates the children" \
  as_operator apply --server-side --field-manager=modelserver-operator -f "$work/children.yaml"
check "as the operator: server-side apply again (patch)" \
  as_operator apply --server-side --field-manager=modelserver-operator --force-conflicts -f "$work/children.yaml"
check "as the operator: children are read and watched" \
  as_operator -n "$models" get deployment,service,hpa,pdb -l "app.kubernetes.io/instance=$name" -o name
check "as the operator: status patch" as_operator -n "$models" patch modelserver "$name" --subresource=status \
  --type=merge -p '{"status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"False","reason":"RollingOut","message":"0 of 2 replicas available","lastTransitionTime":"2026-01-01T00:00:00Z","observedGeneration":1}]}}'
check "as the operator: list the ModelServers' pods" \
  as_operator -n "$models" get pods -l app.kubernetes.io/managed-by=modelserver-operator -o name
check "as the operator: create an event" as_operator create -f - <<EOF
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: $name.test, namespace: $models}
regarding: {apiVersion: modelserver.dev/v1alpha1, kind: ModelServer, name: $name, namespace: $models}
reason: Reconciled
note: test event
type: Normal
action: Apply
reportingController: modelserver-operator
reportingInstance: modelserver-operator-test
eventTime: "2026-01-01T00:00:00.000000Z"
EOF
check "as the operator: delete the HPA (spec stopped asking for it)" \
  as_operator -n "$models" delete horizontalpodautoscaler "$name"
forbidden "as the operator: write a ModelServer's spec" \
  as_operator -n "$models" patch modelserver "$name" --type=merge -p '{"spec":{"replicas":3}}'
forbidden "as the operator: list Secrets" as_operator -n "$models" get secrets
forbidden "as the operator: get the auth Secret by name" as_operator -n "$models" get secret iris-token -o name
forbidden "as the operator: get a pod by name (list and watch only)" as_operator -n "$models" get pod any-pod
forbidden "as the operator: update (replace) a Deployment" as_operator -n "$models" replace -f "$work/children.yaml"
forbidden "as the operator: read ConfigMaps" as_operator -n "$models" get configmaps
forbidden "as the operator: delete a ModelServer" as_operator -n "$models" delete modelserver "$name"
forbidden "as the operator: create a Lease (no leader election in this install)" as_operator -n "$ns" create -f - <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: modelserver-operator, namespace: $ns}
EOF
check "deleting the ModelServer" k -n "$models" delete modelserver "$name" --wait=true --timeout=60s
eventually 60 "garbage collection removes its children (controller ownerReferences)" \
  bash -c "[ -z \"\$('$KUBECTL' -n $models get deployment,service,pdb -l app.kubernetes.io/instance=$name -o name)\" ]"
check "kubectl delete -f deploy/install.yaml" k delete -f deploy/install.yaml --wait=true --timeout=120s
check "the CRD is gone with it" k wait --for=delete crd/modelservers.modelserver.dev --timeout=60s

# --------------------------------------------------------------------------------------------
log "2. helm install (cluster-wide)"
require "helm install" h install "$release" "$chart" --namespace "$ns" --create-namespace --wait --timeout 2m
rbac_is "$ns" operator every-authenticated-user
rbac_is "$models" operator every-authenticated-user
check "a ModelServer is accepted" k apply --server-side -f examples/iris/modelserver.yaml
k -n "$models" create rolebinding alice-edit --clusterrole=edit --user=alice > /dev/null
k -n "$models" create rolebinding bob-view --clusterrole=view --user=bob > /dev/null
can() { [ "$("$KUBECTL" auth can-i "$@" 2>/dev/null)" = yes ]; }
cannot() { [ "$("$KUBECTL" auth can-i "$@" 2>/dev/null)" = no ]; }
eventually 30 "edit (aggregated modelserver-edit): alice may create ModelServers" \
  can create modelservers.modelserver.dev -n "$models" --as alice
check "edit: alice may scale ModelServers" can patch modelservers.modelserver.dev --subresource=scale -n "$models" --as alice
check "edit: alice may not write their status" cannot patch modelservers.modelserver.dev --subresource=status -n "$models" --as alice
eventually 30 "view (aggregated modelserver-view): bob may list ModelServers" \
  can list modelservers.modelserver.dev -n "$models" --as bob
check "view: bob may not create ModelServers" cannot create modelservers.modelserver.dev -n "$models" --as bob

# --------------------------------------------------------------------------------------------
log "3. helm upgrade --set replicas=2 (leader election)"
check "helm upgrade --set replicas=2" h upgrade "$release" "$chart" --namespace "$ns" --reuse-values --set replicas=2 --wait --timeout 2m
check "the Deployment runs --leader-elect with RollingUpdate" bash -c \
  "'$KUBECTL' -n $ns get deployment $release -o jsonpath='{.spec.template.spec.containers[0].args} {.spec.strategy.type}' | grep -- '--leader-elect.*RollingUpdate'"
rbac_is "$ns" operator leader-election every-authenticated-user
rbac_is "$models" operator every-authenticated-user
lease() { printf 'apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: %s, namespace: %s}\nspec: {holderIdentity: %s}\n' "$1" "$ns" "$2"; }
check "as the operator: create the Lease" as_operator create -f <(lease modelserver-operator pod-a)
check "as the operator: get and update the Lease" bash -c \
  "'$KUBECTL' --as $as_sa -n $ns get lease modelserver-operator -o yaml | sed 's/holderIdentity: pod-a/holderIdentity: pod-b/' | '$KUBECTL' --as $as_sa replace -f -"
k -n "$ns" create -f <(lease another-lease someone) > /dev/null
forbidden "as the operator: read another Lease" as_operator -n "$ns" get lease another-lease
forbidden "as the operator: a Lease in another namespace" as_operator -n "$models" get lease modelserver-operator

# --------------------------------------------------------------------------------------------
log "4. helm upgrade brings a changed CRD"
cp -r "$chart" "$work/chart"
marker="upgraded-by-cluster-test"
# A visible change of the CRD: one more short name.
sed -i "s/^    - ms$/    - ms\n    - $marker/" "$work/chart/files/crds/modelserver.dev_modelservers.yaml"
check "helm upgrade with the changed chart" h upgrade "$release" "$work/chart" --namespace "$ns" --reuse-values --wait --timeout 2m
check "the live CRD has the new short name" bash -c \
  "'$KUBECTL' get crd modelservers.modelserver.dev -o jsonpath='{.spec.names.shortNames}' | grep -q $marker"
check "the ModelServer survived the CRD upgrade" k -n "$models" get modelserver iris -o name

# --------------------------------------------------------------------------------------------
log "5. helm upgrade to namespace-scoped mode"
check "helm upgrade --set watchNamespaces={$models}" h upgrade "$release" "$chart" --namespace "$ns" --reset-values \
  --set "watchNamespaces={$models}" --set rbac.aggregateToDefaultRoles=false --wait --timeout 2m
check "the operator runs with --namespace=$models" bash -c \
  "'$KUBECTL' -n $ns get deployment $release -o jsonpath='{.spec.template.spec.containers[0].args}' | grep -q -- '--namespace=$models'"
check "no ClusterRole or ClusterRoleBinding of the release is left" bash -c \
  "[ -z \"\$('$KUBECTL' get clusterrole,clusterrolebinding -l app.kubernetes.io/instance=$release -o name)\" ]"
rbac_is "$models" operator every-authenticated-user
rbac_is "$ns" every-authenticated-user
rbac_is default every-authenticated-user

# --------------------------------------------------------------------------------------------
log "6. helm uninstall keeps the CRD and the ModelServers"
check "helm uninstall" h uninstall "$release" --namespace "$ns" --wait --timeout 2m
check "the CRD is kept" k get crd modelservers.modelserver.dev -o name
check "the ModelServer is kept" k -n "$models" get modelserver iris -o name
check "the release's RBAC is gone" bash -c \
  "[ -z \"\$('$KUBECTL' get clusterrole,clusterrolebinding -l app.kubernetes.io/instance=$release -o name; '$KUBECTL' -n $models get role,rolebinding -l app.kubernetes.io/instance=$release -o name)\" ]"
rbac_is "$models" every-authenticated-user
check "helm install again adopts the kept CRD" h install "$release" "$chart" --namespace "$ns" --wait --timeout 2m
rbac_is "$models" operator every-authenticated-user

echo
echo "chart-cluster-test: $passed passed, $failed failed ($((SECONDS - start))s)"
[ "$failed" -eq 0 ]
