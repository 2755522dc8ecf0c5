# The real node's network and its guard, sourced by e2e/node.sh.
#
# Rule: no packet for a pod or Service address ever leaves this machine. Test traffic stays on
# loopback and on the bridges made here. Before the first pod exists:
#   - the pod bridge (10.245.0.1/24, the node's own address) that the CNI bridge plugin plugs
#     pods into;
#   - the Service CIDR routed into an empty bridge that goes nowhere: kube-proxy's DNAT turns a
#     ClusterIP into a pod address after the first route lookup, which must succeed (a plain
#     `unreachable` route would fail it from the host);
#   - `unreachable` routes for the kwok nodes' pod CIDR (those pods do not exist anywhere);
#   - an nftables table that drops any packet to or from these addresses that would leave through
#     any interface but loopback and the pod bridge, and any forwarded packet that does not both
#     enter and leave through the pod bridge.
# Everything is recorded in <state>/node/guard.env and undone by guard_down, which also restores
# the sysctls it and the kubelet changed.
#
# Needs: $state, log/die. One real node per machine: the names below are machine-wide.
# shellcheck shell=bash

guard_pod_bridge=msbr0
guard_service_sink=mssvc0
guard_node_ip=10.245.0.1
guard_pod_cidr=10.245.0.0/24
guard_service_cidr=10.96.0.0/16
guard_kwok_pod_cidr=10.244.0.0/16
guard_table=modelserver_e2e_guard
# Sysctls changed here (forwarding for the pods, bridged traffic through conntrack so Service
# replies are un-NATed) or by the kubelet and kube-proxy at start; restored on down.
guard_sysctls="net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.ipv4.conf.all.route_localnet kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

guard_dir() { echo "$state/node"; }

# guard_owner: the state dir of the cluster whose node holds the machine-wide names, if any.
guard_owner() {
  local f=/run/modelserver-e2e-node.owner
  [ -f "$f" ] && cat "$f"
}

# guard_read_sysctls: the machine's current value of each sysctl the node changes, as
# name=value lines.
guard_read_sysctls() {
  local name
  for name in $guard_sysctls; do
    printf '%s=%s\n' "$name" "$(sysctl -n "$name" 2>/dev/null || echo unknown)"
  done
}

guard_save_sysctls() {
  local dir
  dir=$(guard_dir)
  [ -f "$dir/sysctl.saved" ] || guard_read_sysctls >"$dir/sysctl.saved"
}

# guard_restore_sysctls [PATTERN]: put back the sysctls saved at up whose names match the
# extended regex PATTERN (the kubelet sets kernel.panic, kernel.panic_on_oops and
# vm.overcommit_memory when it starts); with no PATTERN all of them, and the saved copy goes.
guard_restore_sysctls() {
  local dir line name value pattern=${1:-}
  dir=$(guard_dir)
  [ -f "$dir/sysctl.saved" ] || return 0
  while IFS= read -r line; do
    name=${line%%=*}
    value=${line#*=}
    [ "$value" = unknown ] && continue
    [ -n "$pattern" ] && ! [[ "$name" =~ $pattern ]] && continue
    sysctl -q -w "$name=$value" >/dev/null 2>&1 || log "could not restore $name=$value"
  done <"$dir/sysctl.saved"
  [ -n "$pattern" ] || rm -f "$dir/sysctl.saved"
}

guard_nft_rules() {
  cat <<EOF
table inet $guard_table {
  set ours {
    type ipv4_addr
    flags interval
    elements = { $guard_pod_cidr, $guard_service_cidr, $guard_kwok_pod_cidr }
  }
  # Every packet about to leave a network device, local or forwarded: ours may only use
  # loopback and the pod bridge.
  chain postrouting {
    type filter hook postrouting priority 300; policy accept;
    oifname != { "lo", "$guard_pod_bridge" } ip daddr @ours counter drop
    oifname != { "lo", "$guard_pod_bridge" } ip saddr @ours counter drop
  }
  # Forwarding is on for the pods only: pod to pod (through a Service) on the bridge.
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$guard_pod_bridge" oifname "$guard_pod_bridge" accept
    counter drop
  }
}
EOF
}

guard_up() {
  local dir owner
  dir=$(guard_dir)
  mkdir -p "$dir"
  owner=$(guard_owner || true)
  if [ -n "$owner" ] && [ "$owner" != "$state" ]; then
    # Alive means its kubelet still runs (its command line names its state dir); otherwise a run
    # that died without 'down' left the names behind, and they are taken over (the replace and
    # add below are idempotent; its saved sysctls are gone with its state dir).
    if pgrep -f "kubelet .*$owner/" >/dev/null 2>&1; then
      die "another cluster's real node holds the node network ($owner); run its 'down' first"
    fi
    log "taking over the node network left by $owner (its node is not running)"
  fi
  command -v nft >/dev/null || die "nft is missing (apt-get install nftables)"
  echo "$state" >/run/modelserver-e2e-node.owner
  guard_save_sysctls
  # The guard first, so nothing below can leak even for an instant.
  nft delete table inet "$guard_table" 2>/dev/null || true
  guard_nft_rules | nft -f - || die "could not load the nftables guard"
  if ! ip link show "$guard_pod_bridge" >/dev/null 2>&1; then
    ip link add "$guard_pod_bridge" type bridge
  fi
  ip addr replace "$guard_node_ip/24" dev "$guard_pod_bridge"
  ip link set "$guard_pod_bridge" up
  if ! ip link show "$guard_service_sink" >/dev/null 2>&1; then
    ip link add "$guard_service_sink" type bridge
  fi
  ip link set "$guard_service_sink" up
  ip route replace "$guard_service_cidr" dev "$guard_service_sink" src "$guard_node_ip"
  ip route replace unreachable "$guard_kwok_pod_cidr"
  sysctl -q -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 >/dev/null
  sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
  log "node network up: pods on $guard_pod_bridge ($guard_pod_cidr), Services $guard_service_cidr into $guard_service_sink, guard table inet $guard_table"
}

guard_down() {
  local owner
  owner=$(guard_owner || true)
  if [ -n "$owner" ] && [ "$owner" != "$state" ]; then
    log "the node network belongs to $owner; leaving it alone"
    return 0
  fi
  # Forwarding off before the guard goes.
  guard_restore_sysctls
  ip route del "$guard_service_cidr" dev "$guard_service_sink" 2>/dev/null || true
  ip route del unreachable "$guard_kwok_pod_cidr" 2>/dev/null || true
  ip link del "$guard_service_sink" 2>/dev/null || true
  ip link del "$guard_pod_bridge" 2>/dev/null || true
  nft delete table inet "$guard_table" 2>/dev/null || true
  rm -f /run/modelserver-e2e-node.owner
}

# guard_check: fails unless every part of the guard is in place (run before any pod starts).
guard_check() {
  nft list table inet "$guard_table" >/dev/null 2>&1 || { log "guard table missing"; return 1; }
  ip route show "$guard_service_cidr" | grep -q "dev $guard_service_sink" || { log "Service route missing"; return 1; }
  ip route show type unreachable | grep -q "$guard_kwok_pod_cidr" || { log "kwok pod route missing"; return 1; }
}
