#!/usr/bin/env bash
# Prints the directory of the Gateway API's standard-channel CRDs (HTTPRoute, Gateway,
# GatewayClass, GRPCRoute, ReferenceGrant, ...) at the version pinned in e2e/versions.env, taken
# from its Go module (`go mod download`, cached in the Go module cache), for the e2e suite:
#
#   e2e/gateway-api.sh crds
#
# Only the CRDs: the module's ValidatingAdmissionPolicy for safe upgrades is left out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.env
. "$here/versions.env"

die() { echo "gateway-api.sh: $*" >&2; exit 1; }

case "${1:-}" in
  crds)
    command -v go >/dev/null || die "go is not installed: the CRDs come from the Go module sigs.k8s.io/gateway-api"
    # Outside any module, so e2e/go.mod is not touched.
    dir=$(cd / && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    crds=$dir/config/crd/standard
    [ -f "$crds/gateway.networking.k8s.io_httproutes.yaml" ] ||
      die "no HTTPRoute CRD in $crds (go mod download sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION)"
    echo "$crds"
    ;;
  *)
    die "usage: $0 crds"
    ;;
esac
