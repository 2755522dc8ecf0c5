#!/usr/bin/env bash
# A real local Kubernetes control plane for the e2e suite and for trying the operator:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (simulated nodes: pods are
# scheduled and marked Running and Ready without running). No container runtime, no cloud.
#
#   e2e/cluster.sh up [--real-node]   build (cached) and start the cluster; returns when it is ready.
#                                     --real-node (or MODELSERVER_E2E_REAL_NODE=1) adds a loopback
#                                     image registry and `real-0`, a real node (e2e/node.sh, root)
#   e2e/cluster.sh down               stop the processes `up` started, undo the real node, remove
#                                     the state dir
#   e2e/cluster.sh images             build the real images (e2e/images.sh), push them to the
#                                     cluster's registry, print SIDECAR_IMAGE=... IRIS_IMAGE=... lines
#   e2e/cluster.sh kubeconfig         print the path of the admin kubeconfig
#   e2e/cluster.sh kubectl ARGS...    run the pinned kubectl with the admin kubeconfig
#   e2e/cluster.sh kubectl-path       print the path of the pinned kubectl binary
#   e2e/cluster.sh status             show which components run
#   e2e/cluster.sh build              only build the binaries into the cache
#   e2e/cluster.sh stop-apiserver | start-apiserver | restart-apiserver
#                                     stop / start only kube-apiserver (etcd keeps the data)
#
# Environment:
#   MODELSERVER_E2E_CLUSTER  cluster name (default "dev"); each name has its own state dir and
#                            ports, so `make e2e` (cluster "e2e") does not touch a `make cluster-up`
#   MODELSERVER_E2E_STATE    state dir (default e2e/.state/<cluster name>)
#   MODELSERVER_E2E_CACHE    binary cache root (default $HOME/.cache/modelserver-e2e)
#   MODELSERVER_E2E_NODES    number of kwok nodes (default 2)
#   MODELSERVER_E2E_REAL_NODE  1: `up` also starts the real node
#
# Every component binds to 127.0.0.1 only, on free ports picked at `up` (recorded in
# <state>/ports.env), and logs to <state>/logs/<component>.log.
set -euo pipefail

e2e_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/env.sh
. "$e2e_dir/lib/env.sh"
node_count=${MODELSERVER_E2E_NODES:-2}
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
service_cidr=10.96.0.0/16
service_ip=10.96.0.1
cluster_domain=cluster.local

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Building

# The cache is valid when it was built from exactly these versions, go.mod and go.sum (the real
# node's versions in versions.env do not touch it).
build_stamp() {
  { echo "$KUBERNETES_VERSION $ETCD_VERSION $KWOK_VERSION $GO_TOOLS"; cat "$e2e_dir/go.mod" "$e2e_dir/go.sum"; } |
    sha256sum | cut -c1-16
}

binaries_ok() {
  local b
  [ -f "$bin_dir/.stamp" ] && [ "$(cat "$bin_dir/.stamp")" = "$(build_stamp)" ] || return 1
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok; do
    [ -x "$bin_dir/$b" ] || return 1
  done
  [ -f "$bin_dir/kwok-stages.yaml" ]
}

