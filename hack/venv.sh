#!/usr/bin/env bash
# Creates (or reuses) the test virtualenv under $HOME/.cache and prints its python path.
# The venv is keyed by the hash of hack/requirements-test.txt, so a changed pin rebuilds it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
req="$root/hack/requirements-test.txt"
hash=$(sha256sum "$req" | cut -c1-12)
venv="${MODELSERVER_CACHE:-$HOME/.cache/modelserver}/venv-$hash"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
