{{/*
Blob-storage payload logger (predictor.logger.blob) and the batch drift job (batchDrift) that reads it.
*/}}

{{/*
Name of the Secret holding the logger's storage credentials; empty when none (a cloud identity on the
ServiceAccount instead).
*/}}
{{- define "kmm.blob.secretName" -}}
{{- $c := .Values.predictor.logger.blob.credentials -}}
{{- if $c.existingSecret -}}
{{- $c.existingSecret -}}
{{- else if $c.create -}}
{{- include "kmm.componentName" (dict "context" . "component" "blob-logger") -}}
{{- end -}}
{{- end -}}

{{- define "kmm.blob.serviceAccountName" -}}
{{- include "kmm.serviceAccountName" (dict "context" . "component" "blob-logger" "serviceAccount" .Values.predictor.logger.blob.serviceAccount) -}}
{{- end -}}

{{/*
The storage type KServe's logger is told (parameters.type): the value, else the scheme of the URI.
*/}}
{{- define "kmm.blob.type" -}}
{{- $b := .Values.predictor.logger.blob -}}
{{- default (first (splitList "://" $b.uri)) $b.type -}}
{{- end -}}

{{/*
What --logs reads: the value, else this model's objects under the blob logger's URI (KServe keys them
<uri>/<namespace>/<isvc>/<component>/...).
*/}}
{{- define "kmm.batch.logs" -}}
{{- $b := .Values.predictor.logger.blob -}}
{{- if .Values.batchDrift.logs -}}
{{- .Values.batchDrift.logs -}}
{{- else if and $b.enabled $b.uri -}}
{{- printf "%s/%s/%s/" (trimSuffix "/" $b.uri) .Release.Namespace (include "kmm.modelName" .) -}}
{{- else -}}
{{- fail "batchDrift.logs is required unless predictor.logger.blob is enabled with a uri: the batch drift job needs the logs to read" -}}
{{- end -}}
{{- end -}}

{{- define "kmm.batch.referenceURI" -}}
{{- $uri := default .Values.driftDetector.reference.uri .Values.batchDrift.reference.uri -}}
{{- required "batchDrift.reference.uri (or driftDetector.reference.uri) is required: the batch drift job copies the reference data from it" $uri -}}
{{- end -}}

{{/*
How the job runs: local, spark-submit or operator. `auto` picks the Spark operator when the API server
serves its SparkApplication kind (helm install/upgrade read that from the cluster; helm template only
with --api-versions).
*/}}
{{- define "kmm.batch.launcher" -}}
{{- $d := .Values.batchDrift -}}
{{- if eq $d.engine "local" -}}
local
{{- else if ne $d.spark.launcher "auto" -}}
{{- $d.spark.launcher -}}
{{- else if .Capabilities.APIVersions.Has "sparkoperator.k8s.io/v1beta2/SparkApplication" -}}
operator
{{- else -}}
spark-submit
{{- end -}}
{{- end -}}

{{- define "kmm.batch.sparkImage" -}}
{{- $image := .Values.batchDrift.spark.image -}}
{{- if not $image.repository -}}
{{- fail "batchDrift.spark.image.repository is required with batchDrift.engine=spark: the drift-detector-spark image (images/drift-detector/Dockerfile.spark) or a Spark image whose entrypoint starts executors, with the drift detector package installed" -}}
{{- end -}}
{{- if not (or $image.tag $image.digest) -}}
{{- fail "batchDrift.spark.image.tag (or digest) is required with batchDrift.engine=spark: the chart's appVersion does not name a Spark image" -}}
{{- end -}}
{{- include "kmm.image" (dict "context" . "image" $image) -}}
{{- end -}}

