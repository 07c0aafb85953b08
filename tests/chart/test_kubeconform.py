"""Every rendered object of every scenario validates strictly, CRD kinds included (unknown fields fail)."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from chartlib import TOOLS_BIN
from conftest import SCENARIOS

LOCATION = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


def kubeconform(schemas, manifest_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(TOOLS_BIN / "kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "text",
            "-schema-location",
            f"{schemas}/{LOCATION}",
            str(manifest_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_object_is_valid_against_its_strict_schema(scenario, scenario_text, crd_schemas, tmp_path):
    manifest = tmp_path / f"{scenario}.yaml"
    manifest.write_text(scenario_text[scenario])
    result = kubeconform(crd_schemas, manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    # No object may slip through without a schema.
    assert "Errors: 0, Skipped: 0" in result.stdout, result.stdout
    count = sum(1 for doc in yaml.safe_load_all(scenario_text[scenario]) if doc)
    assert f"Valid: {count}," in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("InferenceService", ["spec", "predictor", "model"]),
        ("ServingRuntime", ["spec", "containers", 0]),
        ("PodMonitor", ["spec", "podMetricsEndpoints", 0]),
        ("ServiceMonitor", ["spec", "endpoints", 0]),
        ("PrometheusRule", ["spec", "groups", 0]),
        ("Deployment", ["spec", "template", "spec", "containers", 0, "securityContext"]),
        ("CronJob", ["spec", "jobTemplate", "spec"]),
    ],
)
def test_a_misspelt_field_is_rejected(kind, path, scenario_docs, crd_schemas, tmp_path):
    """The schemas are strict: the same objects with one unknown field fail validation."""
    obj = next(doc for doc in scenario_docs["all-features"] if doc["kind"] == kind)
    assert_misspelt_field_rejected(obj, path, crd_schemas, tmp_path)


def assert_misspelt_field_rejected(obj: dict, path: list[str], crd_schemas, tmp_path) -> None:
    """obj with an unknown field added at path fails kubeconform, which names the field."""
    node = obj
    for key in path:
        node = node[key]
    node["misspeltField"] = "x"
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(obj))
    result = kubeconform(crd_schemas, manifest)
    assert result.returncode != 0
    assert "misspeltField" in result.stdout, result.stdout
