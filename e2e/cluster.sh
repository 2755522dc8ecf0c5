#!/usr/bin/env bash
# A real local Kubernetes control plane for the e2e suite and for trying the operator:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (simulated nodes: pods are
# scheduled and marked Running and Ready without running). No container runtime, no cloud.
#
#   e2e/cluster.sh up                 build (cached) and start the cluster; returns when it is ready
#   e2e/cluster.sh down               stop the processes `up` started and remove the state dir
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
#
# Every component binds to 127.0.0.1 only, on free ports picked at `up` (recorded in
# <state>/ports.env), and logs to <state>/logs/<component>.log.
set -euo pipefail

e2e_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.env
. "$e2e_dir/versions.env"

cluster_name=${MODELSERVER_E2E_CLUSTER:-dev}
state=${MODELSERVER_E2E_STATE:-$e2e_dir/.state/$cluster_name}
case "$state" in /*) ;; *) state=$PWD/$state ;; esac
cache_root=${MODELSERVER_E2E_CACHE:-$HOME/.cache/modelserver-e2e}
bin_dir=$cache_root/$KUBERNETES_VERSION/bin
node_count=${MODELSERVER_E2E_NODES:-2}
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
service_cidr=10.96.0.0/16
service_ip=10.96.0.1
cluster_domain=cluster.local

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Building

# The cache is valid when it was built from exactly this versions.env and go.sum.
build_stamp() {
  cat "$e2e_dir/versions.env" "$e2e_dir/go.mod" "$e2e_dir/go.sum" | sha256sum | cut -c1-16
}

binaries_ok() {
  local b
  [ -f "$bin_dir/.stamp" ] && [ "$(cat "$bin_dir/.stamp")" = "$(build_stamp)" ] || return 1
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
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
# Certificates and kubeconfigs

gen_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }

# gen_ca NAME CN: a self-signed CA.
gen_ca() {
  local pki=$state/pki
  gen_key "$pki/$1.key"
  openssl req -x509 -new -key "$pki/$1.key" -subj "/CN=$2" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$pki/$1.crt" 2>/dev/null
}

# sign NAME SUBJECT EXTENSIONS [CA]: a certificate signed by the cluster CA (or by CA).
sign() {
  local name=$1 subject=$2 ext=$3 ca=${4:-ca} pki=$state/pki
  gen_key "$pki/$name.key"
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

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

# write_kubeconfig NAME CERT_NAME: a kubeconfig for the API server with a client certificate.
write_kubeconfig() {
  local file=$state/$1.kubeconfig pki=$state/pki
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelserver-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$pki/$2.crt")
    client-key-data: $(base64 -w0 "$pki/$2.key")
contexts:
- name: modelserver-e2e
  context:
    cluster: modelserver-e2e
    user: $1
current-context: modelserver-e2e
EOF
  chmod 600 "$file"
}

# ---------------------------------------------------------------------------------------------
# Ports and processes

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Listening ports are picked below the kernel's ephemeral range (ip_local_port_range), so no
# outgoing loopback connection (the API server's to etcd, a client's to the API server) can hold
# a picked port between the pick and a component's bind.
port_low=15000
port_high=32767
if read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null; then
  port_high=$((ephemeral_low - 1))
  [ "$port_high" -gt "$((port_low + 1000))" ] || port_low=1024
fi

# free_port VAR: set VAR to a random port that nothing listens on and that we did not pick yet
# (not via $(...): the picked list must survive in this shell).
picked_ports=" "
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((port_low + (RANDOM * 32768 + RANDOM) % (port_high - port_low + 1)))
    case "$picked_ports" in *" $p "*) continue ;; esac
    if ! port_in_use "$p"; then
      picked_ports+="$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
    : "$i"
  done
  die "no free port found on 127.0.0.1"
}

pick_ports() {
  local name port
  for name in ETCD_PORT ETCD_PEER_PORT APISERVER_PORT CONTROLLER_MANAGER_PORT SCHEDULER_PORT KWOK_PORT; do
    free_port port
    echo "$name=$port"
  done >"$state/ports.env"
}

load_ports() {
  [ -f "$state/ports.env" ] || die "no cluster state in $state (run: e2e/cluster.sh up)"
  # shellcheck source=/dev/null
  . "$state/ports.env"
}

pid_of() { cat "$state/pids/$1.pid" 2>/dev/null || true; }

# is_ours PID: alive and started by this cluster (its command line names our state dir), so a
# recycled pid of some other process is never signalled.
is_ours() {
  local pid=$1 cmdline
  [ -n "$pid" ] || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ "$cmdline" == *"$state/"* ]]
}

# launch NAME BINARY ARGS...: start a component detached, in its own session, logging to
# <state>/logs/NAME.log, and record its pid.
launch() {
  local name=$1
  shift
  mkdir -p "$state/logs" "$state/pids"
  setsid "$@" >>"$state/logs/$name.log" 2>&1 </dev/null &
  local pid=$! i
  echo "$pid" >"$state/pids/$name.pid"
  # Until it execs, the background child is a copy of this shell whose command line does not name
  # the state dir, so is_ours would call it gone (CI once failed "kube-scheduler exited during
  # start-up" with an empty log on a busy machine). Wait for the exec, or for the process to end.
  for i in $(seq 1 200); do
    is_ours "$pid" && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
    : "$i"
  done
  log "$name (pid $pid) did not exec within 10s"
}

# stop_component NAME: TERM, then KILL after 15 s; only a pid this cluster recorded.
stop_component() {
  local name=$1 pid i
  pid=$(pid_of "$name")
  if is_ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
      is_ours "$pid" || break
      sleep 0.1
      : "$i"
    done
    if is_ours "$pid"; then
      log "$name (pid $pid) did not stop after 15s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$state/pids/$name.pid"
}

log_tail() {
  local name=$1
  if [ -f "$state/logs/$name.log" ]; then
    log "last lines of $state/logs/$name.log:"
    tail -n 40 "$state/logs/$name.log" >&2
  else
    log "$name wrote no log"
  fi
}

# wait_for NAME DEADLINE_SECONDS COMMAND...: poll COMMAND until it succeeds; fail with NAME's log
# tail when the deadline passes or NAME's process has exited.
wait_for() {
  local name=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! is_ours "$(pid_of "$name")"; then
      log "$name exited during start-up"
      log_tail "$name"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$name was not ready in time (waiting for: $*)"
      log_tail "$name"
      return 1
    fi
    sleep 0.5
  done
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
  local start=$SECONDS
  if [ -d "$state" ]; then
    if all_running; then
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
  log "cluster '$cluster_name' is up in $((SECONDS - start))s: Kubernetes $KUBERNETES_VERSION, $node_count kwok nodes"
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

stop_all() {
  local i
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
  all_running
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
  up) cmd_up ;;
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
  stop-apiserver) cmd_stop_apiserver ;;
  start-apiserver) cmd_start_apiserver ;;
  restart-apiserver)
    cmd_stop_apiserver
    cmd_start_apiserver
    ;;
  *)
    sed -n '2,22s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
  esac
}

main "$@"; exit $?  # exit here: an edit to this file during a run is never read