{{/*
Environment for reading the logs: the S3 keys from the logger's Secret (the key names KServe reads), the
endpoint and region. Executors read the objects too, so they get the same list.
*/}}
{{- define "kmm.batch.storageEnv" -}}
{{- $b := .Values.predictor.logger.blob -}}
{{- $secret := include "kmm.blob.secretName" . -}}
- name: HOME
  value: /tmp
{{- if $secret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $b.credentials.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $b.credentials.secretAccessKeyKey }}
{{- end }}
{{- with $b.s3.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $b.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
The Kubernetes API URL Spark schedules executors through (spark-submit's --master and the batch CLI's
--spark-master, which sets the session's master and would otherwise be local[*]).
*/}}
{{- define "kmm.batch.sparkMaster" -}}
{{- default (printf "k8s://https://kubernetes.default.svc.%s:443" .Values.clusterDomain) .Values.batchDrift.spark.master -}}
{{- end -}}

{{/*
Arguments of `drift_detector batch` (after the subcommand).
*/}}
{{- define "kmm.batch.args" -}}
{{- $d := .Values.batchDrift -}}
- batch
- --logs={{ include "kmm.batch.logs" . }}
- --reference=/var/lib/drift-batch/reference/{{ base (include "kmm.batch.referenceURI" .) }}
- --model-name={{ include "kmm.modelName" . }}
- --window-size={{ default .Values.driftDetector.windowSize $d.windowSize }}
- --engine={{ $d.engine }}
{{- if eq $d.engine "spark" }}
- --spark-master={{ include "kmm.batch.sparkMaster" . }}
{{- end }}
- --out={{ $d.output.path }}
{{- if .Values.driftDetector.enabled }}
- --config=/etc/drift-detector/config.yaml
{{- end }}
{{- range $d.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
Spark settings of both launchers: the image, the executors, no executor PVCs (so the driver needs no
access to claims).
*/}}
{{- define "kmm.batch.sparkConf" -}}
{{- $s := .Values.batchDrift.spark -}}
{{- $conf := dict
  "spark.kubernetes.namespace" .Release.Namespace
  "spark.kubernetes.container.image" (include "kmm.batch.sparkImage" .)
  "spark.kubernetes.container.image.pullPolicy" $s.image.pullPolicy
  "spark.kubernetes.driver.ownPersistentVolumeClaim" "false"
  "spark.kubernetes.driver.reusePersistentVolumeClaim" "false"
-}}
{{- range $key, $value := $s.conf -}}
{{- $_ := set $conf $key (toString $value) -}}
{{- end -}}
{{- toYaml $conf -}}
{{- end -}}

{{/*
Volumes of the job pod (or the operator's driver): /tmp, the reference copy, the results, the launcher
and the drift detector's config file.
*/}}
{{- define "kmm.batch.volumes" -}}
{{- $d := .Values.batchDrift -}}
{{ include "kmm.tmpVolume" . }}
- name: reference
  emptyDir:
    sizeLimit: {{ .Values.driftDetector.reference.sizeLimit }}
- name: out
  {{- if $d.output.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (include "kmm.componentName" (dict "context" . "component" "drift-batch-out")) $d.output.persistence.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- if ne (include "kmm.batch.launcher" .) "local" }}
- name: launcher
  configMap:
    name: {{ include "kmm.componentName" (dict "context" . "component" "drift-batch") }}
{{- end }}
{{- if .Values.driftDetector.enabled }}
- name: config
  configMap:
    name: {{ include "kmm.componentName" (dict "context" . "component" "drift-detector") }}
{{- end }}
{{- with $d.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kmm.batch.volumeMounts" -}}
{{- $d := .Values.batchDrift -}}
{{ include "kmm.tmpVolumeMount" . }}
- name: reference
  mountPath: /var/lib/drift-batch/reference
  readOnly: true
- name: out
  mountPath: {{ $d.output.path }}
{{- if ne (include "kmm.batch.launcher" .) "local" }}
- name: launcher
  mountPath: /etc/drift-batch
  readOnly: true
{{- end }}
{{- if .Values.driftDetector.enabled }}
- name: config
  mountPath: /etc/drift-detector
  readOnly: true
{{- end }}
{{- with $d.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The init container copying the reference data (KServe's storage initializer, as for the drift detector).
*/}}
{{- define "kmm.batch.fetchReference" -}}
{{- $r := .Values.driftDetector.reference -}}
- name: fetch-reference
  image: {{ include "kmm.image" (dict "context" . "image" $r.initImage) }}
  imagePullPolicy: {{ $r.initImage.pullPolicy }}
  args:
    - {{ include "kmm.batch.referenceURI" . | quote }}
    - /var/lib/drift-batch/reference
  env:
    - name: HOME
      value: /tmp
    {{- with $r.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  securityContext:
    {{- include "kmm.batch.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml $r.resources | nindent 4 }}
  volumeMounts:
    - name: reference
      mountPath: /var/lib/drift-batch/reference
    {{- include "kmm.tmpVolumeMount" . | nindent 4 }}
{{- end -}}

{{- define "kmm.batch.podSecurityContext" -}}
{{- include "kmm.securityContext" (dict "base" .Values.podSecurityContext "override" .Values.batchDrift.podSecurityContext) -}}
{{- end -}}

{{- define "kmm.batch.containerSecurityContext" -}}
{{- include "kmm.securityContext" (dict "base" .Values.containerSecurityContext "override" .Values.batchDrift.containerSecurityContext) -}}
{{- end -}}

{{/*
Scheduling of the job pod and of Spark's executors.
*/}}
{{- define "kmm.batch.scheduling" -}}
{{- $d := .Values.batchDrift -}}
{{- with $d.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $d.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $d.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $d.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Validation of the blob logger and batch values that the schema cannot express.
*/}}
{{- define "kmm.batch.validate" -}}
{{- $b := .Values.predictor.logger.blob -}}
{{- if $b.enabled -}}
{{- if not .Values.predictor.logger.enabled -}}
{{- fail "predictor.logger.blob.enabled needs predictor.logger.enabled: the blob-storage logger is KServe's payload logger writing to storage" -}}
{{- end -}}
{{- if not $b.uri -}}
{{- fail "predictor.logger.blob.uri is required with the blob logger: s3://, gs:// or abfs:// bucket and prefix" -}}
{{- end -}}
{{- if and $b.credentials.create (or (not $b.credentials.accessKeyId) (not $b.credentials.secretAccessKey)) -}}
{{- fail "predictor.logger.blob.credentials.create needs accessKeyId and secretAccessKey (or use existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
