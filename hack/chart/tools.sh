#!/usr/bin/env bash
# Installs (once, into a cache) the pinned tools the chart checks and the image build use, and
# prints the path of the one asked for:
#
#   hack/chart/tools.sh helm     helm, built from its Go module with `go install`
#   hack/chart/tools.sh crane    crane (go-containerregistry), built the same way
#   hack/chart/tools.sh promtool promtool (Prometheus), built the same way: checks and unit-tests
#                                the chart's alerting rules and the dashboard's queries
#   hack/chart/tools.sh prometheus  the Prometheus server from the same module (a larger build;
#                                only hack/chart/prometheus-test.sh uses it, not in `all`)
#   hack/chart/tools.sh prometheus-operator-crds  the directory of the Prometheus Operator's CRDs
#                                (ServiceMonitor, PodMonitor, PrometheusRule), from its Go module
#                                (downloaded with `go mod download`, nothing built)
#   hack/chart/tools.sh lua      Debian's lua5.4 (installed with apt-get when missing)
#   hack/chart/tools.sh lua5.1   Debian's lua5.1: Argo CD runs health checks with gopher-lua,
#                                a Lua 5.1, so the health check is also tested under 5.1
#   hack/chart/tools.sh all      all of them; prints nothing
#
# Go tools land in $MODELSERVER_CACHE/tools/<name>-<version>/ (default cache
# $HOME/.cache/modelserver), so changing a pin below builds the new version next to the old one.
set -euo pipefail

HELM_VERSION=v3.22.0
CRANE_VERSION=v0.22.1
# Prometheus v3.x's Go module versions are v0.3xx (v3.16.0 is v0.316.0); promtool and the server.
PROMETHEUS_VERSION=v0.316.0
# The Prometheus Operator whose CRDs the chart's ServiceMonitor, PodMonitor and PrometheusRule
# are validated against.
PROMETHEUS_OPERATOR_VERSION=v0.85.0

cache=${MODELSERVER_CACHE:-$HOME/.cache/modelserver}/tools

log() { printf 'tools.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# go_tool NAME VERSION PACKAGE [LDFLAGS]: builds PACKAGE@VERSION into the cache, prints its path.
go_tool() {
  local name=$1 version=$2 package=$3 ldflags=${4:-}
  local dir=$cache/$name-$version
  if [ ! -x "$dir/$name" ]; then
    command -v go >/dev/null || die "go is not installed: $name is built from its Go module"
    local tmp=$dir.tmp.$$ start=$SECONDS
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "building $package@$version (once; cached in $dir)"
    if ! CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w $ldflags" \
      "$package@$version" >&2; then
      rm -rf "$tmp"
      die "go install $package@$version failed"
    fi
    [ -x "$tmp/$name" ] || die "go install $package@$version made no $name binary"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    log "built $name $version in $((SECONDS - start))s"
  fi
  echo "$dir/$name"
}

# apt_tool COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is missing, prints its path.
apt_tool() {
  local command=$1 package=$2
  if ! command -v "$command" >/dev/null; then
    command -v apt-get >/dev/null || die "$command is missing and there is no apt-get to install $package"
    [ "$(id -u)" = 0 ] || die "$command is missing: install the Debian package $package (needs root)"
    log "installing the Debian package $package"
    { apt-get install -y -qq "$package" || { apt-get update -qq && apt-get install -y -qq "$package"; }; } >&2 \
      || die "apt-get install $package failed"
  fi
  command -v "$command"
}

helm() {
  local dir=$cache/helm-$HELM_VERSION gomod minor ldflags
  if [ ! -x "$dir/helm" ]; then
    command -v go >/dev/null || die "go is not installed: helm is built from its Go module"
    # The stamps helm's release build (its Makefile) sets: the version, and the Kubernetes
    # version of its client-go, which `helm template` and `helm lint` assume for the cluster
    # (unset, they assume 1.20 and refuse our kubeVersion: >=1.33).
    gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    [ -f "$gomod" ] || die "could not download helm.sh/helm/v3@$HELM_VERSION's go.mod"
    minor=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")
    [ -n "$minor" ] || die "no k8s.io/client-go requirement in $gomod"
    ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
      ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
    done
  fi
  go_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "${ldflags:-}"
}
crane() { go_tool crane "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane; }
promtool() { go_tool promtool "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/promtool; }
prometheus() { go_tool prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus; }
prometheus_operator_crds() {
  local module=github.com/prometheus-operator/prometheus-operator dir
  command -v go >/dev/null || die "go is not installed: the Prometheus Operator's CRDs come from its Go module"
  dir=$(cd / && go mod download -json "$module@$PROMETHEUS_OPERATOR_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -d "$dir/example/prometheus-operator-crd" ] || die "could not download $module@$PROMETHEUS_OPERATOR_VERSION"
  echo "$dir/example/prometheus-operator-crd"
}

case "${1:-}" in
  helm) helm ;;
  crane) crane ;;
  promtool) promtool ;;
  prometheus) prometheus ;;
  prometheus-operator-crds) prometheus_operator_crds ;;
  lua) apt_tool lua5.4 lua5.4 ;;
  lua5.1) apt_tool lua5.1 lua5.1 ;;
  all) helm >/dev/null; crane >/dev/null; promtool >/dev/null; prometheus_operator_crds >/dev/null; apt_tool lua5.4 lua5.4 >/dev/null; apt_tool lua5.1 lua5.1 >/dev/null ;;
  *) die "usage: $0 helm|crane|promtool|prometheus|prometheus-operator-crds|lua|lua5.1|all" ;;
esac
