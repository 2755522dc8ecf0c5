# Helm chart, install bundle, Argo CD health check and container images; included by the
# top-level Makefile (`include charts/chart.mk`). Tools (helm, crane, promtool, prometheus: built
# from their Go modules; Lua: Debian's lua5.4/lua5.1) are installed on first use by
# hack/chart/tools.sh into $(HOME)/.cache/modelserver/tools. See docs/install.md.

.PHONY: chart-tools chart-generate chart-lint chart-prometheus-test chart-cluster-test images operator-static

chart-tools: ## install the pinned helm, crane and promtool (go install), the Prometheus Operator's CRDs (go mod download) and Lua (apt) into the cache
	./hack/chart/tools.sh all

chart-generate: ## regenerate the chart's CRD copy, deploy/install.yaml and docs/argocd/argocd-cm.yaml
	./hack/chart/sync-crd.sh
	./hack/chart/gen-install.sh
	./hack/chart/gen-argocd-cm.sh

chart-lint: ## helm lint --strict, strict schema validation of every render, drift checks, health.lua tests
	./hack/chart/lint.sh

chart-prometheus-test: ## the dashboard's queries and the alerts on a real Prometheus (built once from its Go module) scraping the real sidecar, on loopback
	./hack/chart/prometheus-test.sh

chart-cluster-test: ## install, upgrade and uninstall the chart and install.yaml on a real API server; RBAC as granted
	./hack/chart/cluster-test.sh

operator-static: ## static release build of modelserver-operator (target/x86_64-unknown-linux-gnu/release)
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target x86_64-unknown-linux-gnu \
		-p modelserver-operator --bin modelserver-operator

# sidecar-static is in sidecar/sidecar.mk; both land in $(CARGO_TARGET_DIR or target)/x86_64-unknown-linux-gnu/release,
# where images/build.sh looks for them (OPERATOR_BIN / SIDECAR_BIN override).
# With a local cluster's real node up (make cluster-up REAL_NODE=1), the images also go to its
# registry, where the node pulls them (e2e/cluster.sh images prints their names).
images: operator-static sidecar-static ## build the operator and sidecar OCI images (no Docker) and check them; load them into a running real node
	./images/build.sh
	@if [ -f "$$(dirname "$$($(E2E_CLUSTER) kubeconfig 2>/dev/null || echo /nonexistent)")/registry/registry.address" ]; then \
	  $(E2E_CLUSTER) images; \
	fi
