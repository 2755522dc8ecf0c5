# Sidecar targets (demo, static release binary, benchmark); included by the top-level Makefile.
.PHONY: demo
demo: ## serve the iris example model on localhost:8080 through the sidecar
	@echo "demo: not yet wired"; exit 1
