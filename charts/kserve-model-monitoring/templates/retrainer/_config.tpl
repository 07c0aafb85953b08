{{/*
The retrain controller's config file (camelCase keys, see images/retrainer): the decision policy
from the values, the Prometheus address and the training Job template.
*/}}
{{- define "kmm.retrainer.config" -}}
{{- $r := .Values.retrainer -}}
{{- $config := dict
  "prometheus" (dict
    "url" (include "kmm.prometheusURL" .)
    "bearerTokenFile" $r.prometheus.bearerTokenFile
    "caFile" $r.prometheus.caFile
    "insecureSkipVerify" $r.prometheus.insecureSkipVerify
    "timeout" $r.prometheus.timeout)
  "threshold" $r.threshold
  "sustainedFor" $r.sustainedFor
  "evaluationStep" $r.evaluationStep
  "minCoverage" $r.minCoverage
  "cooldown" $r.cooldown
  "maxConcurrent" $r.maxConcurrent
  "trainingNamespace" (include "kmm.retrainer.namespace" .)
  "release" .Release.Name
  "job" (mustDeepCopy $r.job)
-}}
{{- with $r.query }}
{{- $_ := set $config "query" . }}
{{- end }}
{{- if $r.driftReportUrl }}
{{- $_ := set $config "driftReportUrl" $r.driftReportUrl }}
{{- else if .Values.driftDetector.enabled }}
{{- $_ := set $config "driftReportUrl" (printf "%s/api/v1/drift" (include "kmm.driftDetectorURL" .)) }}
{{- end }}
{{- $_ := required "retrainer.job.image is required when retrainer.enabled=true: the training image the retrain Job runs" $r.job.image }}
{{- $cooldown := include "kmm.durationSeconds" $r.cooldown | float64 }}
{{- if and (not (kindIs "invalid" $r.job.ttlSecondsAfterFinished)) (lt (float64 $r.job.ttlSecondsAfterFinished) $cooldown) }}
{{- fail (printf "retrainer.job.ttlSecondsAfterFinished (%v) must be at least retrainer.cooldown (%s = %.0fs): the cooldown guard reads finished Jobs" $r.job.ttlSecondsAfterFinished $r.cooldown $cooldown) }}
{{- end }}
{{- toYaml $config }}
{{- end -}}

{{/*
Seconds in a duration such as 90s, 15m, 1h30m or 2d (the retrain controller's format).
*/}}
{{- define "kmm.durationSeconds" -}}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 "w" 604800.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(ms|s|m|h|d|w)" (toString .) -1 -}}
{{- $number := regexFind "^[0-9]+" . | float64 -}}
{{- $total = addf $total (mulf $number (index $units (trimPrefix (regexFind "^[0-9]+" .) .))) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
Namespace of the training Jobs (and of the Role that lets the controller create them).
*/}}
{{- define "kmm.retrainer.namespace" -}}
{{- default .Release.Namespace .Values.retrainer.trainingNamespace -}}
{{- end -}}
