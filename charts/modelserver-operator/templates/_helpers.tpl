{{/* Chart name, overridable. */}}
{{- define "modelserver-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: the release name when it already holds the chart name. */}}
{{- define "modelserver-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "modelserver-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of the release carries. */}}
{{- define "modelserver-operator.labels" -}}
helm.sh/chart: {{ include "modelserver-operator.chart" . }}
{{ include "modelserver-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelserver
{{- end }}

{{/* Labels that select the operator pods (immutable in the Deployment selector). */}}
{{- define "modelserver-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelserver-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "modelserver-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelserver-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference: (dict "image" .Values.image "root" .). Digest wins over tag. */}}
{{- define "modelserver-operator.imageRef" -}}
{{- $image := .image }}
{{- $repository := $image.repository }}
{{- with .root.Values.imageRegistry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when the operator runs with --leader-elect. */}}
{{- define "modelserver-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/*
The Lease the operator elects its leader with (the operator's fixed name, in its own namespace).
*/}}
{{- define "modelserver-operator.leaseName" -}}
modelserver-operator
{{- end }}

{{/*
What the operator does with the API, one rule per need. The same rules make the ClusterRole
(all namespaces) or the Role in each watched namespace. Verbs the operator never uses are left
out on purpose: charts/modelserver-operator/rbac-expected.txt is the reviewed list, compared
with what a real API server grants the ServiceAccount (hack/chart/cluster-test.sh).
*/}}
{{- define "modelserver-operator.rules" -}}
# Watch ModelServers (the controller's primary resource). The operator never writes their spec.
- apiGroups: ["modelserver.dev"]
  resources: ["modelservers"]
  verbs: ["get", "list", "watch"]
# Report status (observedGeneration, replicas, Ready/Reconciling/Stalled) on the status
# subresource, with server-side apply (patch) or a replace (update).
- apiGroups: ["modelserver.dev"]
  resources: ["modelservers/status"]
  verbs: ["get", "patch", "update"]
# Children carry a controller ownerReference with blockOwnerDeletion; the
# OwnerReferencesPermissionEnforcement admission plugin requires update on the owner's finalizers.
- apiGroups: ["modelserver.dev"]
  resources: ["modelservers/finalizers"]
  verbs: ["update"]
# The children: server-side apply is a patch (and a create when the object is new); watch
# because the controller owns them and repairs drift; delete when the spec stops asking for an
# autoscaler, a disruption budget or a NetworkPolicy. No update, no deletecollection.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The NetworkPolicy of each ModelServer (ingress only to its public and admin ports): the same
# verbs as the other children; delete when spec.networkPolicy.enabled is false.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The ModelServers' pods (label app.kubernetes.io/managed-by=modelserver-operator), read from a
# watch's cache to explain in the status why they do not serve: a missing Secret, a crash loop,
# an image that cannot be pulled. list and watch only: no get, no write. No rule on Secrets at
# all: a missing one is seen in the pods, so the operator cannot read any Secret.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# spec.route: the HTTPRoute of each ModelServer (Gateway API, optional CRDs), applied, watched
# for the Gateways' verdict (RouteAccepted) and deleted when spec.route goes. Read from the
# watch's cache only: no get.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The Gateways the routes name, read from a watch's cache for the route's URL (listener protocol,
# port and host name). Read only.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways"]
  verbs: ["list", "watch"]
# spec.autoscaling.metric concurrency: the KEDA ScaledObject of each ModelServer (optional CRDs),
# applied, watched and deleted when the ModelServer stops asking for it. KEDA makes the HPA from
# it. Read from the watch's cache only: no get.
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Kubernetes events on ModelServers (kube-runtime's recorder creates, then patches repeats).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
