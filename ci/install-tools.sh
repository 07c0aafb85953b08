#!/usr/bin/env bash
# Installs every tool the tests and the demo need, pinned, into the git-ignored .tools/ and .venv/.
# Idempotent: a tool already present at its pinned version is skipped. Safe to run on a fresh machine.
#
#   ci/install-tools.sh            everything
#   ci/install-tools.sh python     only the Python virtual environment
#   ci/install-tools.sh go         only the Go-built tools (chart tools, KServe, kube-apiserver)
#   ci/install-tools.sh kserve     only KServe's agent and manager
#   ci/install-tools.sh system     only Debian's prometheus/promtool and etcd
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$REPO/.tools"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"
VENV="$REPO/.venv"
PYTHON="${PYTHON:-python3}"

# --- pinned versions -------------------------------------------------------------------------
# helm: the newest v3 the Go module proxy serves.
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
HELM_UNITTEST_VERSION=v1.1.2
# chart-testing: the module's version list is refused by the proxy, v3.14.0 itself is served.
CHART_TESTING_VERSION=v3.14.0
HELM_DOCS_VERSION=v1.14.2
# Upstream CRDs are read from these modules (ci/crds.sh). kserve v0.21.0 is refused by the proxy;
# v0.20.0 is served and matches the Python kserve the predictor pins.
KSERVE_MODULE_VERSION=v0.20.0
PROMETHEUS_OPERATOR_VERSION=v0.85.0
CHECKOV_VERSION=3.3.30

mkdir -p "$BIN" "$STAMPS"
say() { printf '\033[1;34m[install-tools]\033[0m %s\n' "$*"; }

stamped() { [[ -f "$STAMPS/$1" ]]; }
stamp() { touch "$STAMPS/$1"; }
# built NAME VERSION: true (and says so) when .tools/bin/NAME was built at VERSION.
built() {
  stamped "$1-$2" && [[ -x "$BIN/$1" ]] || return 1
  say "$1 $2 already installed"
}

# go_tool NAME MODULE/PATH@VERSION [ldflags]: builds one binary into .tools/bin.
go_tool() {
  local name="$1" pkg="$2" ldflags="${3:-}"
  built "$name" "${pkg##*@}" && return
  say "building $name from $pkg (Go module proxy)"
  GOBIN="$BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -ldflags "-s -w $ldflags" "$pkg"
  stamp "$name-${pkg##*@}"
}

# go_module_tool NAME MODULE@VERSION PACKAGE_DIR: for modules whose go.mod has replace directives,
# which `go install pkg@version` refuses: build inside a copy of the module, as its own main module.
go_module_tool() {
  local name="$1" mod="$2" pkgdir="$3"
  built "$name" "${mod##*@}" && return
  say "building $name from module $mod (Go module proxy, built as main module)"
  local src work
  src="$(GOFLAGS=-mod=mod go mod download -json "$mod" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  work="$(mktemp -d)"
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/$name" "./$pkgdir")
  rm -rf "$work"
  stamp "$name-${mod##*@}"
}

install_go_tools() {
  command -v go >/dev/null || { echo "install-tools: Go is required to build helm and the chart tools" >&2; exit 1; }
  go_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  go_tool kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  go_module_tool helm-unittest "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" cmd/helm-unittest
  # `go install` of ct asks the proxy for the module's version list, which is refused: build the served version.
  go_module_tool ct "github.com/helm/chart-testing/v3@$CHART_TESTING_VERSION" ct
  go_tool helm-docs "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
  install_unittest_plugin
  download_crd_modules
  install_kserve
  # kube-apiserver for the real-Kubernetes-API tier (tests/k8s, and the e2e test's retrain pass).
  "$REPO/ci/build-kube-apiserver.sh"
}

# KServe's own binaries, from the module the CRDs come from: the agent (payload logger) runs in front of
# the predictor in the demo, e2e and benchmarks; the manager (controller + webhooks) in tests/k8s.
install_kserve() {
  go_module_tool kserve-agent "github.com/kserve/kserve@$KSERVE_MODULE_VERSION" cmd/agent
  go_module_tool kserve-manager "github.com/kserve/kserve@$KSERVE_MODULE_VERSION" cmd/manager
}

