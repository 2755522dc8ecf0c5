#!/usr/bin/env bash
# Real images for the real node, built without Docker and pushed to the cluster's loopback
# registry (nothing can be pulled from outside this machine):
#
#   e2e/images.sh pause REGISTRY   the sandbox image: pause.c from the pinned Kubernetes module,
#                                  compiled with gcc -static
#   e2e/images.sh all REGISTRY     pause, the sidecar (images/build.sh --only sidecar), and the
#                                  iris example on a Debian Python base; prints KEY=IMAGE lines:
#                                    SIDECAR_IMAGE  the static sidecar (the operator's --sidecar-image)
#                                    IRIS_IMAGE     examples/iris, a managed-mode model image
#                                    IRIS_HTTP_IMAGE the same worker serving HTTP on 127.0.0.1:8000
#                                                   itself (proxy mode, model.upstream.port 8000)
#                                    PYTHON_IMAGE   the bare Python base
#   e2e/images.sh base             only build the cached Python base layer
#
# The Python base is `debootstrap --variant=minbase --include=python3` of the Debian release
# below, trimmed, cached as one layer tarball under $MODELSERVER_E2E_CACHE/images (about 40 s
# once). Images are tagged by content, so pushing the same files again is cheap.
set -euo pipefail

e2e_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$e2e_dir/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.env
. "$e2e_dir/versions.env"
cache_root=${MODELSERVER_E2E_CACHE:-$HOME/.cache/modelserver-e2e}
image_cache=$cache_root/images
debian_suite=bookworm
# uid:gid of every model image, as the restricted Pod Security Standard wants (non-root).
image_user=65532:65532

