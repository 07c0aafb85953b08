"""Shared fixtures of the chart tests: renders of every ci/*-values.yaml scenario, strict schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for chartlib

from chartlib import REPO, render_chart, render_raw, scenario_files

SCENARIOS = {path.name.removesuffix("-values.yaml"): path for path in scenario_files()}
# The values ci/kind-e2e.sh installs in a real cluster get the same offline checks.
SCENARIOS["kind-e2e"] = REPO / "ci" / "kind-values.yaml"
SCHEMA_DIR = REPO / "build" / "crd-schemas"


@pytest.fixture(scope="session")
def scenario_text() -> dict[str, str]:
    """helm template output of each scenario, by scenario name (e.g. "all-features")."""
    return {name: render_raw(values_files=[path]) for name, path in SCENARIOS.items()}


@pytest.fixture(scope="session")
def scenario_docs() -> dict[str, list[dict]]:
    return {name: render_chart(values_files=[path]) for name, path in SCENARIOS.items()}


@pytest.fixture(scope="session")
def crd_schemas() -> Path:
    """Strict kubeconform schemas built from the upstream API definitions (ci/crd-schemas.py)."""
    subprocess.run(
        [sys.executable, str(REPO / "ci" / "crd-schemas.py"), "--out", str(SCHEMA_DIR)],
        check=True,
    )
    return SCHEMA_DIR


def pytest_report_header(config):
    from chartlib import STANDIN_NOTICE

    return STANDIN_NOTICE
