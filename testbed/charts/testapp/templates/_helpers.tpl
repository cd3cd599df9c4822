{{/* Names and labels of the bed's test chart. */}}
{{- define "testapp.name" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- define "testapp.labels" -}}
app.kubernetes.io/name: testapp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{/* The kubelet probes the app's shallow checks (/readyz, /healthz; kwok ignores probes); the
smoke tests ask its own /ready, which the unready-app image answers 503 while /readyz passes. */}}
{{- define "testapp.probes" -}}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 2
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
env:
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}
{{/* Pod spec fields that place the pods: on the real node when .Values.realNode. */}}
{{- define "testapp.placement" -}}
terminationGracePeriodSeconds: 5
{{- if .Values.realNode }}
nodeSelector:
  trader-deploy.test/node: real
tolerations:
- key: trader-deploy.test/node
  operator: Equal
  value: real
  effect: NoSchedule
{{- end }}
{{- end -}}
