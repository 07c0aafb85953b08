{{/*
Chart name, truncated to 63 characters (the DNS-1123 label limit).
*/}}
{{- define "kmm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name: the prefix of every object name. Uses the release name alone when it
already contains the chart name, so `helm install kserve-model-monitoring .` does not stutter.
*/}}
{{- define "kmm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name of one component's objects: (dict "context" . "component" "drift-detector").
*/}}
{{- define "kmm.componentName" -}}
{{- printf "%s-%s" (include "kmm.fullname" .context) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Chart label value: name-version.
*/}}
{{- define "kmm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels, stable across upgrades: (dict "context" . "component" "drift-detector").
*/}}
{{- define "kmm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kmm.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/*
Common labels on every object: (dict "context" . "component" "drift-detector").
*/}}
{{- define "kmm.labels" -}}
helm.sh/chart: {{ include "kmm.chart" .context }}
{{ include "kmm.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: {{ include "kmm.name" .context }}
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Labels of a pod template: (dict "context" . "component" "drift-detector" "image" .Values.driftDetector.image).
No chart version: a pod template that changes restarts the pod, so a chart bump alone must not change
it. The version is the image tag the pod runs.
*/}}
{{- define "kmm.podLabels" -}}
{{ include "kmm.selectorLabels" . }}
app.kubernetes.io/version: {{ default .context.Chart.AppVersion .image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: {{ include "kmm.name" .context }}
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Name of the monitored InferenceService: the `model_name` label of every series.
*/}}
{{- define "kmm.modelName" -}}
{{- default .Release.Name .Values.modelName | trunc 45 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels that let Prometheus select the chart's ServiceMonitor, PodMonitor and PrometheusRule:
kube-prometheus-stack's default selectors match `release: <its release name>`.
*/}}
{{- define "kmm.prometheusSelectorLabels" -}}
release: {{ default .Release.Name .Values.monitoring.releaseLabel | quote }}
{{- end -}}

{{/*
Image reference: (dict "context" . "image" .Values.driftDetector.image); the tag defaults to appVersion.
`global.imageRegistry` replaces the repository's registry (its first part when that has a dot or a
port, or is localhost; Docker Hub names have none, so the mirror goes in front). A digest pins it.
*/}}
{{- define "kmm.image" -}}
{{- $repository := .image.repository -}}
{{- with (.context.Values.global).imageRegistry -}}
{{- $parts := splitList "/" $repository -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq "localhost" $first)) -}}
{{- $parts = rest $parts -}}
{{- end -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) (join "/" $parts) -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .context.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
ServiceAccount name of a component: (dict "context" . "component" "drift-detector" "serviceAccount" .Values.driftDetector.serviceAccount).
*/}}
{{- define "kmm.serviceAccountName" -}}
{{- if .serviceAccount.create -}}
{{- default (include "kmm.componentName" .) .serviceAccount.name -}}
{{- else -}}
{{- default "default" .serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Fully qualified name of a Service in the release namespace: (dict "context" . "service" "name").
Fully qualified, since the payload logger's agent resolves it from the predictor pod, which may
use another search path; the cluster's DNS domain is `clusterDomain`.
*/}}
{{- define "kmm.serviceHost" -}}
{{- printf "%s.%s.svc.%s" .service .context.Release.Namespace .context.Values.clusterDomain -}}
{{- end -}}

{{/*
In-cluster base URL of the drift detector Service (no trailing slash).
*/}}
{{- define "kmm.driftDetectorURL" -}}
{{- printf "http://%s:%v" (include "kmm.serviceHost" (dict "context" . "service" (include "kmm.componentName" (dict "context" . "component" "drift-detector")))) .Values.driftDetector.service.port -}}
{{- end -}}

{{/*
Payload logger sink: the blob logger's bucket and prefix, the configured URL, else the drift detector
Service (CloudEvents go to `POST /`).
*/}}
{{- define "kmm.loggerURL" -}}
{{- if .Values.predictor.logger.blob.enabled -}}
{{- required "predictor.logger.blob.uri is required with the blob logger: s3://, gs:// or abfs:// bucket and prefix" .Values.predictor.logger.blob.uri -}}
{{- else if .Values.predictor.logger.url -}}
{{- .Values.predictor.logger.url -}}
{{- else if .Values.driftDetector.enabled -}}
{{- printf "%s/" (include "kmm.driftDetectorURL" .) -}}
{{- else -}}
{{- fail "predictor.logger.url is required when predictor.logger.enabled=true and driftDetector.enabled=false" -}}
{{- end -}}
{{- end -}}

{{/*
Prometheus URL for the retrain controller: the configured one, else the bundled kube-prometheus-stack
Prometheus Service. kube-prometheus-stack names it `<fullname>-prometheus` where its fullname is the
release name plus `-kube-prometheus-stack` (unless the release name contains it), cut to 26 characters.
*/}}
{{- define "kmm.prometheusURL" -}}
{{- $kps := index .Values "kube-prometheus-stack" -}}
{{- if .Values.retrainer.prometheus.url -}}
{{- .Values.retrainer.prometheus.url -}}
{{- else if $kps.enabled -}}
{{- $fullname := "" -}}
{{- if $kps.fullnameOverride -}}
{{- $fullname = $kps.fullnameOverride | trunc 26 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "kube-prometheus-stack" $kps.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- $fullname = .Release.Name | trunc 26 | trimSuffix "-" -}}
{{- else -}}
{{- $fullname = printf "%s-%s" .Release.Name $name | trunc 26 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- printf "http://%s:9090" (include "kmm.serviceHost" (dict "context" . "service" (printf "%s-prometheus" $fullname))) -}}
{{- else -}}
{{- fail "retrainer.prometheus.url is required when kube-prometheus-stack.enabled=false" -}}
{{- end -}}
{{- end -}}

{{/*
The /tmp emptyDir that every read-only-root container gets.
*/}}
{{- define "kmm.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{- define "kmm.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/*
Kinds of the prometheus-operator objects this release renders (a JSON list): they need the
monitoring.coreos.com CRDs in the cluster. Gated by values flags, never by .Capabilities, since the
CRDs may arrive in the same release (the bundled kube-prometheus-stack).
*/}}
{{- define "kmm.operatorKinds" -}}
{{- $kinds := list -}}
{{- if .Values.predictor.metrics.podMonitor.enabled -}}
{{- $kinds = append $kinds "PodMonitor" -}}
{{- end -}}
{{- if and .Values.driftDetector.enabled .Values.driftDetector.metrics.serviceMonitor.enabled -}}
{{- $kinds = append $kinds "ServiceMonitor" -}}
{{- end -}}
{{- if .Values.prometheusRule.enabled -}}
{{- $kinds = append $kinds "PrometheusRule" -}}
{{- end -}}
{{- toJson $kinds -}}
{{- end -}}

{{/*
A security context: (dict "base" .Values.podSecurityContext "override" .Values.driftDetector.podSecurityContext).
The component's keys win; a key it sets to null is dropped (OpenShift assigns its own uid).
*/}}
{{- define "kmm.securityContext" -}}
{{- $merged := deepCopy .base -}}
{{- range $key, $value := .override -}}
{{- if kindIs "invalid" $value -}}
{{- $_ := unset $merged $key -}}
{{- else -}}
{{- $_ := set $merged $key $value -}}
{{- end -}}
{{- end -}}
{{- toYaml $merged -}}
{{- end -}}
