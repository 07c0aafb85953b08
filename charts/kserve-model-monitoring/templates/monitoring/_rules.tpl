{{/*
Helpers of the PrometheusRule. One release monitors one InferenceService, so every expression is
scoped to that model's series; many releases can then share one Prometheus without duplicate alerts.
*/}}

{{/* PromQL label matchers every model expression uses. */}}
{{- define "kmm.rules.selector" -}}
{{- if .Values.prometheusRule.seriesSelector -}}
{{- .Values.prometheusRule.seriesSelector -}}
{{- else -}}
{{- printf "namespace=%q, model_name=%q" .Release.Namespace (include "kmm.modelName" .) -}}
{{- end -}}
{{- end -}}

{{/*
One alert's effective settings: the values override merged over the defaults given here.
Usage: include "kmm.rules.config" (dict "root" . "name" "KServeModelX" "defaults" (dict "for" "10m" ...)) | fromYaml
*/}}
{{- define "kmm.rules.config" -}}
{{- $override := dig .name dict (.root.Values.prometheusRule.rules | default dict) -}}
{{- $defaults := merge (dict "enabled" true "labels" dict) .defaults -}}
{{- toYaml (mergeOverwrite (deepCopy $defaults) (deepCopy $override)) -}}
{{- end -}}

{{/*
Labels and annotations of one alert: (dict "root" . "name" "KServeModelX" "cfg" $cfg "summary" "..." "description" "...").
*/}}
{{- define "kmm.rules.meta" -}}
{{- $p := .root.Values.prometheusRule -}}
for: {{ .cfg.for }}
{{- with .cfg.keepFiringFor }}
keep_firing_for: {{ . }}
{{- end }}
labels:
  severity: {{ .cfg.severity }}
  {{- with $p.additionalRuleLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .cfg.labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- /* chart-wide extras, then this alert's own, win over the chart's summary, description and runbook_url */}}
{{- $annotations := dict "summary" .summary "description" .description "runbook_url" (printf "%s/%s.md" (trimSuffix "/" $p.runbookBaseUrl) .name) }}
{{- $annotations = mergeOverwrite $annotations (deepCopy ($p.additionalRuleAnnotations | default dict)) (deepCopy (.cfg.annotations | default dict)) }}
annotations:
  {{- range $key, $value := $annotations }}
  {{ $key }}: {{ $value | quote }}
  {{- end }}
{{- end -}}

{{/*
job_name regex of this model's retrain Jobs, mirroring the retrain controller's naming:
<prefix>-<model as a DNS-1123 fragment, cut to fit 63 characters>-<10 hex digits>.
*/}}
{{- define "kmm.rules.retrainJobRegex" -}}
{{- $prefix := .Values.retrainer.job.namePrefix -}}
{{- $room := int (sub 51 (len $prefix)) -}}
{{- $model := regexReplaceAll "[^a-z0-9-]+" (include "kmm.modelName" . | lower) "-" | trimAll "-" | trunc $room | trimAll "-" -}}
{{- if $model -}}
{{- printf "%s-%s-[0-9a-f]{10}" $prefix $model -}}
{{- else -}}
{{- printf "%s-[0-9a-f]{10}" $prefix -}}
{{- end -}}
{{- end -}}
