#!/usr/bin/env bash
# Builds (or reuses) Jaeger v1.76.0's all-in-one binary (`cmd/jaeger`, the OpenTelemetry
# Collector based Jaeger with its OTLP receivers, in-memory storage and query API) from its Go
# module, into the cache, keyed by this tools module; prints the binary's path. The tracing test
# (`make trace-test`) runs it on loopback as a real OTLP receiver. Go modules come from the Go
# module proxy (go.sum pins them). Cold, the build takes several minutes (see sidecar/README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hash=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)
out="${MODELSERVER_CACHE:-$HOME/.cache/modelserver}/tools/jaeger-v1.76.0-$hash/jaeger"
if [ ! -x "$out" ]; then
  mkdir -p "$(dirname "$out")"
  (cd "$here" && GOFLAGS=-buildvcs=false go build -trimpath -o "$out.tmp" github.com/jaegertracing/jaeger/cmd/jaeger && mv "$out.tmp" "$out") >&2
fi
echo "$out"
