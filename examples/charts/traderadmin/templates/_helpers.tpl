{{/* The name prefix of every object: fullnameOverride, else the release name. */}}
{{- define "traderadmin.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "traderadmin.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels shared by every object, but the version (Deployments and pods carry their own). */}}
{{- define "traderadmin.baseLabels" -}}
helm.sh/chart: {{ include "traderadmin.chart" . }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trading-system
{{- end -}}

{{/* Labels shared by every object. */}}
{{- define "traderadmin.labels" -}}
{{ include "traderadmin.baseLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "python-orch") */}}
{{- define "traderadmin.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "traderadmin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "traderadmin.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The image of a component: one string holding the whole reference (repository:tag or
repository@sha256:…), as trader-deploy's `images` input sets it.
(dict "root" $ "key" "pythonOrch")
*/}}
{{- define "traderadmin.image" -}}
{{- $ref := index .root.Values.image .key -}}
{{- if not (kindIs "string" $ref) -}}
{{- fail (printf "image.%s must be one string holding the full image reference (e.g. ghcr.io/acme/python-orch:v1.2.0), as trader-deploy's `images` input sets it; got %s" .key (toJson $ref)) -}}
{{- end -}}
{{- if or (not $ref) (regexMatch "\\s" $ref) -}}
{{- fail (printf "image.%s: %q is not an image reference (repository:tag or repository@sha256:…)" .key $ref) -}}
{{- end -}}
{{- $last := regexReplaceAll "^.*/" $ref "" -}}
{{- if not (or (contains ":" $last) (contains "@sha256:" $last)) -}}
{{- fail (printf "image.%s: %q has no tag or digest; deploy an explicit version" .key $ref) -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The ConfigMap's name. */}}
{{- define "traderadmin.configName" -}}
{{- printf "%s-config" (include "traderadmin.fullname" .) -}}
{{- end -}}

{{/*
The components, in order: (list valuesKey objectSuffix). The orchestrator's Service is named
after the release itself; every other object gets its component suffix.
*/}}
{{- define "traderadmin.components" -}}
{{- toJson (list (list "pythonOrch" "python-orch") (list "goScanner" "go-scanner")) -}}
{{- end -}}

{{/* The Service name of a component: (dict "root" $ "key" "pythonOrch" "name" "python-orch") */}}
{{- define "traderadmin.serviceName" -}}
{{- if eq .key "pythonOrch" -}}
{{- include "traderadmin.fullname" .root -}}
{{- else -}}
{{- printf "%s-%s" (include "traderadmin.fullname" .root) .name -}}
{{- end -}}
{{- end -}}

{{/*
The version a component runs, for its app.kubernetes.io/version label: the image's tag, or the
chart's appVersion when the image is pinned by digest. (dict "root" $ "key" "pythonOrch")
*/}}
{{- define "traderadmin.componentVersion" -}}
{{- $ref := include "traderadmin.image" . -}}
{{- $last := regexReplaceAll "^.*/" $ref "" -}}
{{- if and (contains ":" $last) (not (contains "@" $last)) -}}
{{- regexReplaceAll "^[^:]*:" $last "" | trunc 63 | trimSuffix "-" | trimSuffix "." -}}
{{- else -}}
{{- .root.Chart.AppVersion -}}
{{- end -}}
{{- end -}}
