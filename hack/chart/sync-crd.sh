#!/usr/bin/env bash
# The chart ships the CRD as a template (templates/crd.yaml) that reads a verbatim copy of the
# generated crds/modelserver.dev_modelservers.yaml from the chart's files/ directory.
#
#   hack/chart/sync-crd.sh          copy crds/ -> charts/modelserver-operator/files/
#   hack/chart/sync-crd.sh --check  fail when the chart's copy differs (run by `make chart-lint`)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source_crd=$root/crds/modelserver.dev_modelservers.yaml
chart_crd=$root/charts/modelserver-operator/files/crds/modelserver.dev_modelservers.yaml

[ -f "$source_crd" ] || { echo "sync-crd.sh: $source_crd is missing (make crds)" >&2; exit 1; }
case "${1:-}" in
  --check)
    if ! cmp -s "$source_crd" "$chart_crd"; then
      echo "FAIL: the chart's CRD copy differs from crds/ (run hack/chart/sync-crd.sh, or make chart-generate):" >&2
      diff -u "$source_crd" "$chart_crd" 2>&1 | head -40 >&2 || true
      exit 1
    fi
    echo "ok: the chart's CRD is the generated crds/modelserver.dev_modelservers.yaml"
    ;;
  "")
    mkdir -p "$(dirname "$chart_crd")"
    cp "$source_crd" "$chart_crd"
    ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
