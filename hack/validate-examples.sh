#!/usr/bin/env bash
# Checks the examples and what they render with validators that are not ours:
#  1. every object `modelserver-operator render` prints for a valid example passes
#     kubernetes-validate --strict against the official Kubernetes OpenAPI schemas
#     (the oldest and newest Kubernetes versions we support);
#  2. every valid example passes check-jsonschema against the schema in the committed CRD, with
#     unknown fields refused (as kubectl's strict field validation does), and every structurally
#     invalid file in examples/invalid fails it. The CEL rules are beyond a JSON-schema
#     validator: crds/tests/rules_match_cel.rs evaluates them with a CEL interpreter and the e2e
#     suite with a real API server.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=$(./hack/venv.sh)
bin=$(dirname "$python")
operator=${OPERATOR_BIN:-${CARGO_TARGET_DIR:-target}/debug/modelserver-operator}
[ -x "$operator" ] || cargo build --quiet -p modelserver-operator
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
checked=0

valid=()
invalid=()
while IFS= read -r file; do
  grep -q '^kind: ModelServer' "$file" || continue
  if grep -q '^# expect: ' "$file"; then invalid+=("$file"); else valid+=("$file"); fi
done < <(find examples -name '*.yaml' | sort)
[ ${#valid[@]} -ge 3 ] || { echo "expected at least 3 valid examples, found ${#valid[@]}"; exit 1; }

for file in "${valid[@]}"; do
  out="$work/$(echo "$file" | tr / _)"
  "$operator" render -f "$file" > "$out"
  for version in 1.33.0 1.37.0; do
    if ! "$bin/kubernetes-validate" --strict --quiet -k "$version" "$out"; then
      echo "FAIL: objects rendered from $file are not valid Kubernetes $version objects"
      failures=$((failures + 1))
    fi
  done
  checked=$((checked + 1))
done

# The CRD's openAPIV3Schema as a JSON Schema that refuses unknown fields.
# Also lists the messages of the CEL rules, one a line.
"$python" - crds/modelserver.dev_modelservers.yaml "$work/schema.json" "$work/cel-messages" <<'PY'
import json, sys, yaml
crd = yaml.safe_load(open(sys.argv[1]))
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
messages = []
def strict(node):
    if isinstance(node, dict):
        messages.extend(rule["message"] for rule in node.get("x-kubernetes-validations", []))
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        if node.get("x-kubernetes-int-or-string"):
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
strict(schema)
schema["properties"]["metadata"] = {"type": "object"}
schema["properties"]["apiVersion"] = {"type": "string"}
schema["properties"]["kind"] = {"type": "string"}
json.dump(schema, open(sys.argv[2], "w"))
open(sys.argv[3], "w").write("".join(m + "\n" for m in messages))
PY

for file in "${valid[@]}"; do
  if ! "$bin/check-jsonschema" --schemafile "$work/schema.json" "$file" > "$work/out" 2>&1; then
    echo "FAIL: $file does not validate against the CRD schema:"; cat "$work/out"
    failures=$((failures + 1))
  fi
  checked=$((checked + 1))
done

for file in "${invalid[@]}"; do
  expect=$(sed -n 's/^# expect: //p' "$file")
  # render must refuse the file with the rule's message.
  if "$operator" render -f "$file" > /dev/null 2> "$work/err"; then
    echo "FAIL: render accepted $file"; failures=$((failures + 1))
  elif ! grep -qF -- "$expect" "$work/err"; then
    echo "FAIL: render refused $file without the message '$expect':"; cat "$work/err"
    failures=$((failures + 1))
  fi
  # A structural problem must also fail the independent JSON-schema check.
  if ! grep -qxF -- "$expect" "$work/cel-messages"; then
    if "$bin/check-jsonschema" --schemafile "$work/schema.json" "$file" > /dev/null 2>&1; then
      echo "FAIL: check-jsonschema accepted the structurally invalid $file"; failures=$((failures + 1))
    fi
  fi
  checked=$((checked + 1))
done

echo "validate-examples: $((checked - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
