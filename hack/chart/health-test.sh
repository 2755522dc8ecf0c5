#!/usr/bin/env bash
# Tests docs/argocd/health.lua, the Argo CD health check for ModelServers, with real Lua
# interpreters (Lua 5.1, Lua 5.4, and gopher-lua, the Go interpreter Argo CD embeds, through
# e2e/health) against the objects and expectations in docs/argocd/health_test.yaml. Then checks the test itself: a health check
# that trusts a status older than the spec must fail it. Also checks that the argocd-cm snippet
# carries exactly health.lua.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
python=$(./hack/venv.sh)
lua54=$(hack/chart/tools.sh lua)
lua51=$(hack/chart/tools.sh lua5.1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The YAML cases as a Lua file returning a list of tables (Lua has no YAML parser).
"$python" - docs/argocd/health_test.yaml "$work/cases.lua" <<'PY'
import os, sys, yaml

def lua(value, indent=""):
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        # Argo CD's gopher-lua has only float64 numbers: pass them as floats here too.
        return repr(float(value))
    if isinstance(value, str):
        out = '"'
        for ch in value:
            if ch in '"\\':
                out += "\\" + ch
            elif ch == "\n":
                out += "\\n"
            elif ord(ch) < 32 or ord(ch) == 127:
                out += "\\%03d" % ord(ch)
            else:
                out += ch
        return out + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua(v, indent) for v in value) + "}"
    if isinstance(value, dict):
        # JSON null is a missing key in Argo CD's Lua table as well.
        return "{" + ", ".join("[%s] = %s" % (lua(str(k)), lua(v)) for k, v in value.items() if v is not None) + "}"
    raise SystemExit("unsupported YAML value %r" % (value,))

spec_path, out_path = sys.argv[1], sys.argv[2]
base = os.path.dirname(spec_path)
tests = yaml.safe_load(open(spec_path))["tests"]
if not tests:
    raise SystemExit(f"{spec_path}: no tests")
cases = []
for test in tests:
    path = os.path.join(base, test["inputPath"])
    obj = yaml.safe_load(open(path, encoding="utf-8"))
    expected = test["healthStatus"]
    cases.append("{name = %s, status = %s, message = %s, obj = %s}" % (
        lua(test["inputPath"]), lua(expected["status"]), lua(expected["message"]), lua(obj)))
open(out_path, "w").write("return {\n" + ",\n".join(cases) + "\n}\n")
PY

status=0
for interpreter in "$lua51" "$lua54"; do
  echo "== docs/argocd/health.lua with $("$interpreter" -v 2>&1 | cut -d' ' -f1,2)"
  "$interpreter" hack/chart/health_test.lua docs/argocd/health.lua "$work/cases.lua" || status=1
done

# Under gopher-lua, the interpreter Argo CD embeds, through the same Go code path as the e2e
# suite's live checks (e2e/health: the object as Argo CD hands it to Lua, numbers as float64).
echo "== docs/argocd/health.lua with gopher-lua (e2e/health)"
health=$(e2e/health/build.sh)
"$python" - docs/argocd/health_test.yaml "$health" docs/argocd/health.lua <<'PY' || status=1
import json, os, subprocess, sys, yaml
spec_path, health, script = sys.argv[1:4]
base = os.path.dirname(spec_path)
failed = 0
for test in yaml.safe_load(open(spec_path))["tests"]:
    obj = yaml.safe_load(open(os.path.join(base, test["inputPath"]), encoding="utf-8"))
    out = subprocess.run([health, "--lua", script], input=json.dumps(obj), capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAIL {test['inputPath']}: {out.stderr.strip()}"); failed += 1; continue
    got = json.loads(out.stdout)["argocd"]
    want = test["healthStatus"]
    if (got["status"], got["message"]) != (want["status"], want["message"]):
        print(f"FAIL {test['inputPath']}: got {got}, want {want}"); failed += 1
    else:
        print(f"ok   {test['inputPath']}: {got['status']}: {got['message']}")
sys.exit(1 if failed else 0)
PY

# The test must catch a check that reports Healthy for a status older than the spec.
sed 's/(observed == nil or observed < generation)/false/; s/c.observedGeneration < generation/false/' \
  docs/argocd/health.lua > "$work/trusts-stale-status.lua"
if cmp -s docs/argocd/health.lua "$work/trusts-stale-status.lua"; then
  echo "FAIL: could not make the stale-status mutant of health.lua (did the check change? update $0)"
  status=1
elif "$lua54" hack/chart/health_test.lua "$work/trusts-stale-status.lua" "$work/cases.lua" > "$work/mutant.out"; then
  echo "FAIL: a health.lua that trusts a stale status passed the tests:"; cat "$work/mutant.out"
  status=1
else
  echo "ok   a health.lua that trusts a stale status fails the tests ($(grep -c '^FAIL' "$work/mutant.out") cases catch it)"
fi

# The argocd-cm snippet must carry health.lua exactly.
"$python" - docs/argocd/argocd-cm.yaml docs/argocd/health.lua <<'PY' || status=1
import sys, yaml
cm = yaml.safe_load(open(sys.argv[1]))
key = "resource.customizations.health.modelserver.dev_ModelServer"
script = cm.get("data", {}).get(key)
if script is None:
    raise SystemExit(f"FAIL: {sys.argv[1]} has no data.{key}")
if script != open(sys.argv[2]).read():
    raise SystemExit(f"FAIL: data.{key} in {sys.argv[1]} differs from {sys.argv[2]} (hack/chart/gen-argocd-cm.sh)")
print(f"ok   {sys.argv[1]} carries {sys.argv[2]}")
PY
exit "$status"
