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
{{- toYaml $config }}
{{- end -}}

{{/*
Namespace of the training Jobs (and of the Role that lets the controller create them).
*/}}
{{- define "kmm.retrainer.namespace" -}}
{{- default .Release.Namespace .Values.retrainer.trainingNamespace -}}
{{- end -}}
