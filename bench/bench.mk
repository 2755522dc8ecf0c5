# Side by side (issue 7): modelserver-sidecar against uvicorn serving the same Python model.
# Included by the top-level Makefile after sidecar/sidecar.mk, whose sidecar-static, SIDECAR_STATIC
# and OHA (oha from crates.io, installed once into ~/.cache/modelserver/tools) it uses.

.PHONY: bench-compare

bench-compare: sidecar-static $(OHA) ## report: the sidecar vs uvicorn --workers 2, same FastAPI iris model (~13 min; docs/benchmarks.md)
	py=$$(./hack/venv.sh); SIDECAR=$(SIDECAR_STATIC) OHA=$(OHA) PYTHON=$$py $$py bench/compare.py

# The same sidecar with symbols (own target dir, so the stripped release build stays as it is).
BENCH_PROFILE_DIR ?= $(SIDECAR_TARGET_DIR)/bench-profile
BENCH_PROFILE_SIDECAR = $(BENCH_PROFILE_DIR)/$(SIDECAR_TARGET)/release/modelserver-sidecar

.PHONY: bench-callgrind
bench-callgrind: $(OHA) ## profile: the sidecar's instructions per request, refused (503) and forwarded (valgrind)
	RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$(BENCH_PROFILE_DIR) \
		CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
		$(CARGO) build --release --target $(SIDECAR_TARGET) -p modelserver-sidecar
	SIDECAR=$(BENCH_PROFILE_SIDECAR) OHA=$(OHA) python3 bench/callgrind.py
