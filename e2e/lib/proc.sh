# Ports and processes of the local cluster, sourced by e2e/cluster.sh and e2e/node.sh.
# Needs: $state (pids in $state/pids, logs in $state/logs) and log/die from the caller.
# Every component is started by `launch` and stopped by `stop_component`, which signal only a
# pid whose command line names $state, so a recycled pid of another process is never touched.
# shellcheck shell=bash

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

# running PID: the process exists and is not a zombie. For a component this script has just
# launched (its own child, so the pid cannot be reused before it is reaped) this is the right
# test during start-up: `is_ours` reads the command line, which reads empty for a moment while
# the process execs (setsid or env into the component), and CI failed twice with "<component>
# exited during start-up" and an empty log that way.
running() {
  local pid=$1 stat
  [ -n "$pid" ] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  # The state is the field after the parenthesised command name.
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# wait_for NAME DEADLINE_SECONDS COMMAND...: poll COMMAND until it succeeds; fail with NAME's log
# tail when the deadline passes or NAME's process has exited.
wait_for() {
  local name=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! running "$(pid_of "$name")"; then
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
