{{- define "callintent.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callintent.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "callintent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "callintent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "callintent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "callintent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "callintent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "callintent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* One numeric serve.yaml key of .Values.config (rounded up), required: the drain and the HPA are sized from it. */}}
{{- define "callintent.configSeconds" -}}
{{- $value := index .root.Values.config .key -}}
{{- if kindIs "invalid" $value -}}
{{- fail (printf "config.%s must be set: the chart sizes the pod's drain and autoscaling from it" .key) -}}
{{- end -}}
{{- ceil $value | int -}}
{{- end -}}

{{/* Longest the preStop hook waits for open calls to end by themselves: the longest call plus its idle timeout. */}}
{{- define "callintent.drainWaitSeconds" -}}
{{- add (include "callintent.configSeconds" (dict "root" . "key" "limits.max_audio_seconds")) (include "callintent.configSeconds" (dict "root" . "key" "limits.idle_timeout_seconds")) -}}
{{- end -}}

{{/* preStop wait + SIGTERM drain of the calls left + the call log's queue + margin. */}}
{{- define "callintent.terminationGraceSeconds" -}}
{{- add (include "callintent.drainWaitSeconds" .) (include "callintent.configSeconds" (dict "root" . "key" "limits.drain_seconds")) (include "callintent.configSeconds" (dict "root" . "key" "call_log.drain_seconds")) .Values.drain.marginSeconds -}}
{{- end -}}
