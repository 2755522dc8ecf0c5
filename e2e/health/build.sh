#!/usr/bin/env bash
# Builds (or reuses) e2e/health, which judges an object with the GitOps tools' own code (Flux's
# kstatus, Argo CD's Lua check under gopher-lua), into the cache, keyed by its sources; prints
# the binary's path. Go modules come from the Go module proxy (go.sum pins them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hash=$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-12)
out="${MODELSERVER_CACHE:-$HOME/.cache/modelserver}/tools/health-$hash/health"
if [ ! -x "$out" ]; then
  mkdir -p "$(dirname "$out")"
  (cd "$here" && GOFLAGS=-buildvcs=false go build -trimpath -o "$out.tmp" . && mv "$out.tmp" "$out") >&2
fi
echo "$out"
