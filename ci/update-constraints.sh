#!/usr/bin/env bash
# Re-resolves ci/constraints.txt: installs the three images with their test extras and the dev tools into
# a throwaway virtual environment, then freezes it. Run after changing a pyproject.toml dependency.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "update-constraints: resolving in $work"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q "$REPO/images/predictor[test]" "$REPO/images/drift-detector[test,spark]" \
  "$REPO/images/retrainer[test]" ruff yamllint yamale
{
  sed -n '1,3p' "$REPO/ci/constraints.txt"
  "$work/venv/bin/pip" freeze --exclude monitored-predictor --exclude drift-detector --exclude retrain-controller
} >"$work/constraints.txt"
mv "$work/constraints.txt" "$REPO/ci/constraints.txt"
echo "update-constraints: wrote ci/constraints.txt ($(grep -vc '^#' "$REPO/ci/constraints.txt") packages)"
