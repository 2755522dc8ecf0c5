#!/usr/bin/env bash
# A throwaway OCI registry on loopback (go-containerregistry's `crane registry serve`), for
# `make images` and the e2e suite. Blobs live on disk under the state directory.
#
#   images/registry.sh start STATE_DIR   start it; prints its address (127.0.0.1:PORT) when it answers
#   images/registry.sh stop STATE_DIR    stop the registry that `start` started there
#   images/registry.sh address STATE_DIR print the address of the running registry
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "registry.sh: error: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 start|stop|address STATE_DIR"
command=$1
state=$2
pidfile=$state/registry.pid
addrfile=$state/registry.address

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "$command" in
  start)
    crane=$("$root/hack/chart/tools.sh" crane)
    mkdir -p "$state/blobs"
    running && die "a registry already runs for $state (pid $(cat "$pidfile"), $(cat "$addrfile" 2>/dev/null))"
    rm -f "$addrfile" "$state/registry.log"
    # Port 0: the kernel picks a free port; the registry logs which. Loopback only.
    "$crane" registry serve --address 127.0.0.1:0 --disk "$state/blobs" > "$state/registry.log" 2>&1 &
    echo $! > "$pidfile"
    deadline=$((SECONDS + 30))
    port=""
    while [ -z "$port" ]; do
      running || { cat "$state/registry.log" >&2; die "the registry exited at start"; }
      [ $SECONDS -lt $deadline ] || { "$0" stop "$state"; die "the registry logged no port within 30s"; }
      port=$(sed -n 's/.*serving on port \([0-9][0-9]*\).*/\1/p' "$state/registry.log" | head -1)
      [ -n "$port" ] || sleep 0.1
    done
    address=127.0.0.1:$port
    # Ready when the API answers (the catalog of an empty registry is an empty list).
    until "$crane" catalog "$address" > /dev/null 2>&1; do
      [ $SECONDS -lt $deadline ] || { "$0" stop "$state"; die "the registry at $address did not answer within 30s"; }
      sleep 0.1
    done
    echo "$address" > "$addrfile"
    echo "$address"
    ;;
  stop)
    if running; then
      pid=$(cat "$pidfile")
      kill "$pid"
      deadline=$((SECONDS + 10))
      while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { kill -9 "$pid" 2>/dev/null || true; break; }
        sleep 0.1
      done
    fi
    rm -f "$pidfile" "$addrfile"
    ;;
  address)
    running || die "no registry runs for $state"
    cat "$addrfile"
    ;;
  *) die "usage: $0 start|stop|address STATE_DIR" ;;
esac
