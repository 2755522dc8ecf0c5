# ModelServer operator and serving sidecar.
# `make demo` serves the example model locally; `make test` runs every test that needs no cluster;
# `make e2e` runs the end-to-end suite on a real local control plane.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
# Python with the pinned test tools (kubernetes-validate, check-jsonschema, fastapi, uvicorn),
# created on first use. Only the targets that run the tests ask for it, so `make help` or
# `make crds` never create (or pip install into) a virtualenv.
test: export MODELSERVER_TEST_PYTHON = $(shell ./hack/venv.sh)

.PHONY: all build test lint fmt crds golden render help bench bench-operator fuzz
all: build

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build every crate
	$(CARGO) build --workspace --all-targets

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

crds: ## regenerate crds/modelserver.dev_modelservers.yaml from the Rust types
	$(CARGO) run --quiet -p modelserver-crds --features crdgen --bin crdgen > crds/modelserver.dev_modelservers.yaml

golden: ## regenerate the golden render output of every example under tests/golden
	UPDATE_GOLDEN=1 $(CARGO) test --quiet -p modelserver-tests --test golden

render: ## render an example: make render FILE=examples/iris/modelserver.yaml
	$(CARGO) run --quiet -p modelserver-operator -- render -f $(FILE)

test: lint sidecar-static chart-lint trace-test ## everything that needs no cluster: lint, unit, process, schema and chart tests
	$(CARGO) test --workspace --all-targets
	./hack/validate-examples.sh

fuzz: ## run every fuzz target in fuzz/ for FUZZ_SECONDS each (default 30); installs cargo-fuzz into the cache
	./fuzz/run.sh

bench: bench-sidecar bench-proxies bench-compare bench-operator ## every benchmark, one after the other (reports, never tests; run on a quiet machine)


include sidecar/sidecar.mk
include e2e/e2e.mk
include charts/chart.mk
include bench/bench.mk