# helm-unittest as a Helm plugin: the binary built above, registered under HELM_PLUGINS.
# The upstream plugin.yaml downloads a release binary in an install hook, which cannot work offline,
# so the plugin manifest here points at the binary built from the module instead.
install_unittest_plugin() {
  local dir="$TOOLS/helm-plugins/unittest"
  mkdir -p "$dir"
  ln -sf "$BIN/helm-unittest" "$dir/untt"
  cat >"$dir/plugin.yaml" <<EOF
name: "unittest"
version: "${HELM_UNITTEST_VERSION#v}"
usage: "unittest for helm charts"
description: "helm-unittest built from its Go module by ci/install-tools.sh"
ignoreFlags: false
command: "\$HELM_PLUGIN_DIR/untt"
EOF
  say "helm plugin unittest registered in $TOOLS/helm-plugins"
}

# The CRD YAML files ship inside these modules; only the module cache is touched.
download_crd_modules() {
  say "fetching schema sources: kserve $KSERVE_MODULE_VERSION and prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs, Kubernetes OpenAPI"
  GOFLAGS=-mod=mod go mod download "github.com/kserve/kserve@$KSERVE_MODULE_VERSION" \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
    "github.com/helm/chart-testing/v3@$CHART_TESTING_VERSION"
  # Kubernetes' OpenAPI spec (schemas of the built-in kinds) at the kube-apiserver tier's release.
  local k8s_version
  k8s_version="$(cd "$REPO/ci/kube-apiserver" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
  GOFLAGS=-mod=mod go mod download "k8s.io/kubernetes@$k8s_version"
}

install_system() {
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v etcd >/dev/null || missing+=(etcd-server)
  if ((${#missing[@]} == 0)); then
    say "prometheus, promtool and etcd already installed ($(prometheus --version 2>&1 | head -1))"
    return
  fi
  if ! command -v apt-get >/dev/null; then
    echo "install-tools: need ${missing[*]}: install Debian's packages (or your distribution's) and rerun" >&2
    exit 1
  fi
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian packages start system services; the tests run their own instances on free ports.
  for svc in prometheus etcd; do $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
}

install_python() {
  local want
  want="$(cat "$REPO/ci/constraints.txt" "$REPO"/images/*/pyproject.toml | sha256sum | cut -c1-16)"
  if [[ -x "$VENV/bin/python" ]] && stamped "venv-$want"; then
    say "Python environment .venv up to date"
  else
    say "creating Python environment .venv (the three images, editable, with test extras)"
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade "pip==25.3"
    "$VENV/bin/pip" install -q -c "$REPO/ci/constraints.txt" \
      -e "$REPO/images/predictor[test]" \
      -e "$REPO/images/drift-detector[test]" \
      -e "$REPO/images/retrainer[test]" \
      ruff yamllint yamale
    rm -f "$STAMPS"/venv-*
    stamp "venv-$want"
  fi
  # checkov pins its own dependency tree; it gets a virtual environment of its own.
  if ! stamped "checkov-$CHECKOV_VERSION"; then
    say "installing checkov $CHECKOV_VERSION into .tools/checkov"
    "$PYTHON" -m venv "$TOOLS/checkov"
    "$TOOLS/checkov/bin/pip" install -q "checkov==$CHECKOV_VERSION"
    ln -sf "$TOOLS/checkov/bin/checkov" "$BIN/checkov"
    stamp "checkov-$CHECKOV_VERSION"
  fi
}

case "${1:-all}" in
  python) install_python ;;
  go) install_go_tools ;;
  kserve) install_kserve ;;
  system) install_system ;;
  all) install_system; install_python; install_go_tools ;;
  *) echo "usage: $0 [all|python|go|kserve|system]" >&2; exit 2 ;;
esac
say "done: tools in .tools/bin, Python in .venv"
