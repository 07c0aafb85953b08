"""Checkov's Kubernetes checks over the render of every scenario: no finding outside the written,
justified skip list (checkov-skips.yaml), and no skip that has become unnecessary."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from chartlib import TOOLS_BIN

SKIPS = yaml.safe_load((Path(__file__).parent / "checkov-skips.yaml").read_text())


@pytest.fixture(scope="module")
def checkov_findings(scenario_text, tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("renders")
    for name, text in scenario_text.items():
        (folder / f"{name}.yaml").write_text(text)
    result = subprocess.run(
        [str(TOOLS_BIN / "checkov"), "-d", str(folder), "--framework", "kubernetes", "-o", "json", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip(), f"checkov produced no report: {result.stderr[-2000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports), result.stdout[:2000]
    assert sum(r["summary"]["passed"] for r in reports) > 0, "checkov passed nothing: it did not scan"
    return [f for r in reports for f in r["results"]["failed_checks"]]


def matching_skip(finding: dict) -> dict | None:
    for skip in SKIPS:
        if skip["id"] == finding["check_id"] and re.search(skip["resource"], finding["resource"]):
            return skip
    return None


def test_every_skip_is_justified():
    for skip in SKIPS:
        assert set(skip) == {"id", "resource", "reason"}, skip
        assert len(skip["reason"].split()) >= 10, f"{skip['id']}: write down why"


def test_no_finding_outside_the_skip_list(checkov_findings):
    unexpected = sorted(
        f"{f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']})"
        for f in checkov_findings
        if matching_skip(f) is None
    )
    assert not unexpected, "checkov findings without a justified skip:\n" + "\n".join(unexpected)


def test_every_skip_is_still_needed(checkov_findings):
    used = {(matching_skip(f) or {}).get("id") for f in checkov_findings}
    stale = [skip["id"] for skip in SKIPS if skip["id"] not in used]
    assert not stale, f"skips that match no finding any more (remove them): {stale}"
