#!/usr/bin/env bash
# `make kind-e2e`: the chart in a real cluster, the way users test it. Needs Docker, kind, kubectl,
# helm and ct on PATH, and network (images, KServe's and cert-manager's charts, kube-prometheus-stack).
# Not part of `make test` (which is offline).
#
#   1. builds the three images (make images) and the demo model (make demo-model)
#   2. creates a kind cluster (ci/kind-config.yaml) and loads the images into it
#   3. installs cert-manager and KServe in Standard mode (no Knative needed)
#   4. copies the demo model and reference data into a PVC of the test namespace
#   5. `ct install` of the chart with the REAL kube-prometheus-stack (helm dependency build) and
#      ci/kind-values.yaml; ct runs `helm test`, which checks the drift detector and the predictor answer
#   6. deletes the cluster (KEEP_CLUSTER=1 keeps it for a look around)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

CLUSTER="${KIND_CLUSTER:-kmm-e2e}"
NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0}"
NAMESPACE="${E2E_NAMESPACE:-models}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.17.0}"
IMAGE_REGISTRY="${IMAGE_REGISTRY:-ghcr.io/kserve-model-monitoring}"
IMAGE_TAG="${IMAGE_TAG:-$(awk '/^appVersion:/{gsub(/"/, "", $2); print $2}' charts/kserve-model-monitoring/Chart.yaml)}"

say() { printf '\033[1;34m[kind-e2e]\033[0m %s\n' "$*"; }
for tool in docker kind kubectl helm ct; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required on PATH" >&2; exit 1; }
done

cleanup() {
  if [[ -z "${KEEP_CLUSTER:-}" ]]; then
    say "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" || true
  else
    say "keeping cluster $CLUSTER (kind delete cluster --name $CLUSTER)"
  fi
}

say "1/6 building images ($IMAGE_REGISTRY/*:$IMAGE_TAG) and the demo model"
make images IMAGE_REGISTRY="$IMAGE_REGISTRY" IMAGE_TAG="$IMAGE_TAG"
make demo-model

say "2/6 creating kind cluster $CLUSTER ($NODE_IMAGE)"
kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config ci/kind-config.yaml --wait 120s
trap cleanup EXIT
for image in predictor drift-detector retrainer; do
  kind load docker-image --name "$CLUSTER" "$IMAGE_REGISTRY/$image:$IMAGE_TAG"
done

say "3/6 installing cert-manager $CERT_MANAGER_VERSION and KServe $KSERVE_VERSION (Standard mode)"
helm repo add jetstack https://charts.jetstack.io --force-update
helm upgrade -i cert-manager jetstack/cert-manager -n cert-manager --create-namespace \
  --version "$CERT_MANAGER_VERSION" --set crds.enabled=true --wait
helm upgrade -i kserve-crd oci://ghcr.io/kserve/charts/kserve-crd -n kserve --create-namespace \
  --version "$KSERVE_VERSION" --wait
helm upgrade -i kserve-resources oci://ghcr.io/kserve/charts/kserve-resources -n kserve \
  --version "$KSERVE_VERSION" --set kserve.version="$KSERVE_VERSION" \
  --set kserve.controller.deploymentMode=Standard \
  --set kserve.controller.gateway.disableIngressCreation=true --wait
kubectl -n kserve rollout status deployment/kserve-controller-manager --timeout=300s

say "4/6 copying the demo model and reference into PVC demo-artifacts in namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NAMESPACE" apply -f - <<'YAML'
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: demo-artifacts
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: demo-artifacts-loader
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    fsGroup: 1000
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: loader
      image: busybox:1.37
      command: ["sleep", "3600"]
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
      volumeMounts:
        - name: artifacts
          mountPath: /artifacts
  volumes:
    - name: artifacts
      persistentVolumeClaim:
        claimName: demo-artifacts
YAML
kubectl -n "$NAMESPACE" wait --for=condition=Ready pod/demo-artifacts-loader --timeout=180s
kubectl -n "$NAMESPACE" cp build/demo/model demo-artifacts-loader:/artifacts/model
kubectl -n "$NAMESPACE" cp build/demo/reference.parquet demo-artifacts-loader:/artifacts/reference.parquet
kubectl -n "$NAMESPACE" delete pod demo-artifacts-loader --wait

say "5/6 ct install with the real kube-prometheus-stack and ci/kind-values.yaml (runs helm test)"
# ct installs every ci/*-values.yaml of the chart; the offline scenarios reference storage that does not
# exist in kind, so ct gets a copy of the chart whose ci/ holds the kind scenario only.
work="$(mktemp -d)"
mkdir -p "$work/charts"
cp -r charts/kserve-model-monitoring "$work/charts/"
rm -f "$work/charts/kserve-model-monitoring/ci/"*-values.yaml "$work/charts/kserve-model-monitoring/charts/"*.tgz
cp ci/kind-values.yaml "$work/charts/kserve-model-monitoring/ci/kind-values.yaml"
cp ci/ct.yaml "$work/"
git -C "$work" init -q -b main
(cd "$work" && ct install --config ct.yaml --charts charts/kserve-model-monitoring --namespace "$NAMESPACE" \
  --chart-repos prometheus-community=https://prometheus-community.github.io/helm-charts)
rm -rf "$work"

say "6/6 passed: installed, helm test answered, uninstalled"
