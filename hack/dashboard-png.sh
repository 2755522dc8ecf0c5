#!/usr/bin/env bash
# Draws the chart's Grafana dashboard from a live Prometheus into a PNG (hack/dashboard-png.py),
# in a virtualenv with matplotlib from PyPI, cached under $HOME/.cache/modelserver:
#
#   hack/dashboard-png.sh PROMETHEUS_URL NAMESPACE MODELSERVER SECONDS OUT.png
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="${MODELSERVER_CACHE:-$HOME/.cache/modelserver}/venv-dashboard-png-1"
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "matplotlib==3.10.9" >&2
  touch "$venv/.complete"
fi
exec "$venv/bin/python" "$here/dashboard-png.py" "$@"
