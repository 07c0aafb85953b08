#!/usr/bin/env bash
# Installs the tools the demo and the tests need, pinned, into the git-ignored .tools/ and .venv/.
# Idempotent: a group whose inputs (this script, its pins, the files listed per group) are unchanged
# and whose tools are all present says so in one line and does nothing. Safe on a fresh machine.
#
#   ci/install-tools.sh [GROUP...]   default: all
#     demo            what `make demo` runs: .venv, Debian's prometheus/promtool, helm, KServe's agent
#     chart           chart test tools: kubeconform, helm-unittest, ct, helm-docs, checkov, schema sources
#     kube            the Kubernetes control plane: Debian's etcd, ci/build-kube-apiserver.sh's binaries
#     kserve-manager  KServe's controller and webhooks (tests/k8s)
#     spark           the batch job's Spark engine (tests/batch): Java 17 (Debian's openjdk-17-jre-headless
#                     when `java` is missing or older) and .venv, which carries drift-detector[spark]
#     all             every group above
#   Narrower pieces, for engineers: python (.venv + checkov), go (every Go-built tool), kserve (agent +
#   manager), system (Debian's packages).
#
# The work of the requested groups runs in four lanes at once, each line prefixed with its lane:
# [apt] Debian packages, [pip] Python environments (network and unpacking), [fetch] the Go modules the
# builds will need (network), [go] every Go build, one after another: Go already compiles on every core,
# and two builds at once compile their shared dependencies (client-go, apimachinery) twice. A failed lane
# fails the script after the others finish, with the tail of its log.
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
# Upstream CRDs are read from these modules (ci/crd-schemas.py, ci/standin/). kserve v0.21.0 is refused
# by the proxy; v0.20.0 is served and matches the Python kserve the predictor pins.
KSERVE_MODULE_VERSION=v0.20.0
PROMETHEUS_OPERATOR_VERSION=v0.85.0
CHECKOV_VERSION=3.3.30
PIP_VERSION=25.3

mkdir -p "$BIN" "$STAMPS"

# In a lane, the lane's prefix is added by the pipe it writes to; outside, this script's own.
say() {
  if [[ -n "${LANE:-}" ]]; then printf '%s\n' "$*"; else printf '\033[1;34m[install-tools]\033[0m %s\n' "$*"; fi
}
die() { echo "install-tools: $*" >&2; exit 1; }

