#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager for the real-Kubernetes-API test tier (tests/k8s)
# from the k8s.io/kubernetes Go module pinned in ci/kube-apiserver/go.mod (one module, one release,
# the same version stamps), into the git-ignored .tools/bin/.
#
# Idempotent: each binary is skipped when present and built from the current go.mod and go.sum (one
# stamp per binary in .tools/stamps); only the missing or stale ones are built, in one `go build`.
# A cold build of both downloads ~100 MB of modules and compiles ~2000 packages: about 6 minutes on
# two cores, so it prints progress. Rebuild by hand with FORCE=1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE_DIR="$REPO/ci/kube-apiserver"
BIN="$REPO/.tools/bin"
STAMPS="$REPO/.tools/stamps"
BINARIES=(kube-apiserver kube-controller-manager)

say() { printf '\033[1;34m[kube-build]\033[0m %s\n' "$*"; }

command -v go >/dev/null || { echo "build-kube-apiserver: Go is required" >&2; exit 1; }
mkdir -p "$BIN" "$STAMPS"
cd "$MODULE_DIR"

# The release comes from go.mod; the stamps also cover go.sum, so any pin change rebuilds.
VERSION="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
PINS_HASH="$(cat go.mod go.sum | sha256sum | cut -c1-12)"
stamp() { echo "$STAMPS/$1-$VERSION-$PINS_HASH"; }

wanted=()
for name in "${BINARIES[@]}"; do
  if [[ -z "${FORCE:-}" && -f "$(stamp "$name")" && -x "$BIN/$name" ]]; then
    say "$name $VERSION already built ($BIN/$name)"
  else
    wanted+=("$name")
  fi
done
[[ ${#wanted[@]} -eq 0 ]] && exit 0

start=$SECONDS
# The same version stamps as Kubernetes' own hack/lib/version.sh: clients (helm's kubeVersion
# checks, the python client) read them from /version.
major="${VERSION#v}"; major="${major%%.*}"
minor="${VERSION#v*.}"; minor="${minor%%.*}"
build_date="$(go list -m -f '{{.Time.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

# go build fetches only the modules the binaries need and prints each download; compiling then
# reports every 100 packages. Both binaries in one invocation share the compile work.
packages=()
for name in "${wanted[@]}"; do packages+=("k8s.io/kubernetes/cmd/$name"); done
say "building ${wanted[*]} $VERSION (Go module proxy; progress every 100 packages)"
out="$(mktemp -d "$BIN/.kube-build.XXXXXX")"
trap 'rm -rf "$out"' EXIT
if ! CGO_ENABLED=0 go build -v -trimpath -ldflags "$ldflags" -o "$out/" "${packages[@]}" 2>&1 |
  awk '{ n++; if (n % 100 == 0) printf "[kube-build] %d packages compiled\n", n; if ($0 ~ /^(#|go: |.*\.go:[0-9]+)/) print; fflush() }'; then
  echo "build-kube-apiserver: go build failed (output above)" >&2
  exit 1
fi

for name in "${wanted[@]}"; do
  chmod +x "$out/$name"
  mv "$out/$name" "$BIN/$name"
  rm -f "$STAMPS/$name"-*
  touch "$(stamp "$name")"
  say "built $("$BIN/$name" --version) -> $BIN/$name"
done
say "done in $((SECONDS - start))s"
