#!/usr/bin/env bash
# A real node for the local cluster: containerd, runc, the CNI bridge, kubelet and kube-proxy on
# this machine, next to the kwok nodes, so pods really run (probes, preStop, SIGTERM, ClusterIP).
# Started by `e2e/cluster.sh up --real-node` once the control plane is up; needs root.
#
#   e2e/node.sh build     build containerd from its Go module (cached) and install the Debian
#                         packages the node needs (runc, CNI plugins, nftables, conntrack)
#   e2e/node.sh up        start the node `real-0` (the cluster must be up, its registry running)
#   e2e/node.sh down      stop it and undo everything it did (processes, mounts, cgroups,
#                         bridges, routes, firewall table, sysctls)
#   e2e/node.sh status    which node components run
#   e2e/node.sh sysctls   print the sysctls the node changes (name=value), to compare later
#   e2e/node.sh leftovers [SYSCTLS]
#                         fail if anything of the node is left after down (make e2e runs it)
#
# The node is labelled and tainted `modelserver.dev/node=real` (NoSchedule), so only pods that
# ask for it (a nodeSelector and a toleration) land there. Its address is the pod bridge's,
# 10.245.0.1; see lib/netguard.sh for the network and the guard that keeps every pod and Service
# packet on this machine. Same environment as cluster.sh (MODELSERVER_E2E_CLUSTER, ..._STATE,
# ..._CACHE); state in <state>/node, logs in <state>/logs.
set -euo pipefail

e2e_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/env.sh
. "$e2e_dir/lib/env.sh"
node_bin=$cache_root/containerd-$CONTAINERD_VERSION/bin
node_name=real-0
node_dir=$state/node
# containerd keeps shim sockets in a directory of at most 42 characters: one per state dir.
shim_dir=/run/mse2e-$(printf '%s' "$state" | sha256sum | cut -c1-8)
node_components=(containerd kubelet kube-proxy)
# Debian packages the node uses as they are.
node_packages="runc containernetworking-plugins nftables iptables conntrack"
cni_bin_dir=/usr/lib/cni
runc_bin=/usr/sbin/runc

