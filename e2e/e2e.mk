# Control-plane and end-to-end targets; included by the top-level Makefile.
# The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) is built
# from pinned Go modules into $(HOME)/.cache/modelserver-e2e/<version>/ by e2e/cluster.sh; see
# e2e/README.md.

E2E_CLUSTER := ./e2e/cluster.sh
# Tests run in parallel, each in its own namespace.
E2E_TEST_THREADS ?= 4

.PHONY: cluster-build cluster-up cluster-down cluster-status e2e

cluster-build: ## build (or reuse from ~/.cache/modelserver-e2e) the pinned control-plane binaries
	$(E2E_CLUSTER) build

cluster-up: ## start a local Kubernetes control plane with kwok nodes (no Docker, no cloud)
	$(E2E_CLUSTER) up
	@echo "export KUBECONFIG=$$($(E2E_CLUSTER) kubeconfig)"
	@echo "kubectl of the same version: $$($(E2E_CLUSTER) kubectl-path)"

cluster-down: ## stop the local control plane and remove its state
	$(E2E_CLUSTER) down

cluster-status: ## which components of the local control plane run
	$(E2E_CLUSTER) status

# The suite gets a cluster of its own (MODELSERVER_E2E_CLUSTER=e2e: own state dir and ports), so
# a `make cluster-up` cluster is left alone. The test binaries are built before the cluster
# starts; the cluster is stopped on any exit, also when `up` or the suite fails. Every test binary
# runs even when one fails (--no-fail-fast); RUST_LIB_BACKTRACE=0 keeps anyhow's error backtraces
# out of the report (panics still honour RUST_BACKTRACE).
e2e: ## end-to-end suite on a fresh local control plane, started and stopped around it
	$(CARGO) build -p modelserver-operator
	$(CARGO) test -p modelserver-e2e --no-run
	export MODELSERVER_E2E_CLUSTER=e2e; \
	trap '$(E2E_CLUSTER) down' EXIT; \
	$(E2E_CLUSTER) up; \
	MODELSERVER_E2E_KUBECONFIG=$$($(E2E_CLUSTER) kubeconfig); \
	MODELSERVER_E2E_KUBECTL=$$($(E2E_CLUSTER) kubectl-path); \
	export MODELSERVER_E2E_KUBECONFIG MODELSERVER_E2E_KUBECTL; \
	RUST_LIB_BACKTRACE=0 $(CARGO) test -p modelserver-e2e --no-fail-fast -- --include-ignored \
	  --test-threads $(E2E_TEST_THREADS)
