"""Render the chart's PrometheusRule once per session and hand out its rules file and alert specs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for chartlib
from chartlib import find, render_chart

HERE = Path(__file__).resolve().parent
VALUES = HERE / "values.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RULE_TEMPLATE = "templates/monitoring/prometheusrule.yaml"


def suites() -> list[Path]:
    """The promtool suites: every *_test.yaml next to this file."""
    return sorted(HERE.glob("*_test.yaml"))


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False)


def render_rule(set_values: dict | None = None) -> dict:
    """The PrometheusRule rendered with the suites' values plus set_values."""
    docs = render_chart(values_files=[VALUES], set_values=set_values, show_only=RULE_TEMPLATE)
    return find(docs, kind="PrometheusRule")


def alerts_of(spec: dict) -> dict[str, dict]:
    return {r["alert"]: r for g in spec["groups"] for r in g["rules"] if "alert" in r}


@pytest.fixture(scope="session")
def rule() -> dict:
    return render_rule()


@pytest.fixture(scope="session")
def rules_dir(rule, tmp_path_factory) -> Path:
    """A directory holding rules.yaml (the rendered spec, as Prometheus loads it) and the suites."""
    out = tmp_path_factory.mktemp("rules")
    (out / "rules.yaml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    for suite in suites():
        shutil.copy(suite, out / suite.name)
    return out
