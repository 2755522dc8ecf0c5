#!/usr/bin/env bash
# Writes docs/argocd/argocd-cm.yaml, the argocd-cm entry that installs docs/argocd/health.lua as
# the health check of ModelServers. hack/chart/health-test.sh fails when the two differ.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
{
  cat <<'HEAD'
# Argo CD health check for ModelServers: merge into Argo CD's argocd-cm ConfigMap, e.g.
#   kubectl -n argocd patch configmap argocd-cm --patch-file docs/argocd/argocd-cm.yaml
# Generated from docs/argocd/health.lua by hack/chart/gen-argocd-cm.sh; do not edit by hand.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
  resource.customizations.health.modelserver.dev_ModelServer: |
HEAD
  sed 's/^\(.\)/    \1/' docs/argocd/health.lua
} > docs/argocd/argocd-cm.yaml
