{{/* Names and labels of the bed's test chart. */}}
{{- define "testapp.name" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- define "testapp.labels" -}}
app.kubernetes.io/name: testapp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "testapp.probes" -}}
readinessProbe:
  httpGet:
    path: /ready
    port: http
  periodSeconds: 5
livenessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 10
{{- end -}}
