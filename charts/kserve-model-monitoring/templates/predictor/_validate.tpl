{{/*
Refuses, at render time and with the values to change, predictor settings that KServe's
InferenceService validating webhook (v0.20, pkg/apis/serving/v1beta1/inference_service_validation.go)
would reject at install or upgrade with a terser message. Each case is proven against KServe itself
in tests/k8s/test_kserve.py.
*/}}
{{- define "kmm.predictor.validate" -}}
{{- $p := .Values.predictor -}}
{{- $name := include "kmm.modelName" . -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "InferenceService name %q (modelName, default: the release name) must start with a letter and end with a letter or digit, as KServe requires; set modelName" $name) -}}
{{- end -}}
{{- /* On upgrade (lookup is empty under helm template and --dry-run): KServe refuses to change the
deployment mode it recorded in the InferenceService's status. */ -}}
{{- $live := lookup "serving.kserve.io/v1beta1" "InferenceService" .Release.Namespace $name -}}
{{- $liveMode := dig "status" "deploymentMode" "" $live -}}
{{- $mode := get (dict "RawDeployment" "Standard" "Serverless" "Knative") $p.deploymentMode | default $p.deploymentMode -}}
{{- if and $liveMode (ne $liveMode $mode) -}}
{{- fail (printf "predictor.deploymentMode cannot change from %s to %s on upgrade: KServe refuses to change the mode of an existing InferenceService; uninstall and install again" $liveMode $p.deploymentMode) -}}
{{- end -}}
{{- if gt (int $p.minReplicas) (int $p.maxReplicas) -}}
{{- fail (printf "predictor.minReplicas (%d) must not exceed predictor.maxReplicas (%d)" (int $p.minReplicas) (int $p.maxReplicas)) -}}
{{- end -}}
{{- /* Which autoscaler KServe validates against: Knative's own (KPA) unless the InferenceService asks
Knative for its HPA class; Standard deployments use a HorizontalPodAutoscaler ("hpa", the default
class; "none", "external" and "keda" make KServe ignore or refuse scaleMetric). */ -}}
{{- $annotations := default dict $p.annotations -}}
{{- $knative := has $p.deploymentMode (list "Knative" "Serverless") -}}
{{- $kpa := and $knative (ne (get $annotations "autoscaling.knative.dev/class") "hpa.autoscaling.knative.dev") -}}
{{- $hpa := or (and $knative (not $kpa)) (and (not $knative) (eq (default "hpa" (get $annotations "serving.kserve.io/autoscalerClass")) "hpa")) -}}
{{- if and (not $knative) (eq (get $annotations "serving.kserve.io/autoscalerClass") "keda") -}}
{{- fail "serving.kserve.io/autoscalerClass=keda in predictor.annotations: KServe refuses scaleMetric with KEDA, and this chart always sets it; use autoscalerClass hpa (the default) or external" -}}
{{- end -}}
{{- $resourceMetric := has $p.scaleMetric (list "cpu" "memory") -}}
{{- if and $kpa $resourceMetric -}}
{{- fail (printf "predictor.scaleMetric=%s does not work with predictor.deploymentMode=%s: KServe's Knative autoscaler scales on concurrency or rps; use one of those, or deploymentMode Standard for cpu and memory" $p.scaleMetric $p.deploymentMode) -}}
{{- end -}}
{{- if and $hpa (not $resourceMetric) -}}
{{- fail (printf "predictor.scaleMetric=%s does not work with predictor.deploymentMode=%s: KServe scales it with a HorizontalPodAutoscaler, on cpu or memory only; use one of those, or deploymentMode Knative for concurrency and rps" $p.scaleMetric $p.deploymentMode) -}}
{{- end -}}
{{- end -}}
