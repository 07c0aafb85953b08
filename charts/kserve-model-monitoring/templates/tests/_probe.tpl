{{/*
A `helm test` pod that GETs a URL (retrying while the target starts) and checks the body.
(dict "context" . "name" "drift-detector" "url" "http://..." "expect" "substring").
The drift detector image runs it: it ships Python, so the tests pull no extra image.
*/}}
{{- define "kmm.testPod" -}}
{{- $ctx := .context -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "kmm.componentName" (dict "context" $ctx "component" (printf "test-%s" .name)) }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "kmm.labels" (dict "context" $ctx "component" "tests") | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  {{- with $ctx.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $ctx.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: probe
      image: {{ include "kmm.image" (dict "context" $ctx "image" $ctx.Values.driftDetector.image) }}
      imagePullPolicy: {{ $ctx.Values.driftDetector.image.pullPolicy }}
      command:
        - python
        - -c
        - |
          import sys, time, urllib.request
          url, expect = sys.argv[1], sys.argv[2]
          for attempt in range(1, 31):
              try:
                  with urllib.request.urlopen(url, timeout=10) as response:
                      body = response.read().decode("utf-8", "replace")
                  if expect in body:
                      print(f"ok: {url} answered with {expect!r}")
                      sys.exit(0)
                  print(f"attempt {attempt}: {url} answered without {expect!r}: {body[:200]}")
              except Exception as err:
                  print(f"attempt {attempt}: {url}: {err}")
              time.sleep(5)
          sys.exit(f"failed: {url} never answered with {expect!r}")
        - {{ .url | quote }}
        - {{ .expect | quote }}
      securityContext:
        {{- toYaml $ctx.Values.containerSecurityContext | nindent 8 }}
      resources:
        {{- toYaml $ctx.Values.tests.resources | nindent 8 }}
      volumeMounts:
        {{- include "kmm.tmpVolumeMount" $ctx | nindent 8 }}
  volumes:
    {{- include "kmm.tmpVolume" $ctx | nindent 4 }}
{{- end -}}
