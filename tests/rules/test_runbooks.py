"""Every alert has a runbook in docs/runbooks/ with the four sections on-call needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import alerts_of

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks"
SECTIONS = ("## Meaning", "## Confirm", "## What to do", "## Silence safely")
DASHBOARD_TITLES = {json.loads(p.read_text())["title"] for p in (REPO / "dashboards").glob("*.json")}


def test_every_alert_has_a_runbook_with_every_section(rule):
    for name, spec in alerts_of(rule["spec"]).items():
        page = RUNBOOKS / f"{name}.md"
        assert page.is_file(), f"no runbook for {name}"
        text = page.read_text()
        assert text.startswith(f"# {name}\n"), page
        for section in SECTIONS:
            assert section in text, f"{page.name}: missing {section}"
        severity = spec["labels"]["severity"]
        assert f"**Severity:** {severity}" in text, f"{page.name}: severity differs from the rule"
        silence = text.split("## Silence safely", 1)[1]
        assert "amtool silence add" in silence, f"{page.name}: show the silence command"
        assert re.search(r"(model_name|job_name)=", silence), f"{page.name}: silence one model, not all"


def test_runbooks_point_at_dashboards_that_exist():
    """Runbooks name dashboards by the last part of their title ("KServe model / <name>")."""
    names = {title.split(" / ")[-1] for title in DASHBOARD_TITLES}
    for page in RUNBOOKS.glob("KServeModel*.md"):
        cited = set(re.findall(r"\*\*KServe model / ([^*]+)\*\*", page.read_text()))
        cited |= set(
            re.findall(r"\*\*(Drift and data quality|Quality and retraining|Overview)\*\*", page.read_text())
        )
        assert cited, f"{page.name}: names no dashboard"
        assert cited <= names, f"{page.name}: unknown dashboards {cited - names}"


def test_no_runbook_without_an_alert(rule):
    alerts = set(alerts_of(rule["spec"]))
    pages = {p.stem for p in RUNBOOKS.glob("KServeModel*.md")}
    assert pages == alerts
    index = (RUNBOOKS / "README.md").read_text()
    assert all(f"[{name}]({name}.md)" in index for name in alerts)