build() {
  if binaries_ok; then
    return 0
  fi
  command -v go >/dev/null || die "go is not installed: the control plane is built from Go modules"
  local tmp start minor ldflags pkg
  tmp="$cache_root/$KUBERNETES_VERSION/bin.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  # The same version stamps the Kubernetes release build sets (hack/lib/version.sh), so the
  # API server reports its real version and kubectl warns about no skew.
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  start=$SECONDS
  log "building $GO_TOOLS at Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION (the first build takes a while)"
  # shellcheck disable=SC2086 # GO_TOOLS is a list of packages
  if ! (cd "$e2e_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
    -o "$tmp" $GO_TOOLS); then
    rm -rf "$tmp"
    die "go build of the control plane failed (packages: $GO_TOOLS; module: $e2e_dir/go.mod)"
  fi
  # A major-version module path names its binary after the element before /v3.
  mv "$tmp/server" "$tmp/etcd"
  log "building kwok $KWOK_VERSION from sigs.k8s.io/kwok"
  if ! (cd "$tmp" && GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"); then
    rm -rf "$tmp"
    die "go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION failed"
  fi
  # kwok needs Stage objects to act; use its own "fast" node and pod stages and the lease
  # heartbeat, from the module it was built from.
  local kwok_src stage
  kwok_src=$(cd "$tmp" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$kwok_src/kustomize/stage" ] || die "kwok module source not found (go mod download sigs.k8s.io/kwok@$KWOK_VERSION)"
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    cat "$kwok_src/kustomize/stage/$stage.yaml"
    printf -- '---\n'
  done >"$tmp/kwok-stages.yaml"
  build_stamp >"$tmp/.stamp"
  rm -rf "$bin_dir"
  mv "$tmp" "$bin_dir"
  log "built the control plane into $bin_dir in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------------------------
# Certificates, ports and processes (shared with e2e/node.sh)

# shellcheck source-path=SCRIPTDIR source=lib/pki.sh
. "$e2e_dir/lib/pki.sh"
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
. "$e2e_dir/lib/proc.sh"

gen_pki() {
  local pki=$state/pki client='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'
  mkdir -p "$pki"
  gen_ca ca modelserver-e2e-ca
  # The aggregation layer's front proxy (request-header authentication), as in any cluster, so
  # aggregated API servers (e.g. metrics-server) can be added and the controller manager and
  # scheduler find a complete extension-apiserver-authentication ConfigMap.
  gen_ca front-proxy-ca modelserver-e2e-front-proxy-ca
  sign front-proxy-client "/CN=front-proxy-client" "$client" front-proxy-ca
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$cluster_domain"
  # The API server's client certificate for talking to kubelets (kwok serves none here).
  sign apiserver-kubelet-client "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" "$client"
  sign admin "/O=system:masters/CN=kubernetes-admin" "$client"
  sign controller-manager "/CN=system:kube-controller-manager" "$client"
  sign scheduler "/CN=system:kube-scheduler" "$client"
  # kwok acts for every kubelet (node and pod status, leases); it gets cluster-admin via a binding.
  sign kwok "/CN=kwok-controller" "$client"
  # Service-account token signing key (the API server signs, the controller manager too).
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  chmod 600 "$pki"/*.key
}

kctl() { "$bin_dir/kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------------------------------------
# Components

start_etcd() {
  # --unsafe-no-fsync: a throw-away test store on a shared machine; durability is not wanted.
  launch etcd "$bin_dir/etcd" \
    --name modelserver-e2e \
    --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "modelserver-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync \
    --quota-backend-bytes 2147483648 \
    --log-level warn
  wait_for etcd 60 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  local pki=$state/pki
  # --shutdown-watch-termination-grace-period: close open watches on SIGTERM instead of waiting
  # up to the 60 s request timeout for clients to hang up, so stop-apiserver takes a second.
  launch kube-apiserver "$bin_dir/kube-apiserver" \
    --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 \
    --secure-port "$APISERVER_PORT" \
    --cert-dir "$state/apiserver-certs" \
    --tls-cert-file "$pki/apiserver.crt" \
    --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" \
    --proxy-client-key-file "$pki/front-proxy-client.key" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --service-cluster-ip-range "$service_cidr" \
    --authorization-mode Node,RBAC \
    --service-account-issuer "https://kubernetes.default.svc.$cluster_domain" \
    --api-audiences "https://kubernetes.default.svc.$cluster_domain" \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --enable-admission-plugins NodeRestriction \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --allow-privileged \
    --profiling=false \
    --endpoint-reconciler-type none \
    --shutdown-watch-termination-grace-period 2s \
    --v 1
  wait_for kube-apiserver 120 kctl get --raw /readyz
}

start_controller_manager() {
  local pki=$state/pki kc=$state/controller-manager.kubeconfig
  # "*" is every default controller: deployments, replicasets, garbage collector, service
  # accounts and their tokens, horizontal pod autoscaling, disruption, namespaces, nodes, ...
  launch kube-controller-manager "$bin_dir/kube-controller-manager" \
    --bind-address 127.0.0.1 \
    --secure-port "$CONTROLLER_MANAGER_PORT" \
    --cert-dir "$state/controller-manager-certs" \
    --kubeconfig "$kc" \
    --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" \
    --client-ca-file "$pki/ca.crt" \
    --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" \
    --cluster-signing-key-file "$pki/ca.key" \
    --cluster-name modelserver-e2e \
    --service-cluster-ip-range "$service_cidr" \
    --controllers '*' \
    --leader-elect=false \
    --profiling=false \
    --v 1
  # -k: its serving certificate is self-signed at start-up (in --cert-dir); this is loopback.
  wait_for kube-controller-manager 60 curl -fsSk "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz"
}

start_scheduler() {
  local pki=$state/pki kc=$state/scheduler.kubeconfig
  launch kube-scheduler "$bin_dir/kube-scheduler" \
    --bind-address 127.0.0.1 \
    --secure-port "$SCHEDULER_PORT" \
    --cert-dir "$state/scheduler-certs" \
    --kubeconfig "$kc" \
    --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" \
    --client-ca-file "$pki/ca.crt" \
    --leader-elect=false \
    --profiling=false \
    --v 1
  wait_for kube-scheduler 60 curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
}

start_kwok() {
  mkdir -p "$state/kwok-home"
  # kwok also reads ~/.kwok/kwok.yaml when it exists: give it a home of its own.
  launch kwok env HOME="$state/kwok-home" "$bin_dir/kwok" \
    --kubeconfig "$state/kwok.kubeconfig" \
    --config "$bin_dir/kwok-stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds 40 \
    --cidr 10.244.0.0/16 \
    --node-ip 127.0.0.1 \
    --server-address "127.0.0.1:$KWOK_PORT"
  wait_for kwok 60 curl -fsS "http://127.0.0.1:$KWOK_PORT/healthz"
}

create_nodes() {
  local i
  kctl apply --server-side --field-manager cluster.sh -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kwok-controller
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: kwok-controller
EOF
  for i in $(seq 0 $((node_count - 1))); do
    kctl apply --server-side --field-manager cluster.sh -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
    topology.kubernetes.io/zone: zone-$((i % 2))
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
  done
}

all_running() {
  local c
  for c in "${components[@]}"; do
    is_ours "$(pid_of "$c")" || return 1
  done
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_up() {
  local start=$SECONDS real_node=${MODELSERVER_E2E_REAL_NODE:-0}
  [ "${1:-}" = --real-node ] && real_node=1
  if [ -d "$state" ]; then
    if all_running && { [ "$real_node" = 0 ] || "$e2e_dir/node.sh" status >/dev/null 2>&1; }; then
      log "cluster '$cluster_name' is already up; kubeconfig: $state/admin.kubeconfig"
      return 0
    fi
    log "cluster '$cluster_name' has stale state in $state; cleaning it first"
    cmd_down
  fi
  command -v openssl >/dev/null || die "openssl is needed to make the cluster's certificates"
  command -v curl >/dev/null || die "curl is needed for the health checks"
  build
  mkdir -p "$state"
  pick_ports
  load_ports
  gen_pki
  write_kubeconfig admin admin
  write_kubeconfig controller-manager controller-manager
  write_kubeconfig scheduler scheduler
  write_kubeconfig kwok kwok
  if ! start_cluster; then
    log "up failed; stopping what was started (logs stay in $state/logs until 'down')"
    stop_all
    return 1
  fi
  if [ "$real_node" = 1 ] && ! start_real_node; then
    log "the real node did not start; stopping the cluster (logs stay in $state/logs until 'down')"
    stop_all
    return 1
  fi
  log "cluster '$cluster_name' is up in $((SECONDS - start))s: Kubernetes $KUBERNETES_VERSION, $node_count kwok nodes$([ "$real_node" = 1 ] && echo ", real node real-0")"
  log "  export KUBECONFIG=$state/admin.kubeconfig"
  log "  kubectl: $bin_dir/kubectl (or: e2e/cluster.sh kubectl get nodes)"
}

start_cluster() {
  start_etcd || return 1
  start_apiserver || return 1
  start_controller_manager || return 1
  start_scheduler || return 1
  create_nodes || { log_tail kube-apiserver; return 1; }
  start_kwok || return 1
  wait_for kwok 90 kctl wait --for condition=Ready node --all --timeout 5s || return 1
  # Pods need their namespace's default ServiceAccount, created by the controller manager.
  wait_for kube-controller-manager 60 kctl get serviceaccount default --namespace default || return 1
  wait_for kube-controller-manager 60 kctl get configmap kube-root-ca.crt --namespace default || return 1
}

# The real node pulls from a registry on loopback; its sandbox image must be there first.
start_real_node() {
  local registry
  "$e2e_dir/node.sh" build || return 1
  registry=$("$e2e_dir/../images/registry.sh" start "$state/registry") || return 1
  "$e2e_dir/images.sh" pause "$registry" >/dev/null || return 1
  "$e2e_dir/node.sh" up
}

stop_all() {
  local i
  # The operator that `make demo-cluster` started from this state dir, if any.
  stop_component operator
  if [ -d "$state/node" ]; then "$e2e_dir/node.sh" down || log "node.sh down failed"; fi
  if [ -f "$state/registry/registry.pid" ]; then
    "$e2e_dir/../images/registry.sh" stop "$state/registry" || log "could not stop the registry"
  fi
  # Reverse order: clients first, etcd last.
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    stop_component "${components[$i]}"
  done
}

cmd_down() {
  if [ ! -d "$state" ]; then
    log "cluster '$cluster_name' is not up (no $state)"
    return 0
  fi
  stop_all
  rm -rf "$state"
  log "cluster '$cluster_name' is down"
}

cmd_images() {
  local registry
  [ -f "$state/registry/registry.address" ] || die "no registry: start the cluster with 'up --real-node'"
  registry=$(cat "$state/registry/registry.address")
  "$e2e_dir/images.sh" all "$registry" | tee "$state/images.env"
}

cmd_kubeconfig() {
  [ -f "$state/admin.kubeconfig" ] || die "cluster '$cluster_name' is not up (run: make cluster-up)"
  echo "$state/admin.kubeconfig"
}

cmd_status() {
  local c pid
  [ -d "$state" ] || { log "cluster '$cluster_name' is not up"; return 1; }
  for c in "${components[@]}"; do
    pid=$(pid_of "$c")
    if is_ours "$pid"; then echo "$c: running (pid $pid)"; else echo "$c: stopped"; fi
  done
  all_running || return 1
  if [ -d "$state/node" ]; then "$e2e_dir/node.sh" status; fi
}

cmd_stop_apiserver() {
  load_ports
  stop_component kube-apiserver
  log "kube-apiserver stopped"
}

cmd_start_apiserver() {
  load_ports
  if is_ours "$(pid_of kube-apiserver)"; then
    log "kube-apiserver is already running"
    return 0
  fi
  start_apiserver
  log "kube-apiserver started on https://127.0.0.1:$APISERVER_PORT"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case "$cmd" in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  kubeconfig) cmd_kubeconfig ;;
  kubectl-path)
    [ -x "$bin_dir/kubectl" ] || die "kubectl is not built yet (run: e2e/cluster.sh build)"
    echo "$bin_dir/kubectl"
    ;;
  kubectl)
    cmd_kubeconfig >/dev/null
    kctl "$@"
    ;;
  status) cmd_status ;;
  build) build ;;
  images) cmd_images ;;
  stop-apiserver) cmd_stop_apiserver ;;
  start-apiserver) cmd_start_apiserver ;;
  restart-apiserver)
    cmd_stop_apiserver
    cmd_start_apiserver
    ;;
  *)
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
    exit 2
    ;;
  esac
}

main "$@"; exit $?  # exit here: an edit to this file during a run is never read
