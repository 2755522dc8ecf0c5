# Every benchmark (reports, never tests): the scripts live next to this file. Included by the
# top-level Makefile after sidecar/sidecar.mk, whose sidecar-static, SIDECAR_STATIC and OHA (oha
# from crates.io, installed once into ~/.cache/modelserver/tools) it uses.

.PHONY: bench-sidecar bench-operator bench-compare

bench-sidecar: sidecar-static $(OHA) ## report: throughput, latency and RSS through the sidecar vs. straight to the worker
	$(CARGO) build --quiet --release --example trivial_worker -p modelserver-sidecar
	SIDECAR=$(SIDECAR_STATIC) WORKER=$(SIDECAR_TARGET_DIR)/release/examples/trivial_worker OHA=$(OHA) \
		./bench/sidecar.sh

bench-operator: ## report: N ModelServers (default 500) on a local control plane: time to Ready, API requests, RSS, writes at rest
	$(CARGO) build --release -p modelserver-operator
	./bench/operator.sh

# Side by side: modelserver-sidecar against uvicorn serving the same Python model.

bench-compare: sidecar-static $(OHA) bench-debian-tools ## report: the sidecar vs uvicorn --workers 2, same FastAPI iris model (~13 min; docs/benchmarks.md)
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

# The sidecar against nginx, HAProxy and Knative's queue-proxy, same origin, one run (issue: the
# proxies comparison). nginx, haproxy and wrk come from Debian (installed with apt-get when
# missing); queue-proxy is built once with `go install` into the tools cache.
QUEUE_PROXY_VERSION ?= v0.48.0
QUEUE_PROXY = $(TOOLS_DIR)/queue-proxy-$(QUEUE_PROXY_VERSION)/queue

$(QUEUE_PROXY):
	GOBIN=$(dir $(QUEUE_PROXY)) go install knative.dev/serving/cmd/queue@$(QUEUE_PROXY_VERSION)

.PHONY: bench-debian-tools bench-proxies-tools bench-proxies
bench-debian-tools: ## nginx, HAProxy and wrk from Debian, when missing
	@missing=""; for t in nginx:nginx-light haproxy:haproxy wrk:wrk; do \
		command -v $${t%%:*} > /dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

bench-proxies-tools: $(QUEUE_PROXY) bench-debian-tools

bench-proxies: sidecar-static bench-proxies-tools ## report: the sidecar vs nginx, HAProxy, queue-proxy (ROUNDS=3 SECONDS=8, ~12 min; docs/benchmarks.md)
	SIDECAR=$(SIDECAR_STATIC) QUEUE_PROXY=$(QUEUE_PROXY) python3 bench/proxies.py
