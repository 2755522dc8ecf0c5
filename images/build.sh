#!/usr/bin/env bash
# `make images`: the two OCI images, built without a Docker daemon from the static release
# binaries with crane (go-containerregistry):
#   modelserver-operator  /usr/local/bin/modelserver-operator (entrypoint)
#   modelserver-sidecar   /usr/local/bin/modelserver-sidecar  (entrypoint; the operator's pods run
#                         `modelserver-sidecar install /modelserver/bin` in it, or `proxy`)
# Each image is one layer holding just the binary (owned by root, mode 0755), user 65532:65532,
# linux/amd64, with OCI labels; the layer tar is reproducible, so the same binary gives the same
# digest. The images are pushed to a registry on loopback, pulled back, unpacked, and the
# entrypoint binary is run with --version to prove the image works.
#
#   images/build.sh                    start a registry on 127.0.0.1 (images/registry.sh), build,
#                                      push, check, stop it
#   images/build.sh --registry ADDR    push to a registry that already runs (e.g. the e2e's)
#   images/build.sh --only sidecar     build only that image (also: --only operator); the other
#                                      binary is then neither needed nor built
#
# Environment:
#   OPERATOR_BIN, SIDECAR_BIN  the static binaries (default: the static release builds under
#                              $CARGO_TARGET_DIR or target/, built here when missing)
#   IMAGES_OUT                 where images.env goes (default <target dir>/images)
# Prints OPERATOR_IMAGE=... and SIDECAR_IMAGE=... lines (repo@sha256:digest) on stdout.
# Output in $IMAGES_OUT: images.env with OPERATOR_IMAGE and SIDECAR_IMAGE as repo@sha256:digest
# and REGISTRY (for `helm install --set image.repository=... --set image.digest=...`), and each
# image as a tarball, modelserver-operator.tar and modelserver-sidecar.tar, for
# `crane push <tarball> <your registry>/<repository>:<tag>`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

registry=""
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) [ $# -ge 2 ] || die "--registry needs an address"; registry=$2; shift 2 ;;
    --only)
      [ $# -ge 2 ] && { [ "$2" = sidecar ] || [ "$2" = operator ]; } || die "--only needs sidecar or operator"
      only=$2
      shift 2
      ;;
    *) die "usage: $0 [--registry HOST:PORT] [--only sidecar|operator]" ;;
  esac
done
# wanted NAME: NAME's image is to be built.
wanted() { [ -z "$only" ] || [ "$only" = "$1" ]; }

triple=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$root/target}
operator_bin=${OPERATOR_BIN:-$target_dir/$triple/release/modelserver-operator}
sidecar_bin=${SIDECAR_BIN:-$target_dir/$triple/release/modelserver-sidecar}
out=${IMAGES_OUT:-$target_dir/images}
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/modelserver-operator/Chart.yaml)
[ -n "$version" ] || die "no appVersion in charts/modelserver-operator/Chart.yaml"
crane_bin=$(hack/chart/tools.sh crane)
# crane logs every blob it pushes: kept in a file, shown when a crane command fails.
crane() {
  if ! "$crane_bin" "$@" 2>> "$work/crane.log"; then
    tail -20 "$work/crane.log" >&2
    die "crane $1 failed"
  fi
}

# The static binaries: built here only when missing (the make target builds them first).
static_build() { # static_build PACKAGE BINARY
  log "building the static $2 (cargo build --release --target $triple)"
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target "$triple" -p "$1" --bin "$2" >&2
}
binaries=()
if wanted operator; then
  [ -x "$operator_bin" ] || static_build modelserver-operator modelserver-operator
  binaries+=("$operator_bin")
fi
if wanted sidecar; then
  [ -x "$sidecar_bin" ] || static_build modelserver-sidecar modelserver-sidecar
  binaries+=("$sidecar_bin")
