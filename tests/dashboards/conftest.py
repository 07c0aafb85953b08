"""Shared inputs of the dashboard tests: the dashboards, their panels and every PromQL expression."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for chartlib

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "dashboards"
CHART_COPIES = REPO / "charts" / "kserve-model-monitoring" / "files" / "dashboards"


def dashboard_files() -> list[Path]:
    return sorted(SOURCE.glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested panels included, rows themselves excluded."""
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expr) for every PromQL query: panel targets and query annotations."""
    out = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for ann in dashboard["annotations"]["list"]:
        if "expr" in ann:
            out.append((f"annotation {ann['name']!r}", ann["expr"]))
    return out


@pytest.fixture(params=dashboard_files(), ids=lambda p: p.name)
def dashboard(request) -> dict:
    return load(request.param)
