# Where one local cluster lives, sourced by e2e/cluster.sh and e2e/node.sh after they set
# $e2e_dir: the pinned versions, the cluster's name and state dir, and the binary cache.
# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR source=../versions.env
. "$e2e_dir/versions.env"

cluster_name=${MODELSERVER_E2E_CLUSTER:-dev}
state=${MODELSERVER_E2E_STATE:-$e2e_dir/.state/$cluster_name}
case "$state" in /*) ;; *) state=$PWD/$state ;; esac
cache_root=${MODELSERVER_E2E_CACHE:-$HOME/.cache/modelserver-e2e}
bin_dir=$cache_root/$KUBERNETES_VERSION/bin