fi
for binary in "${binaries[@]}"; do
  [ -x "$binary" ] || die "$binary is missing"
  # A dynamically linked binary would not run in an image without a libc.
  if command -v file > /dev/null && ! file -L "$binary" | grep -q 'static'; then
    die "$binary is not statically linked (build it with RUSTFLAGS=\"-C target-feature=+crt-static\")"
  fi
done

work=$(mktemp -d)
own_registry=""
cleanup() {
  if [ -n "$own_registry" ]; then images/registry.sh stop "$own_registry" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "$registry" ]; then
  own_registry=$work/registry
  registry=$(images/registry.sh start "$own_registry")
  log "registry on $registry (stopped at exit)"
fi
case "$registry" in
  127.*|localhost:*|\[::1\]:*) ;;
  *) die "refusing to push to $registry: this script pushes to a registry on loopback only" ;;
esac
mkdir -p "$out"

# build NAME BINARY: prints the pushed image as repo@digest.
build() {
  local name=$1 binary=$2 ref layer dir digest
  ref=$registry/$name:$version
  dir=$work/$name
  mkdir -p "$dir/rootfs/usr/local/bin"
  install -m 0755 "$binary" "$dir/rootfs/usr/local/bin/$name"
  layer=$dir/layer.tar
  # Reproducible: fixed owner, mode, mtime and order.
  tar --create --file "$layer" --directory "$dir/rootfs" --sort=name --owner=0 --group=0 \
    --numeric-owner --mtime=@0 --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    usr
  crane append --oci-empty-base --new_layer "$layer" --new_tag "$ref" > /dev/null
  crane mutate "$ref" --tag "$ref" \
    --set-platform linux/amd64 \
    --entrypoint "/usr/local/bin/$name" \
    --user 65532:65532 \
    --workdir / \
    --label "org.opencontainers.image.title=$name" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.description=ModelServer $name $version (static binary only)" \
    > /dev/null
  digest=$(crane digest "$ref")
  echo "$registry/$name@$digest"
}

# verify NAME IMAGE: pulls the image back, checks its config, runs its entrypoint with --version.
verify() {
  local name=$1 image=$2 dir=$work/$1/pulled config entrypoint output
  mkdir -p "$dir"
  config=$(crane config "$image")
  entrypoint=$(python3 -c 'import json,sys; c=json.load(sys.stdin); print(json.dumps([c["config"].get("Entrypoint"), c["config"].get("User"), c["os"], c["architecture"]]))' <<< "$config")
  [ "$entrypoint" = "[[\"/usr/local/bin/$name\"], \"65532:65532\", \"linux\", \"amd64\"]" ] \
    || die "$image: unexpected entrypoint/user/platform $entrypoint"
  crane export "$image" - | tar --extract --directory "$dir"
  [ -x "$dir/usr/local/bin/$name" ] || die "$image has no executable /usr/local/bin/$name"
  output=$("$dir/usr/local/bin/$name" --version) || die "$image: /usr/local/bin/$name --version failed"
  [ "$output" = "$name $version" ] || die "$image: --version says '$output', want '$name $version'"
  log "ok: $image runs: $output"
}

start=$SECONDS
{
  echo "REGISTRY=$registry"
  echo "VERSION=$version"
} > "$out/images.env"
for name in operator sidecar; do
  wanted "$name" || continue
  if [ "$name" = operator ]; then binary=$operator_bin; else binary=$sidecar_bin; fi
  image=$(build "modelserver-$name" "$binary")
  verify "modelserver-$name" "$image"
  # A tarball to push anywhere later: crane push $out/NAME.tar REGISTRY/REPO:TAG
  crane pull "$image" "$out/modelserver-$name.tar"
  key=$(tr '[:lower:]' '[:upper:]' <<< "$name")_IMAGE
  echo "$key=$image" | tee -a "$out/images.env"
  log "  $image"
done
log "built, pushed and checked in $((SECONDS - start))s (written to $out/images.env)"
