#!/usr/bin/env bash
# Builds (or reuses) KEDA's operator and metrics API server (github.com/kedacore/keda/v2 at the
# version in go.mod) into the cache, keyed by go.mod and go.sum; prints the directory holding
# `keda-operator` and `keda-adapter`. Cold, 10 to 25 minutes on two cores (25 measured while
# other builds ran) and about 200 MB of binaries; Go modules come from the Go module proxy (go.sum
# pins them).
#
#   e2e/keda/build.sh        the binaries' directory
#   e2e/keda/build.sh crds   the directory of KEDA's CRDs (config/crd/bases of the same module)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = crds ]; then
  version=$(sed -n 's#^[[:space:]]*github.com/kedacore/keda/v2 \(v[^ ]*\).*#\1#p' "$here/go.mod")
  dir=$(cd "$here" && go mod download -json "github.com/kedacore/keda/v2@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -f "$dir/config/crd/bases/keda.sh_scaledobjects.yaml" ] ||
    { echo "keda/build.sh: no ScaledObject CRD in $dir" >&2; exit 1; }
  echo "$dir/config/crd/bases"
  exit 0
fi
hash=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)
out="${MODELSERVER_CACHE:-$HOME/.cache/modelserver}/tools/keda-$hash"
if [ ! -x "$out/keda-operator" ] || [ ! -x "$out/keda-adapter" ]; then
  command -v go >/dev/null || { echo "keda/build.sh: go is not installed" >&2; exit 1; }
  start=$SECONDS
  tmp=$out.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$tmp"
  (
    cd "$here"
    export GOFLAGS=-buildvcs=false
    go build -trimpath -ldflags "-s -w" -o "$tmp/keda-operator" github.com/kedacore/keda/v2/cmd/operator
    go build -trimpath -ldflags "-s -w" -o "$tmp/keda-adapter" github.com/kedacore/keda/v2/cmd/adapter
  ) >&2
  rm -rf "$out"
  mv "$tmp" "$out"
  echo "keda/build.sh: built KEDA in $((SECONDS - start))s into $out" >&2
fi
echo "$out"
