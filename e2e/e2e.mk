# Control-plane and end-to-end targets; included by the top-level Makefile.
# The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) and the
# real node's kubelet and kube-proxy are built from pinned Go modules into
# $(HOME)/.cache/modelserver-e2e/<version>/ by e2e/cluster.sh, containerd by e2e/node.sh; see
# e2e/README.md.

E2E_CLUSTER := ./e2e/cluster.sh
# Tests run in parallel, each in its own namespace.
E2E_TEST_THREADS ?= 4
# 1: `make cluster-up` also starts the real node (root).
REAL_NODE ?= 0

.PHONY: cluster-build cluster-up cluster-down cluster-status cluster-images e2e e2e-tools demo-cluster

cluster-build: ## build (or reuse from ~/.cache/modelserver-e2e) the pinned control-plane and node binaries
	$(E2E_CLUSTER) build
	./e2e/node.sh build

cluster-up: ## start a local Kubernetes control plane with kwok nodes (REAL_NODE=1: and a real node)
	$(E2E_CLUSTER) up $(if $(filter 1,$(REAL_NODE)),--real-node)
	@echo "export KUBECONFIG=$$($(E2E_CLUSTER) kubeconfig)"
	@echo "kubectl of the same version: $$($(E2E_CLUSTER) kubectl-path)"

cluster-down: ## stop the local cluster (control plane, real node, registry, demo operator) and remove its state
	$(E2E_CLUSTER) down

cluster-status: ## which components of the local cluster run
	$(E2E_CLUSTER) status

cluster-images: sidecar-static ## push the real images (sidecar, iris, Python base) to the running cluster's registry
	$(E2E_CLUSTER) images

demo-cluster: sidecar-static ## the whole product for real: cluster + real node, images, operator, iris Ready
	./e2e/demo-cluster.sh

# Every Go-built tool of the suite, each cached on first build (cold, about 40 minutes of the two
# cores, KEDA alone 10 to 25): the control plane and the node, the GitOps health checker, the
# Gateway API and KEDA CRDs, KEDA and Prometheus. `make e2e` asks for it first; .ci/run starts it
# niced in the background at its start, so on a cold machine these builds overlap the Rust tests.
e2e-tools: ## build (or reuse) every Go tool `make e2e` needs: control plane, node, KEDA, Prometheus, health checker
	$(E2E_CLUSTER) build
	./e2e/node.sh build
	./e2e/health/build.sh >/dev/null
	./e2e/gateway-api.sh crds >/dev/null
	./e2e/keda/build.sh crds >/dev/null
	./e2e/keda/build.sh >/dev/null
	./hack/chart/tools.sh prometheus >/dev/null

# The suite gets a cluster of its own (MODELSERVER_E2E_CLUSTER=e2e: own state dir and ports), so
# a `make cluster-up` cluster is left alone. The test binaries and the static sidecar are built
# before the cluster starts; the cluster (and its real node) is stopped on any exit, also when
# `up` or the suite fails, and then `node.sh leftovers` fails the run if anything of the node
# (process, mount, link, route, firewall rule, cgroup, changed sysctl) is left on the machine. The images' names reach the tests as MODELSERVER_E2E_<NAME>_IMAGE.
# Every test binary runs even when one fails (--no-fail-fast); RUST_LIB_BACKTRACE=0 keeps anyhow's
# error backtraces out of the report (panics still honour RUST_BACKTRACE).
e2e: sidecar-static e2e-tools ## end-to-end suite on a fresh local cluster with a real node, started and stopped around it
	$(CARGO) build -p modelserver-operator
	$(CARGO) test -p modelserver-e2e --no-run
	MODELSERVER_E2E_HEALTH=$$(./e2e/health/build.sh) || exit 1; export MODELSERVER_E2E_HEALTH; \
	MODELSERVER_E2E_GATEWAY_API_CRDS=$$(./e2e/gateway-api.sh crds) || exit 1; export MODELSERVER_E2E_GATEWAY_API_CRDS; \
	MODELSERVER_E2E_KEDA=$$(./e2e/keda/build.sh) || exit 1; export MODELSERVER_E2E_KEDA; \
	MODELSERVER_E2E_KEDA_CRDS=$$(./e2e/keda/build.sh crds) || exit 1; export MODELSERVER_E2E_KEDA_CRDS; \
	MODELSERVER_E2E_PROMETHEUS=$$(./hack/chart/tools.sh prometheus) || exit 1; export MODELSERVER_E2E_PROMETHEUS; \
	export MODELSERVER_E2E_CLUSTER=e2e; \
	sysctls=$$(./e2e/node.sh sysctls); \
	trap 'rc=$$?; $(E2E_CLUSTER) down; ./e2e/node.sh leftovers "$$sysctls" || rc=1; exit $$rc' EXIT; \
	$(E2E_CLUSTER) up --real-node; \
	images=$$($(E2E_CLUSTER) images); \
	eval "$$(sed 's/^/export MODELSERVER_E2E_/' <<< "$$images")"; \
	MODELSERVER_E2E_KUBECONFIG=$$($(E2E_CLUSTER) kubeconfig); \
	MODELSERVER_E2E_KUBECTL=$$($(E2E_CLUSTER) kubectl-path); \
	export MODELSERVER_E2E_KUBECONFIG MODELSERVER_E2E_KUBECTL; \
	RUST_LIB_BACKTRACE=0 $(CARGO) test -p modelserver-e2e --no-fail-fast -- --include-ignored \
	  --test-threads $(E2E_TEST_THREADS)
