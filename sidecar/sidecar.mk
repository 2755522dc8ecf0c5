# Sidecar targets (demo, static release binary, the load generator); included by the top-level Makefile.

# The release sidecar is statically linked (glibc, crt-static) so the init container can copy it
# into any model image. Built for an explicit target so its RUSTFLAGS never touch host builds.
SIDECAR_TARGET ?= x86_64-unknown-linux-gnu
SIDECAR_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
SIDECAR_STATIC = $(SIDECAR_TARGET_DIR)/$(SIDECAR_TARGET)/release/modelserver-sidecar
export MODELSERVER_SIDECAR_STATIC = $(abspath $(SIDECAR_STATIC))

# Load generator for the benchmark, installed once from crates.io into the cache.
TOOLS_DIR ?= $(HOME)/.cache/modelserver/tools
OHA_VERSION ?= 1.16.0
OHA = $(TOOLS_DIR)/bin/oha

.PHONY: demo sidecar-static trace-test

trace-test: ## the sidecar's traces in a real Jaeger v1.76.0 (built from its Go module into the cache on first use)
	MODELSERVER_TEST_JAEGER=$$(sidecar/tests/jaeger/build.sh) \
		$(CARGO) test -p modelserver-sidecar --test trace_jaeger -- --ignored --nocapture

sidecar-static: ## build the statically linked release sidecar (runs inside any model image)
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(SIDECAR_TARGET) -p modelserver-sidecar
	@echo "static sidecar: $(SIDECAR_STATIC)"

demo: ## serve the iris example model on localhost:8080 through the sidecar
	$(CARGO) build --quiet -p modelserver-sidecar
	@echo
	@echo "Serving examples/iris (2 workers) on http://localhost:8080, admin on http://localhost:9090. Try:"
	@echo "  curl -s localhost:8080/predict -H 'Content-Type: application/json' -d '{\"instances\": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'"
	@echo "  curl -s localhost:8080/v2/health/ready"
	@echo "  curl -s localhost:9090/status"
	@echo "  curl -s localhost:9090/metrics | grep ^modelserver_"
	@echo "  curl -s -X POST localhost:9090/drain    # what the preStop hook does; or press Ctrl-C"
	@echo
	$(CARGO) run --quiet -p modelserver-sidecar -- serve --bind 127.0.0.1 --workers 2 --drain-delay 0s \
		-- python3 examples/iris/worker.py

$(OHA):
	$(CARGO) install --locked oha --version $(OHA_VERSION) --root $(TOOLS_DIR)

