{{/*
One alerting rule of templates/prometheusrule.yaml: (dict "root" $ "name" NAME "cfg" VALUES
"expr" PROMQL "summary" TEXT "description" TEXT "runbook" TEXT). VALUES is the alert's entry in
metrics.prometheusRule.alerts (for, severity). The runbook_url is the page docs/alerts.md at
metrics.prometheusRule.runbookBaseUrl, anchor the alert's name in lower case (its section).
*/}}
{{- define "modelserver-operator.alert" -}}
{{- $rule := .root.Values.metrics.prometheusRule -}}
- alert: {{ .name }}
  expr: {{ .expr | quote }}
  for: {{ .cfg.for }}
  labels:
    severity: {{ .cfg.severity }}
    {{- with $rule.additionalAlertLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    summary: {{ .summary | quote }}
    description: {{ .description | quote }}
    runbook: {{ .runbook | quote }}
    {{- with $rule.runbookBaseUrl }}
    runbook_url: {{ printf "%s#%s" . (lower $.name) | quote }}
    {{- end }}
{{- end }}
