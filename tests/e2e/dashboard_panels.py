"""Every query of dashboards/*.json, with Grafana's variables filled in for the end-to-end stack.

PANELS_WITHOUT_DATA is the written list of panels that cannot show data on one machine, each with its
reason. Every other panel query must return data from the end-to-end Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"

KUBE_STATE_METRICS = (
    "kube-state-metrics series (kube_job_*) of the retrain Jobs: there is no Kubernetes cluster "
    "and no kube-state-metrics on one machine"
)

SEGMENTS = (
    "segment drift needs a categorical segment column; the demo model's 30 features are all numeric "
    "(tests/dashboards/test_panels_return_data.py feeds this panel from a detector with segments)"
)

# (dashboard file, panel title) -> why it has no data here.
PANELS_WITHOUT_DATA: dict[tuple[str, str], str] = {
    ("kserve-model-quality.json", "Running"): KUBE_STATE_METRICS,
    ("kserve-model-quality.json", "Succeeded"): KUBE_STATE_METRICS,
    ("kserve-model-quality.json", "Failed"): KUBE_STATE_METRICS,
    ("kserve-model-quality.json", "Started in range"): KUBE_STATE_METRICS,
    ("kserve-model-quality.json", "Retrain Jobs by state"): KUBE_STATE_METRICS,
    ("kserve-model-quality.json", "Retrain Jobs"): KUBE_STATE_METRICS,
    ("kserve-model-quality.json", "variable training_namespace"): KUBE_STATE_METRICS,
    ("kserve-model-drift.json", "Segment drift share (latest window)"): SEGMENTS,
}

# Grafana's built-ins, as Grafana would expand them for a 15-minute dashboard range.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range_s": "900",
    "__range": "15m",
}
DEFAULTS = {"training_namespace": "training", "retrain_job_prefix": "retrain-"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace $var, ${var} and ${var:format} with values (then DEFAULTS, then Grafana built-ins)."""
    known = {**BUILTINS, **DEFAULTS, **values}

    def one(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in known:
            raise KeyError(f"no value for dashboard variable ${name} in {expr!r}")
        return known[name]

    return VARIABLE.sub(one, expr)


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) for every target of every panel, and every query variable."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield path.name, panel.get("title", ""), target["expr"]
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            found = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text, flags=re.S)
            if variable.get("type") == "query" and found:
                yield path.name, f"variable {variable['name']}", found.group(1)
