"""Chart.yaml, Chart.lock, the stand-in, the generated README and the packaged archive."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile

import yaml
from chartlib import CHART_DIR, REPO, TOOLS_BIN, helm_env, prepared_chart

CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
LOCK = yaml.safe_load((CHART_DIR / "Chart.lock").read_text())
STANDIN = yaml.safe_load((REPO / "ci" / "standin" / "kube-prometheus-stack" / "Chart.yaml").read_text())


def helm_lock_digest(requested: list[dict], locked: list[dict]) -> str:
    """helm's resolver.HashReq: sha256 of json.Marshal([2][]*chart.Dependency{req, lock}).

    Go marshals the struct fields in declaration order (name, version, repository, condition, tags,
    enabled, import-values, alias), omitting empty omitempty fields, with no spaces.
    """
    order = ("name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias")

    def go_struct(dep: dict) -> dict:
        out = {}
        for key in order:
            if key == "repository" or dep.get(key):  # repository has no omitempty
                out[key] = dep.get(key, "")
        return out

    payload = json.dumps(
        [[go_struct(d) for d in requested], [go_struct(d) for d in locked]], separators=(",", ":")
    )
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def test_chart_metadata():
    assert CHART["apiVersion"] == "v2"
    assert CHART["kubeVersion"]
    annotations = CHART["annotations"]
    for key in ("license", "links", "changes", "images"):
        assert isinstance(annotations[f"artifacthub.io/{key}"], str), key
    for key in ("links", "changes", "images"):
        assert yaml.safe_load(annotations[f"artifacthub.io/{key}"]), key
    images = yaml.safe_load(annotations["artifacthub.io/images"])
    assert {i["image"].rsplit(":", 1)[1] for i in images} == {CHART["appVersion"]}


def test_dependency_is_the_real_kube_prometheus_stack_and_locked():
    (dep,) = CHART["dependencies"]
    assert dep["name"] == "kube-prometheus-stack"
    assert dep["repository"] == "https://prometheus-community.github.io/helm-charts"
    assert dep["condition"] == "kube-prometheus-stack.enabled"
    assert LOCK["dependencies"] == [
        {"name": dep["name"], "repository": dep["repository"], "version": dep["version"]}
    ]
    assert LOCK["digest"] == helm_lock_digest(CHART["dependencies"], LOCK["dependencies"])


def test_lock_digest_follows_helm():
    # The example pinned by helm's own resolver test (internal/resolver/resolver_test.go, TestHashReq).
    alpine = {"name": "alpine", "version": "0.1.0", "repository": "http://localhost:8879/charts"}
    digest = helm_lock_digest([alpine], [alpine])
    assert digest == "sha256:fb239e836325c5fa14b29d1540a13b7d3ba13151b67fe719f820e0ef6d66aaaf"


def test_standin_has_the_locked_name_and_version_and_no_templates():
    assert (STANDIN["name"], STANDIN["version"]) == (
        LOCK["dependencies"][0]["name"],
        LOCK["dependencies"][0]["version"],
    )
    files = {p.name for p in (REPO / "ci" / "standin" / "kube-prometheus-stack").iterdir()}
    assert files == {"Chart.yaml", "values.yaml"}, "the stand-in carries nothing but CRDs added at test time"


def test_readme_is_generated_from_the_current_values(tmp_path):
    copy = tmp_path / CHART_DIR.name
    shutil.copytree(CHART_DIR, copy, ignore=shutil.ignore_patterns("charts"))
    result = subprocess.run(
        [
            str(TOOLS_BIN / "helm-docs"),
            "--chart-search-root",
            str(copy),
            "--template-files",
            "README.md.gotmpl",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    fresh = (copy / "README.md").read_text()
    assert (CHART_DIR / "README.md").read_text() == fresh, "README.md is stale: run `make chart-docs`"


def values_leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from values_leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


def test_every_value_is_documented():
    readme = (CHART_DIR / "README.md").read_text()
    rows = {
        line.split("|")[1].strip()
        for line in readme.splitlines()
        if line.startswith("| ") and "|" in line[2:]
    }
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    undocumented = [
        leaf
        for leaf in values_leaves(values)
        if not any(leaf == row or leaf.startswith(row + ".") for row in rows)
    ]
    assert not undocumented, f"values without a `# --` comment: {undocumented}"


def test_package_leaves_out_tests_and_carries_templates(tmp_path):
    result = subprocess.run(
        ["helm", "package", str(prepared_chart()), "-d", str(tmp_path)],
        env=helm_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    root = CHART["name"]
    assert f"{root}/templates/tests/test-drift-detector.yaml" in names
    assert f"{root}/values.schema.json" in names
    assert f"{root}/ci/default-values.yaml" in names
    assert not any(n.startswith(f"{root}/tests/") for n in names), "helm-unittest suites were packaged"
    assert f"{root}/README.md.gotmpl" not in names


MIN_KSERVE = "kserve-model-monitoring/minKServeVersion"
MIN_KSERVE_BLOB = "kserve-model-monitoring/minKServeVersionBlobLogger"


def test_minimum_kserve_versions_are_annotated_and_documented_alike():
    """Chart.yaml's annotations are the one statement of the minimum KServe versions: semver tags,
    the blob logger's not older than the chart's, and the README and the contract say the same."""
    annotations = CHART["annotations"]
    versions = {key: annotations[key] for key in (MIN_KSERVE, MIN_KSERVE_BLOB)}
    for key, version in versions.items():
        assert re.fullmatch(r"v\d+\.\d+\.\d+", version), (key, version)

    def parsed(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version[1:].split("."))

    assert parsed(versions[MIN_KSERVE_BLOB]) >= parsed(versions[MIN_KSERVE])
    readme = (CHART_DIR / "README.md").read_text()
    contracts = (REPO / "docs" / "contracts.md").read_text()
    assert f"**Minimum: KServe {versions[MIN_KSERVE]}.**" in readme
    assert f"`{MIN_KSERVE}`" in readme
    assert f"Minimum KServe: {versions[MIN_KSERVE]}" in contracts
    assert f"KServe {versions[MIN_KSERVE_BLOB]} or later" in readme