stamped() { [[ -f "$STAMPS/$1" ]]; }
stamp() { touch "$STAMPS/$1"; }
# built NAME VERSION: true (and says so) when .tools/bin/NAME was built at VERSION.
built() {
  stamped "$1-$2" && [[ -x "$BIN/$1" ]] || return 1
  say "$1 $2 already installed"
}
need_go() { command -v go >/dev/null || die "Go is required to build helm, the chart tools and KServe"; }
# The module cache's directory, asked of go once per run (it takes a moment): see run_groups.
gomodcache() { echo "${GOMODCACHE_DIR:-${GOMODCACHE:-$(go env GOMODCACHE)}}"; }
kubernetes_version() { awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$REPO/ci/kube-apiserver/go.mod"; }

# go build -v lists each package it compiles: print a count every 100 (and of module downloads every 25)
# and every error line in full.
go_progress() {
  awk -v name="$1" '/^go: downloading / { d++; if (d % 25 == 0) printf "%s: %d modules downloaded\n", name, d; fflush(); next }
    { n++; if (n % 100 == 0) printf "%s: %d packages compiled\n", name, n;
      if ($0 ~ /^(#|go: |.*\.go:[0-9]+)/) print; fflush() }'
}

# go_tool NAME MODULE/PATH@VERSION [ldflags]: builds one binary into .tools/bin.
go_tool() {
  local name="$1" pkg="$2" ldflags="${3:-}" start=$SECONDS
  built "$name" "${pkg##*@}" && return
  say "building $name from $pkg (Go module proxy; progress every 100 packages)"
  GOBIN="$BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -v -ldflags "-s -w $ldflags" "$pkg" 2>&1 | go_progress "$name"
  stamp "$name-${pkg##*@}"
  say "built $name ${pkg##*@} in $((SECONDS - start))s"
}

# go_module_tool NAME MODULE@VERSION PACKAGE_DIR: for modules whose go.mod has replace directives,
# which `go install pkg@version` refuses: build inside a copy of the module, as its own main module.
go_module_tool() {
  local name="$1" mod="$2" pkgdir="$3" start=$SECONDS
  built "$name" "${mod##*@}" && return
  say "building $name from module $mod (built as main module; progress every 100 packages)"
  local src work
  src="$(GOFLAGS=-mod=mod go mod download -json "$mod" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  work="$(mktemp -d)"
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" -o "$BIN/$name" "./$pkgdir" 2>&1 |
    go_progress "$name")
  rm -rf "$work"
  stamp "$name-${mod##*@}"
  say "built $name ${mod##*@} in $((SECONDS - start))s"
}

# helm-unittest as a Helm plugin: the binary built above, registered under HELM_PLUGINS.
# The upstream plugin.yaml downloads a release binary in an install hook, which cannot work offline,
# so the plugin manifest here points at the binary built from the module instead.
install_unittest_plugin() {
  local dir="$TOOLS/helm-plugins/unittest"
  mkdir -p "$dir"
  # Relative: a worktree that links to this .tools must not leave its own path in the shared plugin.
  ln -sfr "$BIN/helm-unittest" "$dir/untt"
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

# Modules whose files (CRDs, OpenAPI spec, ct's schemas) are read in place: only the module cache is touched.
download_modules() {
  local start=$SECONDS
  GOFLAGS=-mod=mod go mod download "$@"
  say "fetched $* in $((SECONDS - start))s"
}

# prefetch_module_deps MODULE@VERSION PACKAGE_DIR...: downloads exactly the modules those packages need,
# beside the compiles of the go lane (from an empty module cache, KServe's agent alone needs ~2 GB).
prefetch_module_deps() {
  local mod="$1" start=$SECONDS src work
  shift
  src="$(GOFLAGS=-mod=mod go mod download -json "$mod" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  work="$(mktemp -d)"
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  if (cd "$work" && GOFLAGS=-mod=mod go list -deps "${@/#/./}" 2>&1 >/dev/null | download_progress); then
    say "fetched the modules of ${mod%@*} ${*} in $((SECONDS - start))s"
  else
    say "could not fetch ahead for ${mod%@*} ${*}: its build will fetch (and report) what it needs"
  fi
  rm -rf "$work"
}

# "go: downloading" lines: a count every 25 modules; anything else in full.
download_progress() {
  awk '/^go: downloading / { n++; if (n % 25 == 0) printf "%d modules downloaded\n", n; fflush(); next }
    { print; fflush() } END { if (n % 25) printf "%d modules downloaded\n", n }'
}

# --- Debian packages -------------------------------------------------------------------------------
# apt_packages COMMAND=PACKAGE...: installs the packages whose command is missing, in one apt-get run.
apt_packages() {
  local missing=() pair
  for pair in "$@"; do command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}"); done
  if ((${#missing[@]} == 0)); then
    say "Debian packages present: ${*%%=*}"
    return
  fi
  command -v apt-get >/dev/null ||
    die "need ${missing[*]}: install Debian's packages (or your distribution's) and rerun"
  local sudo="" start=$SECONDS
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  say "apt-get update, then installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian packages start system services; the tests run their own instances on free ports.
  for svc in prometheus etcd; do $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
  say "installed ${missing[*]} in $((SECONDS - start))s"
}

# --- Python --------------------------------------------------------------------------------------
# pip_install PIP ARGS...: progress as a count of resolved packages; pip's whole output only on failure.
# --no-compile: pip would byte-compile every module of every package (~28,000 files for .venv, about a
# minute of CPU); Python compiles the few that are imported, once, on first use.
pip_install() {
  local pip="$1" full
  shift
  full="$(mktemp)"
  if ! "$pip" install --no-compile --progress-bar off "$@" 2>&1 | tee "$full" | awk '
      /^Collecting / { n++; if (n % 20 == 0) printf "%d packages resolved\n", n; fflush(); next }
      /^Installing collected packages/ { printf "%d packages resolved; installing\n", n; fflush() }'; then
    tail -n 30 "$full"
    rm -f "$full"
    return 1
  fi
  rm -f "$full"
}

venv_hash() { cat "$REPO/ci/constraints.txt" "$REPO"/images/*/pyproject.toml | sha256sum | cut -c1-16; }
# The stamp lives inside .venv: .tools may be shared between clones, each clone has its own .venv.
venv_stamp() { echo "$VENV/.install-tools-$(venv_hash)"; }

install_venv() {
  local stamp_file start=$SECONDS
  stamp_file="$(venv_stamp)"
  if [[ -x "$VENV/bin/python" && -f "$stamp_file" ]]; then
    say "Python environment .venv up to date"
    return
  fi
  say "creating Python environment .venv (the three images, editable, with test extras; pyspark)"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade "pip==$PIP_VERSION"
  pip_install "$VENV/bin/pip" -c "$REPO/ci/constraints.txt" \
    -e "$REPO/images/predictor[test]" \
    -e "$REPO/images/drift-detector[test,spark]" \
    -e "$REPO/images/retrainer[test]" \
    ruff yamllint yamale
  rm -f "$VENV"/.install-tools-*
  touch "$stamp_file"
  say "built .venv ($("$VENV/bin/pip" list --format=freeze 2>/dev/null | wc -l) packages) in $((SECONDS - start))s"
}

# checkov pins its own dependency tree; it gets a virtual environment of its own.
install_checkov() {
  local start=$SECONDS
  if stamped "checkov-$CHECKOV_VERSION" && [[ -x "$BIN/checkov" ]]; then
    say "checkov $CHECKOV_VERSION already installed"
    return
  fi
  say "installing checkov $CHECKOV_VERSION into .tools/checkov"
  "$PYTHON" -m venv "$TOOLS/checkov"
  pip_install "$TOOLS/checkov/bin/pip" "checkov==$CHECKOV_VERSION"
  ln -sfr "$TOOLS/checkov/bin/checkov" "$BIN/checkov"
  stamp "checkov-$CHECKOV_VERSION"
  say "built checkov $CHECKOV_VERSION in $((SECONDS - start))s"
}

# --- the Go-built tools, per group -----------------------------------------------------------------
go_helm() {
  go_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
}

# KServe's own binaries, from the module the CRDs come from: the agent (payload logger) runs in front of
# the predictor in the demo, e2e and benchmarks; the manager (controller + webhooks) in tests/k8s.
go_kserve_agent() { go_module_tool kserve-agent "github.com/kserve/kserve@$KSERVE_MODULE_VERSION" cmd/agent; }
go_kserve_manager() { go_module_tool kserve-manager "github.com/kserve/kserve@$KSERVE_MODULE_VERSION" cmd/manager; }

go_demo() {
  go_helm
  go_kserve_agent
}

# --- the fetch lane: module downloads ahead of the go lane's builds ---------------------------------
fetch_demo() {
  [[ -f "$STAMPS/kserve-agent-$KSERVE_MODULE_VERSION" ]] ||
    prefetch_module_deps "github.com/kserve/kserve@$KSERVE_MODULE_VERSION" cmd/agent
  # The chart renders offline with a stand-in that carries the prometheus-operator CRDs (ci/standin/).
  download_modules "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
}
fetch_kserve_manager() {
  [[ -f "$STAMPS/kserve-manager-$KSERVE_MODULE_VERSION" ]] ||
    prefetch_module_deps "github.com/kserve/kserve@$KSERVE_MODULE_VERSION" cmd/manager
}
# The control plane's modules, from ci/kube-apiserver/go.mod as it is (never edited: -mod stays readonly).
fetch_kube() {
  local start=$SECONDS
  if (cd "$REPO/ci/kube-apiserver" &&
    go list -deps $(control_plane_binaries | sed 's|^|k8s.io/kubernetes/cmd/|') 2>&1 >/dev/null | download_progress); then
    say "fetched the modules of $(control_plane_binaries | xargs) in $((SECONDS - start))s"
  else
    say "could not fetch ahead for $(control_plane_binaries | xargs): the build will fetch (and report) what it needs"
  fi
}
# Schema sources for ci/crd-schemas.py and ct: the CRDs, and Kubernetes' OpenAPI spec at the kube tier's release.
fetch_chart() {
  download_modules "github.com/kserve/kserve@$KSERVE_MODULE_VERSION" \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
    "github.com/helm/chart-testing/v3@$CHART_TESTING_VERSION" "k8s.io/kubernetes@$(kubernetes_version)"
}

go_chart() {
  go_tool kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  go_module_tool helm-unittest "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" cmd/helm-unittest
  # `go install` of ct asks the proxy for the module's version list, which is refused: build the served version.
  go_module_tool ct "github.com/helm/chart-testing/v3@$CHART_TESTING_VERSION" ct
  go_tool helm-docs "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
  install_unittest_plugin
}

# The Kubernetes control-plane binaries, from the k8s.io/kubernetes pin in ci/kube-apiserver/go.mod.
go_kube() { "$REPO/ci/build-kube-apiserver.sh"; }

# --- Java for Spark ---------------------------------------------------------------------------------
# Spark 4 (pyspark, drift-detector[spark]) runs on Java 17 or newer.
JAVA_MIN=17
java_major() { java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'; }
java_ok() { command -v java >/dev/null && (($(java_major) >= JAVA_MIN)); }
# Debian's package, also when an older java is on PATH (apt_packages only looks for the command).
install_java() {
  if java_ok; then
    say "Java $(java_major) present (Spark needs $JAVA_MIN+)"
    return
  fi
  command -v apt-get >/dev/null || die "Spark needs Java $JAVA_MIN+: install a JRE $JAVA_MIN and rerun"
  local sudo="" start=$SECONDS
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  say "apt-get update, then installing openjdk-17-jre-headless"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
  java_ok || die "openjdk-17-jre-headless installed, but \`java -version\` still says $(java_major): fix PATH or alternatives"
  say "installed openjdk-17-jre-headless in $((SECONDS - start))s"
}

# --- groups: inputs, what must exist, and the work per lane ----------------------------------------
# group_inputs GROUP: the files whose content decides whether the group must run again.
group_inputs() {
  local inputs=("$REPO/ci/install-tools.sh")
  case "$1" in
    demo | spark) inputs+=("$REPO/ci/constraints.txt" "$REPO"/images/*/pyproject.toml) ;;
    kube) inputs+=("$REPO/ci/build-kube-apiserver.sh" "$REPO/ci/kube-apiserver/go.mod" "$REPO/ci/kube-apiserver/go.sum") ;;
  esac
  printf '%s\n' "${inputs[@]}"
}

group_stamp() {
  local hash
  hash="$(group_inputs "$1" | xargs cat | sha256sum | cut -c1-16)"
  echo "$STAMPS/group-$1-$hash"
}

# control_plane_binaries: what ci/build-kube-apiserver.sh builds (kube-controller-manager once it does).
control_plane_binaries() {
  echo kube-apiserver
  if grep -q kube-controller-manager "$REPO/ci/build-kube-apiserver.sh"; then echo kube-controller-manager; fi
}

# group_present GROUP: true when everything the group installs is in place.
group_present() {
  local f
  case "$1" in
    demo)
      [[ -x "$VENV/bin/python" && -f "$(venv_stamp)" ]] && command -v prometheus promtool >/dev/null &&
        [[ -x "$BIN/helm" && -x "$BIN/kserve-agent" ]] &&
        [[ -d "$(gomodcache)/github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" ]]
      ;;
    chart)
      for f in kubeconform helm-unittest ct helm-docs checkov; do [[ -x "$BIN/$f" ]] || return 1; done
      [[ -f "$TOOLS/helm-plugins/unittest/plugin.yaml" && -d "$(gomodcache)/k8s.io/kubernetes@$(kubernetes_version)" ]]
      ;;
    kube)
      command -v etcd >/dev/null || return 1
      for f in $(control_plane_binaries); do [[ -x "$BIN/$f" ]] || return 1; done
      ;;
    kserve-manager) [[ -x "$BIN/kserve-manager" ]] ;;
    spark) java_ok && [[ -x "$VENV/bin/python" && -f "$(venv_stamp)" ]] && "$VENV/bin/python" -c 'import pyspark' 2>/dev/null ;;
  esac
}

