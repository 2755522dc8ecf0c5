#!/usr/bin/env bash
# Sidecar benchmark (a report, not a test): on loopback, in one run, with one load generator (oha),
# requests/s and p50/p99 latency through the sidecar with one worker versus straight to that
# worker's Unix socket, plus the sidecar's RSS idle and under load. Rounds alternate direct and
# sidecar so both see the same machine state; the median round is reported.
#
# Usage (make bench-sidecar sets these): SIDECAR=path WORKER=path OHA=path bench/sidecar.sh
# Knobs: DURATION (10s), CONCURRENCY ("1 16": one connection shows the added latency, sixteen the
# throughput), ROUNDS (3), SCENARIOS ("trivial iris"), RUNTIME_THREADS (the sidecar's, 1).
set -euo pipefail

: "${SIDECAR:?path of the sidecar binary}" "${WORKER:?path of the trivial worker}" "${OHA:?path of oha}"
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-1 16}
RUNTIME_THREADS=${RUNTIME_THREADS:-1}
MAX_CONNECTIONS=$(printf '%s\n' $CONCURRENCY | sort -n | tail -1)
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-trivial iris}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
sidecar_pid=""

cleanup() {
  if [ -n "$sidecar_pid" ] && kill -0 "$sidecar_pid" 2>/dev/null; then
    kill -TERM "$sidecar_pid" 2>/dev/null || true
    wait "$sidecar_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# oha JSON -> "rps p50_us p99_us success_rate"
summarize() {
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
s, p = d["summary"], d["latencyPercentiles"]
print("%.0f %.0f %.0f %.4f" % (s["requestsPerSec"], p["p50"] * 1e6, p["p99"] * 1e6, s["successRate"]))
' "$1"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_oha() { # out-file connections url [extra oha args...]
  local out=$1 connections=$2 url=$3; shift 3
  "$OHA" --no-tui --output-format json -z "$DURATION" -c "$connections" "$@" "$url" > "$out"
}

start_sidecar() { # worker command...
  local log="$work/sidecar.log"
  MODELSERVER_SOCKET_DIR="$work/sockets" MODELSERVER_ACCESS_LOG=false \
    "$SIDECAR" serve --bind 127.0.0.1 --port 0 --admin-port 0 --workers 1 \
      --executor-threads "$MAX_CONNECTIONS" --runtime-threads "$RUNTIME_THREADS" \
      --drain-delay 0s -- "$@" > "$log" 2>&1 &
  sidecar_pid=$!
  for _ in $(seq 1 200); do
    if grep -q 'listening' "$log"; then break; fi
    sleep 0.05
  done
  public=$(grep -o 'public_addr=[0-9.:]*' "$log" | head -1 | cut -d= -f2)
  admin=$(grep -o 'admin_addr=[0-9.:]*' "$log" | head -1 | cut -d= -f2)
  for _ in $(seq 1 600); do
    if curl -fs "http://$admin/readyz" > /dev/null; then return 0; fi
    sleep 0.05
  done
  echo "sidecar did not become ready:" >&2; cat "$log" >&2; exit 1
}

stop_sidecar() {
  kill -TERM "$sidecar_pid"
  wait "$sidecar_pid" || true
  sidecar_pid=""
}

echo "# modelserver-sidecar benchmark"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "- load: oha $("$OHA" --version | awk '{print $2}') on the same machine, keep-alive, ${DURATION} per round, ${ROUNDS} rounds alternating direct/sidecar, median round shown"
echo "- sidecar: $SIDECAR ($(du -h "$SIDECAR" | cut -f1)), 1 worker, executor threads $MAX_CONNECTIONS (no queueing), runtime threads $RUNTIME_THREADS, access log off"
echo

for scenario in $SCENARIOS; do
  case $scenario in
    trivial) cmd=("$WORKER"); path=/bench; label="trivial worker (Rust hyper, 1 thread)";;
    iris) cmd=(python3 "$root/examples/iris/worker.py"); path=/health; label="iris worker (Python stdlib, GET /health)";;
    *) echo "unknown scenario $scenario" >&2; exit 2;;
  esac
  start_sidecar "${cmd[@]}"
  socket="$work/sockets/worker-0.sock"
  sleep 1
  idle=$(rss_kib "$sidecar_pid")
  # Warm up both paths (connection pools, page cache).
  "$OHA" --no-tui --output-format quiet -n 2000 -c "$MAX_CONNECTIONS" "http://$public$path" > /dev/null
  "$OHA" --no-tui --output-format quiet -n 2000 -c "$MAX_CONNECTIONS" --unix-socket "$socket" "http://localhost$path" > /dev/null

  echo "## $label"
  echo
  echo "| connections | path | requests/s | p50 (µs) | p99 (µs) | success |"
  echo "| ---: | --- | ---: | ---: | ---: | ---: |"
  peak=0
  for c in $CONCURRENCY; do
    for round in $(seq 1 "$ROUNDS"); do
      run_oha "$work/direct-$c-$round.json" "$c" "http://localhost$path" --unix-socket "$socket"
      ( while kill -0 "$sidecar_pid" 2>/dev/null; do rss_kib "$sidecar_pid"; sleep 0.2; done ) > "$work/rss.txt" &
      sampler=$!
      run_oha "$work/sidecar-$c-$round.json" "$c" "http://$public$path"
      kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
      round_peak=$(sort -n "$work/rss.txt" | tail -1)
      [ "${round_peak:-0}" -gt "$peak" ] && peak=$round_peak
    done
    for kind in direct sidecar; do
      for round in $(seq 1 "$ROUNDS"); do summarize "$work/$kind-$c-$round.json"; done > "$work/$kind-$c.txt"
    done
    d_rps=$(cut -d' ' -f1 "$work/direct-$c.txt" | median); s_rps=$(cut -d' ' -f1 "$work/sidecar-$c.txt" | median)
    d_p50=$(cut -d' ' -f2 "$work/direct-$c.txt" | median); s_p50=$(cut -d' ' -f2 "$work/sidecar-$c.txt" | median)
    d_p99=$(cut -d' ' -f3 "$work/direct-$c.txt" | median); s_p99=$(cut -d' ' -f3 "$work/sidecar-$c.txt" | median)
    d_ok=$(cut -d' ' -f4 "$work/direct-$c.txt" | median); s_ok=$(cut -d' ' -f4 "$work/sidecar-$c.txt" | median)
    echo "| $c | direct to the worker's socket | $d_rps | $d_p50 | $d_p99 | $d_ok |"
    echo "| $c | through the sidecar | $s_rps | $s_p50 | $s_p99 | $s_ok |"
    awk -v c="$c" -v d="$d_rps" -v s="$s_rps" -v dp="$d_p50" -v sp="$s_p50" 'BEGIN {
      printf "| %s | **sidecar vs direct** | **%+.1f%%** | **%+d** | | |\n", c, (s - d) / d * 100, sp - dp }'
  done
  stop_sidecar
  echo
  echo "Sidecar RSS: idle $((idle / 1024)).$(( (idle % 1024) * 10 / 1024 )) MiB, under load (peak) $((peak / 1024)).$(( (peak % 1024) * 10 / 1024 )) MiB."
  echo
done
