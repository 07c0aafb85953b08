"""Dashboard lint: the conventions of DESIGN.md ("Chart conventions") and issue 6, checked on the JSON."""

from __future__ import annotations

import re

from conftest import CHART_COPIES, SOURCE, dashboard_files, expressions, load, panels

PANEL_TYPES = {"timeseries", "stat", "heatmap", "table", "bargauge"}
REQUIRED_VARIABLES = {"datasource", "namespace", "model_name"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PER_SECOND_UNITS = {"reqps", "ops", "rps", "wps", "Bps", "binBps", "cps", "iops"}
RANGE = re.compile(r"\[([^\]]+)\]")


def test_there_are_dashboards():
    names = {p.name for p in dashboard_files()}
    assert {"kserve-model-overview.json", "kserve-model-drift.json", "kserve-model-quality.json"} <= names


def test_chart_copies_are_identical_to_the_sources():
    """`make dashboards` copies dashboards/*.json into the chart; a stale or extra copy fails here."""
    sources = {p.name: p.read_bytes() for p in SOURCE.glob("*.json")}
    copies = {p.name: p.read_bytes() for p in CHART_COPIES.glob("*.json")}
    assert copies.keys() == sources.keys(), "run `make dashboards`"
    stale = [name for name in sources if copies[name] != sources[name]]
    assert not stale, f"stale chart copies (run `make dashboards`): {stale}"


def test_uids_are_fixed_and_unique():
    uids = [load(p)["uid"] for p in dashboard_files()]
    assert all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in uids), uids
    assert len(set(uids)) == len(uids)


def test_variables(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables.keys() >= REQUIRED_VARIABLES
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "model_name"):
        assert variables[name]["datasource"] == DATASOURCE
        assert "label_values(" in variables[name]["definition"]
    assert "$namespace" in variables["model_name"]["definition"], "models follow the namespace choice"


def test_panels_are_modern_described_and_have_units(dashboard):
    ids = []
    for panel in panels(dashboard):
        title = panel["title"]
        ids.append(panel["id"])
        assert panel["type"] in PANEL_TYPES, f"{title}: panel type {panel['type']}"
        assert panel.get("description", "").strip(), f"{title}: no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel["datasource"] == DATASOURCE, title
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_panels_do_not_overlap(dashboard):
    taken = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_range_uses_rate_interval(dashboard):
    for where, expr in expressions(dashboard):
        for window in RANGE.findall(expr):
            assert window == "$__rate_interval", f"{where}: range [{window}] in {expr}"


def test_histogram_quantiles_aggregate_buckets_first(dashboard):
    for where, expr in expressions(dashboard):
        for call in re.findall(r"histogram_quantile\(([^,]+),\s*(\w+ by \([^)]*\))", expr):
            assert call[1].startswith("sum by (le"), f"{where}: {expr}"
        if "histogram_quantile(" in expr:
            assert "sum by (le" in expr, f"{where}: quantile of raw per-pod rates"


def test_rates_are_per_second_unless_scaled_and_said_so(dashboard):
    """A rate() is per second: its panel unit is a per-second unit, or the query divides (a ratio or a
    mean) or takes a quantile, or it multiplies and the description says what it became."""
    for panel in panels(dashboard):
        unit = panel["fieldConfig"]["defaults"]["unit"]
        for target in panel["targets"]:
            expr = target["expr"]
            if "rate(" not in expr or "histogram_quantile(" in expr:
                continue
            scaled = re.search(r"\*\s*(60|3600|86400)\b", expr)
            if scaled:
                assert "multiplied" in panel["description"], f"{panel['title']}: say how the rate was scaled"
            elif " / " not in expr:
                assert unit in PER_SECOND_UNITS, f"{panel['title']}: per-second rate shown as {unit}"


def test_queries_filter_by_the_selected_models(dashboard):
    for where, expr in expressions(dashboard):
        if "kube_job" in expr:
            assert "$training_namespace" in expr and "${model_name:regex}" in expr, where
            continue
        for selector in re.findall(r"\b[a-z_:]+\{([^}]*)\}", expr):
            assert 'model_name=~"$model_name"' in selector, f"{where}: {expr}"
            assert 'namespace=~"$namespace"' in selector, f"{where}: {expr}"
