#!/usr/bin/env bash
# Builds an offline-renderable copy of the umbrella chart: copies charts/kserve-model-monitoring to
# DEST and packages the kube-prometheus-stack STAND-IN (ci/standin/kube-prometheus-stack plus the
# prometheus-operator CRDs from the Go module cache) into DEST/kserve-model-monitoring/charts/.
# `helm dependency build` needs the prometheus-community repository, which is not reachable offline;
# users with network get the real chart instead. Prints the path of the prepared chart.
#
# usage: ci/standin/prepare.sh DEST
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:?usage: prepare.sh DEST}"
CHART_SRC="$REPO/charts/kserve-model-monitoring"
STANDIN_SRC="$REPO/ci/standin/kube-prometheus-stack"
GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE 2>/dev/null || echo /root/go/pkg/mod)}"
PO_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CRD_DIR="$GOMODCACHE/github.com/prometheus-operator/prometheus-operator@$PO_VERSION/example/prometheus-operator-crd"
HELM="${HELM:-$(command -v helm || echo "$REPO/.tools/bin/helm")}"

[[ -d "$CRD_DIR" ]] || { echo "prepare.sh: prometheus-operator CRDs not found at $CRD_DIR (run: go mod download github.com/prometheus-operator/prometheus-operator@$PO_VERSION)" >&2; exit 1; }

# The stand-in must carry the exact name and version the umbrella chart pins.
want="$(awk '/^- name: kube-prometheus-stack/{f=1} f&&/version:/{print $2; exit}' "$CHART_SRC/Chart.lock")"
have="$(awk '/^version:/{print $2}' "$STANDIN_SRC/Chart.yaml")"
[[ "$want" == "$have" ]] || { echo "prepare.sh: stand-in version $have differs from Chart.lock's $want" >&2; exit 1; }

mkdir -p "$DEST"
rm -rf "$DEST/kserve-model-monitoring" "$DEST/standin-src"
cp -r "$CHART_SRC" "$DEST/kserve-model-monitoring"
rm -rf "$DEST/kserve-model-monitoring/charts"
mkdir -p "$DEST/kserve-model-monitoring/charts" "$DEST/standin-src"
cp -r "$STANDIN_SRC" "$DEST/standin-src/kube-prometheus-stack"
mkdir -p "$DEST/standin-src/kube-prometheus-stack/crds"
cp "$CRD_DIR"/monitoring.coreos.com_*.yaml "$DEST/standin-src/kube-prometheus-stack/crds/"
"$HELM" package "$DEST/standin-src/kube-prometheus-stack" -d "$DEST/kserve-model-monitoring/charts" >/dev/null
echo "$DEST/kserve-model-monitoring"
