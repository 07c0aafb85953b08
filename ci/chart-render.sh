#!/usr/bin/env bash
# Prints the chart's render to stdout: `make chart-render [VALUES=file]`.
# Offline: kube-prometheus-stack is replaced by a local STAND-IN that carries only the
# prometheus-operator CRDs (ci/standin/); with network, `helm dependency build` gets the real chart.
# The render starts from the chart's ci/default-values.yaml (its one required value, a storageUri);
# the VALUES files come after it and override it.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$REPO/.tools/bin:$PATH"
export HELM_CACHE_HOME="${HELM_CACHE_HOME:-$REPO/.tools/helm/cache}"
export HELM_CONFIG_HOME="${HELM_CONFIG_HOME:-$REPO/.tools/helm/config}"
export HELM_DATA_HOME="${HELM_DATA_HOME:-$REPO/.tools/helm/data}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chart="$("$REPO/ci/standin/prepare.sh" "$work")"
args=(--values "$REPO/charts/kserve-model-monitoring/ci/default-values.yaml")
for f in "$@"; do args+=(--values "$(realpath "$f")"); done
echo "# chart-render: kube-prometheus-stack is the OFFLINE STAND-IN (prometheus-operator CRDs only)" >&2
echo "# chart-render: values: charts/kserve-model-monitoring/ci/default-values.yaml${*:+ then $*}" >&2
helm template kmm "$chart" --namespace models --kube-version "${KUBE_VERSION:-1.31.0}" "${args[@]}"
