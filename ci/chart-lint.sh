#!/usr/bin/env bash
# `make chart-lint`: helm lint --strict and ct lint over every charts/*/ci/*-values.yaml scenario,
# offline. kube-prometheus-stack cannot be fetched without network, so the chart is linted from a
# temporary copy whose charts/ holds the local STAND-IN (ci/standin/: prometheus-operator CRDs only)
# and ct runs with --skip-helm-dependencies. With network, `make kind-e2e` uses the real chart.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$REPO/.tools/bin:$REPO/.venv/bin:$PATH"   # helm, ct; yamllint and yamale for ct
export HELM_CACHE_HOME="${HELM_CACHE_HOME:-$REPO/.tools/helm/cache}"
export HELM_CONFIG_HOME="${HELM_CONFIG_HOME:-$REPO/.tools/helm/config}"
export HELM_DATA_HOME="${HELM_DATA_HOME:-$REPO/.tools/helm/data}"
KUBE_VERSION="${KUBE_VERSION:-1.31.0}"
GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE 2>/dev/null || echo /root/go/pkg/mod)}"
CT_ETC="$GOMODCACHE/github.com/helm/chart-testing/v3@${CHART_TESTING_VERSION:-v3.14.0}/etc"

for tool in helm ct yamllint yamale; do
  command -v "$tool" >/dev/null || { echo "chart-lint: $tool not found (run: make setup)" >&2; exit 1; }
done
[[ -f "$CT_ETC/chart_schema.yaml" ]] || { echo "chart-lint: ct's chart_schema.yaml not found in $CT_ETC" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/charts"
chart="$("$REPO/ci/standin/prepare.sh" "$work/charts")"
echo "chart-lint: kube-prometheus-stack is the OFFLINE STAND-IN (prometheus-operator CRDs only)"

scenarios=("$chart"/ci/*-values.yaml)
[[ -e "${scenarios[0]}" ]] || { echo "chart-lint: no ci/*-values.yaml scenarios" >&2; exit 1; }
for values in "${scenarios[@]}"; do
  echo "chart-lint: helm lint --strict with ci/$(basename "$values")"
  helm lint --strict --kube-version "$KUBE_VERSION" "$chart" --namespace models --values "$values"
done

echo "chart-lint: ct lint (Chart.yaml schema, yamllint, helm lint per scenario)"
# ct looks for charts relative to the working directory and needs a git work tree there.
cp "$REPO/ci/ct.yaml" "$REPO/ci/lintconf.yaml" "$work/"
git -C "$work" init -q -b main
(cd "$work" && ct lint --config ct.yaml --lint-conf lintconf.yaml \
  --chart-yaml-schema "$CT_ETC/chart_schema.yaml" --skip-helm-dependencies)
echo "chart-lint: ${#scenarios[@]} scenarios passed helm lint --strict and ct lint"
