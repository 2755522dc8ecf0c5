#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (`make fuzz`).
#
#   fuzz/run.sh [TARGET...]     default: every target in fuzz/Cargo.toml
#   FUZZ_SECONDS=30             time per target (libFuzzer -max_total_time)
#
# cargo-fuzz is installed on first use into ~/.cache/modelserver/tools/cargo-fuzz. It builds with
# nightly-only flags (-Zsanitizer=address, sancov); on a stable toolchain RUSTC_BOOTSTRAP=1
# allows them. The build goes to ~/.cache/modelserver/target-fuzz (override with
# FUZZ_TARGET_DIR). Seeds for crds_validate and operator_render: every example ModelServer as
# JSON. A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
# and keep it as a regression test next to the code it broke.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
seconds=${FUZZ_SECONDS:-30}
tools=${HOME}/.cache/modelserver/tools/cargo-fuzz
cargo_fuzz_version=0.13.2
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/modelserver/target-fuzz}
export RUSTC_BOOTSTRAP=1

if [ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  echo "== installing cargo-fuzz $cargo_fuzz_version into $tools"
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --root "$tools"
fi
export PATH=$tools/bin:$PATH

# Seeds: each example ModelServer (valid and invalid) as one JSON document.
mkdir -p corpus/crds_validate corpus/operator_render
python=$("$root/hack/venv.sh")
"$python" - "$root/examples" corpus/crds_validate corpus/operator_render <<'PY'
import json, pathlib, sys, yaml
examples, outs = pathlib.Path(sys.argv[1]), [pathlib.Path(p) for p in sys.argv[2:]]
for path in sorted(examples.rglob("*.yaml")):
    for i, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d):
        if isinstance(doc, dict) and doc.get("kind") == "ModelServer":
            name = str(path.relative_to(examples)).replace("/", "_")
            for out in outs:
                (out / f"{name}.{i}.json").write_text(json.dumps(doc, sort_keys=True))
PY

# Inputs that once crashed a target (fuzz/regressions/<target>/) are seeds too, so every run
# replays them first; each also has a unit test next to the code it broke.
for dir in regressions/*/; do
  target=$(basename "$dir")
  mkdir -p "corpus/$target"
  cp "$dir"* "corpus/$target/"
done

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
failed=()
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s"
  if ! cargo fuzz run "$target" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1; then
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAIL: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "ok: ${targets[*]}: no crash in ${seconds}s each"