log() { printf 'images.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

crane_bin=$("$root/hack/chart/tools.sh" crane)
crane() { "$crane_bin" "$@" 2>>"$work/crane.log" || { tail -20 "$work/crane.log" >&2; die "crane $1 failed"; }; }

# reproducible_tar DIR OUT: a layer tarball of DIR's contents with fixed owners, times and order.
reproducible_tar() {
  tar --create --file "$2" --directory "$1" --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime=@0 --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
}

# The Debian mirror apt uses here (the only package source this machine reaches).
debian_mirror() {
  local m
  m=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$m" ] || m=$(sed -n 's/^deb \(http[^ ]*\/debian\)\/\{0,1\} .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}

python_base_layer() {
  local out=$image_cache/python-base-$debian_suite.tar tmp start=$SECONDS
  if [ -f "$out" ]; then echo "$out"; return 0; fi
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get install -y -qq debootstrap >&2 || die "apt-get install debootstrap failed"
  }
  mkdir -p "$image_cache"
  tmp=$(mktemp -d "$image_cache/base.XXXXXX")
  log "building the Python base: debootstrap --variant=minbase --include=python3 $debian_suite (once)"
  if ! debootstrap --variant=minbase --include=python3 "$debian_suite" "$tmp/rootfs" "$(debian_mirror)" \
    >"$tmp/debootstrap.log" 2>&1; then
    tail -20 "$tmp/debootstrap.log" >&2
    rm -rf "$tmp"
    die "debootstrap failed"
  fi
  # Trim what a model never needs; device nodes come from the runtime.
  rm -rf "$tmp"/rootfs/dev/* "$tmp"/rootfs/proc/* "$tmp"/rootfs/sys/* "$tmp"/rootfs/run/* \
    "$tmp"/rootfs/usr/share/{doc,man,info,locale,lintian} "$tmp"/rootfs/var/cache/apt/* \
    "$tmp"/rootfs/var/lib/apt/lists/* "$tmp"/rootfs/var/log/* "$tmp"/rootfs/debootstrap
  reproducible_tar "$tmp/rootfs" "$tmp/layer.tar"
  mv "$tmp/layer.tar" "$out"
  rm -rf "$tmp"
  log "built the Python base layer in $((SECONDS - start))s ($(du -h "$out" | cut -f1) uncompressed)"
  echo "$out"
}

pause_layer() {
  local out=$image_cache/pause-$PAUSE_VERSION.tar src dir
  if [ -f "$out" ]; then echo "$out"; return 0; fi
  command -v gcc >/dev/null || die "gcc is needed to build the pause binary"
  src=$(cd "$e2e_dir" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/build/pause/linux/pause.c
  [ -f "$src" ] || die "pause.c not found in the k8s.io/kubernetes module ($src)"
  mkdir -p "$image_cache"
  dir=$(mktemp -d "$image_cache/pause.XXXXXX")
  mkdir -p "$dir/rootfs"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-modelserver-e2e" -o "$dir/rootfs/pause" "$src" ||
    die "gcc -static pause.c failed"
  strip "$dir/rootfs/pause"
  reproducible_tar "$dir/rootfs" "$dir/layer.tar"
  mv "$dir/layer.tar" "$out"
  rm -rf "$dir"
  echo "$out"
}

# push_image REF LAYER BASE ARGS...: appends LAYER to BASE (an image ref, or "" for empty), sets
# the config from ARGS (crane mutate flags), prints REF@digest.
push_image() {
  local ref=$1 layer=$2 base=$3
  shift 3
  if [ -n "$base" ]; then
    crane append --base "$base" --new_layer "$layer" --new_tag "$ref" >/dev/null
  else
    crane append --oci-empty-base --new_layer "$layer" --new_tag "$ref" >/dev/null
  fi
  crane mutate "$ref" --tag "$ref" --set-platform linux/amd64 "$@" >/dev/null
  echo "${ref%:*}@$(crane digest "$ref")"
}

build_pause() {
  local registry=$1
  push_image "$registry/pause:$PAUSE_VERSION" "$(pause_layer)" "" --entrypoint /pause --user 65535:65535
}

build_all() {
  local registry=$1 app python iris iris_http sidecar
  build_pause "$registry" >/dev/null
  python=$(push_image "$registry/modelserver-e2e/python:$debian_suite" "$(python_base_layer)" "" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env PYTHONDONTWRITEBYTECODE=1 \
    --user "$image_user" --workdir / --entrypoint python3)
  # examples/iris/Containerfile, without a Docker daemon: the worker and its model under /app.
  app=$work/iris
  mkdir -p "$app/rootfs/app"
  install -m 0644 "$root/examples/iris/worker.py" "$root/examples/iris/model.json" "$app/rootfs/app/"
  reproducible_tar "$app/rootfs" "$app/layer.tar"
  iris=$(push_image "$registry/modelserver-e2e/iris:1.4.0" "$app/layer.tar" "$python" \
    --user "$image_user" --workdir /app --entrypoint python3 --cmd /app/worker.py)
  iris_http=$(push_image "$registry/modelserver-e2e/iris-http:1.4.0" "$app/layer.tar" "$python" \
    --user "$image_user" --workdir /app --entrypoint python3 \
    --cmd /app/worker.py,--port,8000,--host,127.0.0.1)
  sidecar=$("$root/images/build.sh" --registry "$registry" --only sidecar |
    sed -n 's/^SIDECAR_IMAGE=//p')
  [ -n "$sidecar" ] || die "images/build.sh printed no SIDECAR_IMAGE"
  echo "SIDECAR_IMAGE=$sidecar"
  echo "IRIS_IMAGE=$iris"
  echo "IRIS_HTTP_IMAGE=$iris_http"
  echo "PYTHON_IMAGE=$python"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "${1:-}" in
  pause) [ $# -eq 2 ] || die "usage: $0 pause REGISTRY"; build_pause "$2" ;;
  all) [ $# -eq 2 ] || die "usage: $0 all REGISTRY"; build_all "$2" ;;
  base) python_base_layer ;;
  *) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit 2 ;;
esac