group_summary() {
  case "$1" in
    demo) echo ".venv, prometheus/promtool, helm $HELM_VERSION, kserve-agent $KSERVE_MODULE_VERSION" ;;
    chart) echo "kubeconform, helm-unittest, ct, helm-docs, checkov $CHECKOV_VERSION, schema sources" ;;
    kube) echo "etcd, $(control_plane_binaries | xargs) $(kubernetes_version)" ;;
    kserve-manager) echo "kserve-manager $KSERVE_MODULE_VERSION" ;;
    spark) echo "Java $(java_major 2>/dev/null || echo '?'), pyspark in .venv" ;;
  esac
}

# --- lanes -----------------------------------------------------------------------------------------
LOGS=""
LANE_PIDS=()
LANE_NAMES=()

# start_lane NAME FUNCTION...: runs the functions one after another in the background; every line they
# print is prefixed with [NAME] and kept in the lane's log.
start_lane() {
  local name="$1"
  shift
  local steps=("$@")
  {
    set -o pipefail
    (
      LANE="$name"
      for step in "${steps[@]}"; do "$step"; done
    ) 2>&1 | tee "$LOGS/$name.log" | sed -u "s/^/$(printf '\033[1;34m')[$name]$(printf '\033[0m') /"
  } &
  LANE_PIDS+=("$!")
  LANE_NAMES+=("$name")
}