log() { printf 'node.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source-path=SCRIPTDIR source=lib/pki.sh
. "$e2e_dir/lib/pki.sh"
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
. "$e2e_dir/lib/proc.sh"
# shellcheck source-path=SCRIPTDIR source=lib/netguard.sh
. "$e2e_dir/lib/netguard.sh"

kctl() { "$bin_dir/kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------------------------------------
# Building

install_packages() {
  local missing="" p
  for p in $node_packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=" $p"
  done
  [ -z "$missing" ] && return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages:$missing (install them as root)"
  log "installing Debian packages:$missing"
  # shellcheck disable=SC2086 # a list of packages
  { apt-get install -y -qq $missing || { apt-get update -qq && apt-get install -y -qq $missing; }; } >&2 \
    || die "apt-get install$missing failed"
}

cmd_build() {
  install_packages
  [ -x "$node_bin/containerd" ] && [ -x "$node_bin/containerd-shim-runc-v2" ] && [ -x "$node_bin/ctr" ] && return 0
  command -v go >/dev/null || die "go is not installed: containerd is built from its Go module"
  local tmp=$node_bin.tmp.$$ start=$SECONDS m=github.com/containerd/containerd/v2/cmd
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building containerd $CONTAINERD_VERSION from its Go module (once; cached in $node_bin)"
  # The snapshotters that need C libraries or kernel features this machine lacks are left out.
  if ! GOBIN="$tmp" go install -trimpath -ldflags "-s -w" -tags "no_btrfs no_devmapper no_zfs" \
    "$m/containerd@$CONTAINERD_VERSION" "$m/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "$m/ctr@$CONTAINERD_VERSION" >&2; then
    rm -rf "$tmp"
    die "go install of containerd $CONTAINERD_VERSION failed"
  fi
  rm -rf "$node_bin"
  mv "$tmp" "$node_bin"
  log "built containerd in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------------------------
# Configuration

node_ports() {
  if [ ! -f "$node_dir/ports.env" ]; then
    local name port
    for name in KUBELET_PORT KUBELET_HEALTHZ_PORT PROXY_HEALTHZ_PORT PROXY_METRICS_PORT; do
      free_port port
      echo "$name=$port"
    done >"$node_dir/ports.env"
  fi
  # shellcheck source=/dev/null
  . "$node_dir/ports.env"
}

node_pki() {
  local client='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'
  # The Node authorizer and NodeRestriction know a kubelet by this name and group.
  sign kubelet "/O=system:nodes/CN=system:node:$node_name" "$client"
  # Bound to system:node-proxier by the API server's default RBAC.
  sign kube-proxy "/CN=system:kube-proxy" "$client"
  write_kubeconfig kubelet kubelet
  write_kubeconfig kube-proxy kube-proxy
}

write_containerd_config() {
  local c=$node_dir/containerd registry
  registry=$(cat "$state/registry/registry.address")
  mkdir -p "$c/certs.d/$registry" "$node_dir/cni/net.d"
  # The loopback registry speaks plain HTTP.
  cat >"$c/certs.d/$registry/hosts.toml" <<EOF
server = "http://$registry"
[host."http://$registry"]
  capabilities = ["pull", "resolve"]
EOF
  cat >"$c/config.toml" <<EOF
# containerd for the e2e real node (the keys of 'containerd config default'); everything it
# writes is under $c.
version = 4
root = "$c/root"
state = "$c/state"
imports = []
[plugins."io.containerd.server.v1.grpc"]
  address = "$c/containerd.sock"
[plugins."io.containerd.server.v1.ttrpc"]
  address = "$c/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
[plugins."io.containerd.nri.v1.nri"]
  disable = true
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$shim_dir"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$registry/pause:$PAUSE_VERSION"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$c/certs.d"
[plugins."io.containerd.cri.v1.runtime"]
  # This VM lacks CAP_SYS_RESOURCE: runc may not lower a process's oom_score_adj, so every
  # sandbox would fail ("failed to update /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$runc_bin"
        Root = "$c/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$cni_bin_dir"]
    conf_dir = "$node_dir/cni/net.d"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
  cat >"$node_dir/cni/net.d/10-modelserver.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "modelserver-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$guard_pod_bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$guard_pod_cidr", "gateway": "$guard_node_ip", "rangeStart": "10.245.0.10"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$node_dir/cni/ipam"
      }
    }
  ]
}
EOF
}

write_kubelet_config() {
  cat >"$node_dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $guard_node_ip
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization: {mode: Webhook}
# This machine is cgroup v1 (hybrid); Kubernetes 1.36 refuses v1 unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$node_dir/containerd/containerd.sock
imageServiceEndpoint: unix://$node_dir/containerd/containerd.sock
failSwapOn: false
# No DNS for pods: nothing here to resolve, and no query may leave the machine.
resolvConf: ""
podLogsDir: $node_dir/pod-logs
maxPods: 40
serializeImagePulls: false
# A shared test machine's disk may be nearly full: never evict or collect images for it.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
registerWithTaints:
- {key: modelserver.dev/node, value: real, effect: NoSchedule}
nodeStatusReportFrequency: 10s
shutdownGracePeriod: 0s
EOF
}

