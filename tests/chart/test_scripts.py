"""The chart's shell entry points: `make chart-render` prints a render users can read, the scripts parse."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from chartlib import REPO, helm_env

SCRIPTS = ["ci/chart-render.sh", "ci/chart-lint.sh", "ci/kind-e2e.sh", "ci/standin/prepare.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(script):
    result = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def render(*values: str) -> subprocess.CompletedProcess:
    script = str(REPO / "ci" / "chart-render.sh")
    return subprocess.run([script, *values], env=helm_env(), capture_output=True, text=True, check=False)


def test_chart_render_prints_the_default_render_and_names_the_stand_in():
    result = render()
    assert result.returncode == 0, result.stderr
    assert "OFFLINE STAND-IN" in result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert {"InferenceService", "Deployment", "ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds


def test_chart_render_takes_a_values_file(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(
        "modelName: churn\nretrainer:\n  enabled: true\n  job:\n    image: train:1\n"
        "  prometheus:\n    url: http://prometheus-operated.monitoring.svc:9090\n"
    )
    result = render(str(values))
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert any(d["kind"] == "CronJob" for d in docs)
    assert any(d["kind"] == "InferenceService" and d["metadata"]["name"] == "churn" for d in docs)


def test_chart_render_fails_loudly_on_bad_values(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("driftDetector:\n  windowSize: -1\n")
    result = render(str(values))
    assert result.returncode != 0
    assert "windowSize" in result.stderr