# wait_lanes: waits for every lane; each failure is named with the tail of its log.
wait_lanes() {
  local i rc failed=0
  for i in "${!LANE_PIDS[@]}"; do
    rc=0
    wait "${LANE_PIDS[$i]}" || rc=$?
    if ((rc != 0)); then
      failed=1
      say "FAILED: lane ${LANE_NAMES[$i]} (exit $rc); the last 30 lines of its log ($LOGS/${LANE_NAMES[$i]}.log):" >&2
      tail -n 30 "$LOGS/${LANE_NAMES[$i]}.log" | sed 's/^/    /' >&2
    fi
  done
  return "$failed"
}

# run_groups GROUP...: skips the groups already in place (one line each), runs the rest in lanes.
run_groups() {
  local todo=() group
  GOMODCACHE_DIR="${GOMODCACHE:-$(go env GOMODCACHE 2>/dev/null || true)}"
  for group in "$@"; do
    if [[ -z "${FORCE:-}" && -f "$(group_stamp "$group")" ]] && group_present "$group"; then
      say "$group: up to date, nothing to do ($(group_summary "$group"))"
    else
      todo+=("$group")
    fi
  done
  ((${#todo[@]} > 0)) || return 0

  local pip=() go=() fetch=() start=$SECONDS
  has() { [[ " ${todo[*]} " == *" $1 "* ]]; }
  APT_WANT=() APT_JAVA=0
  if has demo; then APT_WANT+=(promtool=prometheus prometheus=prometheus) pip+=(install_venv) go+=(go_demo) fetch+=(fetch_demo); fi
  # The manager reuses most of the agent's compiled packages: built right after it.
  if has kserve-manager; then go+=(go_kserve_manager) fetch+=(fetch_kserve_manager); fi
  if has kube; then APT_WANT+=(etcd=etcd-server) go+=(go_kube) fetch+=(fetch_kube); fi
  if has chart; then pip+=(install_checkov) go+=(go_chart) fetch+=(fetch_chart); fi
  # Java in the apt lane's place (its own apt-get run: it checks the version, not just the command).
  if has spark; then pip+=(install_venv) APT_JAVA=1; fi
  ((${#go[@]} == 0)) || need_go
  LOGS="$(mktemp -d)"
  local apt_lane=""
  ((${#APT_WANT[@]} == 0 && APT_JAVA == 0)) || apt_lane="apt "
  local lanes="${apt_lane}${pip[*]:+pip }${fetch[*]:+fetch }${go[*]:+go}"
  say "installing: ${todo[*]} (side by side: ${lanes% }; logs in $LOGS)"
  # One apt-get run for every requested group's packages (dpkg takes one lock at a time).
  ((${#APT_WANT[@]} == 0 && ${APT_JAVA:-0} == 0)) || start_lane apt apt_wanted
  ((${#pip[@]} == 0)) || start_lane pip "${pip[@]}"
  ((${#fetch[@]} == 0)) || start_lane fetch "${fetch[@]}"
  ((${#go[@]} == 0)) || start_lane go "${go[@]}"
  if ! wait_lanes; then
    die "installing ${todo[*]} failed (lane logs kept in $LOGS)"
  fi
  rm -rf "$LOGS"
  for group in "${todo[@]}"; do
    rm -f "$STAMPS/group-$group-"*
    touch "$(group_stamp "$group")"
  done
  for group in "${todo[@]}"; do say "$group: ready after $((SECONDS - start))s ($(group_summary "$group"))"; done
}

apt_wanted() {
  ((${#APT_WANT[@]} == 0)) || apt_packages "${APT_WANT[@]}"
  ((${APT_JAVA:-0} == 0)) || install_java
}

ALL_GROUPS=(demo chart kube kserve-manager spark)
(($# > 0)) || set -- all
groups=()
for arg in "$@"; do
  case "$arg" in
    demo | chart | kube | kserve-manager | spark) groups+=("$arg") ;;
    all) groups+=("${ALL_GROUPS[@]}") ;;
    python) install_venv; install_checkov ;;
    go) need_go; go_demo; go_kserve_manager; go_chart; go_kube; fetch_demo; fetch_chart ;;
    kserve) need_go; go_kserve_agent; go_kserve_manager ;;
    system) apt_packages promtool=prometheus prometheus=prometheus etcd=etcd-server ;;
    *) echo "usage: $0 [all|demo|chart|kube|kserve-manager|spark|python|go|kserve|system]..." >&2; exit 2 ;;
  esac
done
((${#groups[@]} == 0)) || run_groups $(printf '%s\n' "${groups[@]}" | awk '!seen[$0]++')
