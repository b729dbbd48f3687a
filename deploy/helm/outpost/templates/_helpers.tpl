{{- define "outpost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "outpost.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "outpost.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "outpost.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "outpost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outpost.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "outpost.labels" -}}
{{ include "outpost.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* labels of one component: (dict "root" $ "component" "api") */}}
{{- define "outpost.componentSelector" -}}
{{ include "outpost.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "outpost.componentLabels" -}}
{{ include "outpost.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "outpost.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "outpost.fullname" .)) -}}
{{- end -}}

{{- define "outpost.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Redis: what config says, else the trial Redis, else a clear failure */}}
{{- define "outpost.redisHost" -}}
{{- if .Values.config.REDIS_HOST -}}
{{- .Values.config.REDIS_HOST -}}
{{- else if .Values.redis.enabled -}}
{{- printf "%s-redis" (include "outpost.fullname" .) -}}
{{- else if not .Values.config.REDIS_URL -}}
{{- fail "outpost needs a Redis: set config.REDIS_URL (or config.REDIS_HOST), or redis.enabled=true for a trial" -}}
{{- end -}}
{{- end -}}