write_proxy_config() {
  cat >"$node_dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: $node_name
clusterCIDR: $guard_pod_cidr
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
# NodePorts only on the node's bridge address, never on the machine's own interfaces.
nodePortAddresses: ["$guard_node_ip/32"]
# Leave the machine's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# ---------------------------------------------------------------------------------------------
# Components

start_containerd() {
  mkdir -p "$node_dir/containerd"
  # The shim and runc are found on PATH.
  launch containerd env PATH="$node_bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$node_bin/containerd" --config "$node_dir/containerd/config.toml" --log-level warn
  wait_for containerd 60 "$node_bin/ctr" --address "$node_dir/containerd/containerd.sock" version
}

start_kubelet() {
  launch kubelet "$bin_dir/kubelet" \
    --config "$node_dir/kubelet.yaml" \
    --kubeconfig "$state/kubelet.kubeconfig" \
    --root-dir "$node_dir/kubelet" \
    --cert-dir "$node_dir/kubelet-pki" \
    --hostname-override "$node_name" \
    --node-ip "$guard_node_ip" \
    --node-labels "modelserver.dev/node=real" \
    --v 1
  wait_for kubelet 90 curl -fsS "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
}

start_proxy() {
  launch kube-proxy "$bin_dir/kube-proxy" --config "$node_dir/kube-proxy.yaml" --v 1
  wait_for kube-proxy 60 curl -fsS "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
}

# The API server's kubelet client may use the kubelet API (logs, exec, port-forward).
bind_apiserver_to_kubelets() {
  kctl apply --server-side --field-manager node.sh -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: modelserver-e2e:apiserver-kubelet-client
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: kube-apiserver-kubelet-client
EOF
}

cmd_up() {
  local start=$SECONDS
  [ "$(id -u)" = 0 ] || die "a real node needs root (containers, mounts, bridges, firewall)"
  [ -f "$state/admin.kubeconfig" ] || die "the control plane is not up (run: e2e/cluster.sh up)"
  [ -f "$state/registry/registry.address" ] || die "the cluster's registry is not running"
  if is_ours "$(pid_of kubelet)"; then
    log "node $node_name is already up"
    return 0
  fi
  cmd_build
  load_ports
  mkdir -p "$node_dir"
  node_ports
  node_pki
  # What the machine had before, so down removes only what the node added.
  nft list tables >"$node_dir/nft-tables.before" 2>/dev/null || true
  [ -d /var/log/containers ] || touch "$node_dir/created-var-log-containers"
  # The network and its guard come up before anything that can start a pod.
  guard_up
  guard_check || die "the network guard is incomplete; refusing to start a node"
  write_containerd_config
  write_kubelet_config
  write_proxy_config
  bind_apiserver_to_kubelets
  if ! { start_containerd && start_kubelet && start_proxy; }; then
    log "node up failed; undoing it (logs stay in $state/logs until 'cluster.sh down')"
    cmd_down
    return 1
  fi
  # The kubelet changed kernel.panic, kernel.panic_on_oops and vm.overcommit_memory at start:
  # put the machine's values back now (and again on down).
  guard_restore_sysctls '^(kernel|vm)\.'
  wait_for kubelet 90 kctl wait --for condition=Ready "node/$node_name" --timeout 5s || { cmd_down; return 1; }
  log "node $node_name is up in $((SECONDS - start))s (containerd $CONTAINERD_VERSION, kubelet and kube-proxy $KUBERNETES_VERSION)"
}


# kill_containers: every process a container shim of this node started, then the shims.
kill_containers() {
  local shim child
  for shim in $(pgrep -f "containerd-shim-runc-v2 .*$node_dir/" || true); do
    for child in $(pgrep -P "$shim" || true); do kill -KILL "$child" 2>/dev/null || true; done
    kill -KILL "$shim" 2>/dev/null || true
  done
}

# unmount_all: every mount under the node's state dir, deepest first.
unmount_all() {
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$node_dir/" | sort -r || true); do
    umount -l "$m" 2>/dev/null || true
  done
}

# remove_cgroups: the kubelet's pod cgroups (cgroupfs driver), deepest first.
remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/kubepods*; do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# The chains the kubelet creates through iptables (KUBE-FIREWALL is jumped to from INPUT and
# OUTPUT), then every nftables table that did not exist before `up` and is now empty of rules
# (iptables-nft makes its tables on first use).
remove_kubelet_chains() {
  local tool table chain hook family name
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in mangle nat filter; do
      for chain in KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-FIREWALL; do
        for hook in INPUT OUTPUT FORWARD PREROUTING POSTROUTING; do
          while "$tool" -w -t "$table" -D "$hook" -j "$chain" 2>/dev/null; do :; done
        done
        "$tool" -w -t "$table" -F "$chain" 2>/dev/null || true
        "$tool" -w -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  [ -f "$node_dir/nft-tables.before" ] || return 0
  nft list tables 2>/dev/null | while read -r _ family name; do
    grep -qx "table $family $name" "$node_dir/nft-tables.before" && continue
    # Only chains left, no rules: nothing of anyone's is lost.
    if ! nft list table "$family" "$name" | grep -qvE '^\s*(table|chain|type|}|$)'; then
      nft delete table "$family" "$name" 2>/dev/null || true
    fi
  done
}

cmd_down() {
  [ -d "$node_dir" ] || return 0
  local i
  stop_component kube-proxy
  stop_component kubelet
  kill_containers
  for ((i = 0; i < 50; i++)); do
    pgrep -f "containerd-shim-runc-v2 .*$node_dir/" >/dev/null || break
    sleep 0.1
  done
  stop_component containerd
  [ -x "$bin_dir/kube-proxy" ] && "$bin_dir/kube-proxy" --cleanup >/dev/null 2>&1 || true
  remove_kubelet_chains
  unmount_all
  remove_cgroups
  # The kubelet links every container's log into /var/log/containers (a fixed path).
  find /var/log/containers -maxdepth 1 -lname "$node_dir/*" -delete 2>/dev/null || true
  if [ -f "$node_dir/created-var-log-containers" ]; then rmdir /var/log/containers 2>/dev/null || true; fi
  guard_down
  rm -rf "$node_dir" "$shim_dir"
  log "node $node_name is down"
}


# cmd_leftovers [BEFORE]: fails, listing them, if anything of a real node is still on the
# machine after down: processes or mounts of the state dir, shim sockets, the bridges, routes
# into the pod or Service ranges, the guard or kube-proxy nftables tables, KUBE-* iptables
# chains, kubelet cgroups; and, given the output of `sysctls` from before up, any sysctl that
# differs.
cmd_leftovers() {
  local found="" pid line
  for pid in $(pgrep -f "$state/" || true); do
    [ "$pid" = $$ ] || found+="process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"$'\n'
  done
  while read -r line; do found+="mount $line"$'\n'; done < <(findmnt -rn -o TARGET | grep -F "$state/" || true)
  [ -e "$shim_dir" ] && found+="shim socket dir $shim_dir"$'\n'
  for line in "$guard_pod_bridge" "$guard_service_sink"; do
    ip link show "$line" >/dev/null 2>&1 && found+="link $line"$'\n'
  done
  while read -r line; do found+="route $line"$'\n'; done < <(ip route show table all |
    grep -E "^(unreachable )?(10\.96\.|10\.244\.|10\.245\.)" || true)
  while read -r line; do found+="nftables $line"$'\n'; done < <(nft list tables 2>/dev/null |
    grep -E "$guard_table|kube-proxy" || true)
  while read -r line; do found+="iptables $line"$'\n'; done < <(
    { iptables-save 2>/dev/null; ip6tables-save 2>/dev/null; } | grep -E '^[:-].*KUBE-' || true)
  while read -r line; do found+="cgroup $line"$'\n'; done < <(ls -d /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/kubepods* 2>/dev/null || true)
  if [ -n "${1:-}" ]; then
    while read -r line; do
      [ -n "$line" ] && found+="sysctl ${line%%=*} is $(sysctl -n "${line%%=*}" 2>/dev/null), was ${line#*=}"$'\n'
    done < <(diff <(printf '%s\n' "$1") <(guard_read_sysctls) | sed -n 's/^< //p')
  fi
  if [ -n "$found" ]; then
    log "left on the machine after down:"
    printf '%s' "$found" >&2
    return 1
  fi
  log "nothing of the real node is left on the machine"
}

cmd_status() {
  local c pid rc=0
  for c in "${node_components[@]}"; do
    pid=$(pid_of "$c")
    if is_ours "$pid"; then echo "$c: running (pid $pid)"; else echo "$c: stopped"; rc=1; fi
  done
  return $rc
}

main() {
  local cmd=${1:-}
  case "$cmd" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  sysctls) guard_read_sysctls ;;
  leftovers) cmd_leftovers "${2:-}" ;;
  *)
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
    exit 2
    ;;
  esac
}

main "$@"; exit $?
