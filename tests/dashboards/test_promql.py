"""Every PromQL expression of the dashboards and the rules parses (real promtool), names only metrics
that exist (the metric contract, KServe's own, kube-state-metrics', the chart's recording rules), and
the images really export the contract metrics the dashboards and rules read."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from chartlib import render_chart
from conftest import REPO, dashboard_files, expressions, load

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Grafana's variables, replaced by plausible values so that promtool sees plain PromQL.
GRAFANA_VARIABLES = {
    "${model_name:regex}": "churn",
    "${retrain_job_prefix}": "retrain-",
    "$__rate_interval": "5m",
    "$__range_s": "3600",
    "$training_namespace": "training",
    "$model_name": "churn",
    "$namespace": "models",
}
# DESIGN.md "Metric contract" (+ docs/contracts.md), with the series a histogram or counter exposes.
PREDICTOR = {
    "model_predictions_total",
    "model_prediction_latency_seconds",
    "model_prediction_errors_total",
    "model_prediction_distribution",
    "model_feature_mean",
}
DRIFT_DETECTOR = {
    "model_drift_score",
    "model_drift_detected",
    "model_feature_drift_score",
    "model_feature_drift_detected",
    "model_prediction_drift_score",
    "model_prediction_drift_detected",
    "model_multivariate_drift_reconstruction_error",
    "model_multivariate_drift_lower_threshold",
    "model_multivariate_drift_upper_threshold",
    "model_multivariate_drift_detected",
    "model_segment_drift_share",
    "model_segment_drift_detected",
    "model_performance",
    "model_estimated_performance",
    "model_estimated_performance_lower_threshold",
    "model_estimated_performance_upper_threshold",
    "model_estimated_performance_alert",
    "drift_detector_window_samples",
    "drift_detector_events_total",
    "drift_detector_data_quality_violations_total",
    "drift_detector_checks_total",
    "drift_detector_check_duration_seconds",
    "drift_detector_last_check_timestamp_seconds",
    "drift_detector_storage_ok",
    "drift_detector_storage_errors_total",
    "drift_detector_storage_refused_records_total",
    "drift_detector_wal_replay_degraded",
    "drift_detector_wal_corrupt_records_total",
    "drift_detector_wal_corrupt_bytes_total",
}
KSERVE = {f"request_{stage}_seconds" for stage in ("preprocess", "predict", "postprocess", "explain")}
KUBE_STATE_METRICS = {
    "kube_job_status_active",
    "kube_job_status_failed",
    "kube_job_status_succeeded",
    "kube_job_status_start_time",
    "kube_job_status_completion_time",
}
PROMETHEUS = {"up", "process_start_time_seconds", "ALERTS"}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
FUNCTIONS_AND_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def variable_selectors(dashboard: dict) -> list[tuple[str, str]]:
    """The series selector inside each label_values(<selector>, label) variable query."""
    out = []
    for var in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", var.get("definition", ""))
        if match:
            out.append((f"variable {var['name']}", match.group(1)))
    return out


def rule_expressions() -> list[tuple[str, str]]:
    docs = render_chart(
        set_values={
            "retrainer.enabled": True,
            "retrainer.job.image": "registry.example.test/t:1",
            "retrainer.prometheus.url": "http://prometheus-operated.monitoring.svc:9090",
        }
    )
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    return [
        (f"rule {r.get('alert') or r.get('record')}", r["expr"])
        for g in rule["spec"]["groups"]
        for r in g["rules"]
    ]


def all_expressions() -> list[tuple[str, str]]:
    out = []
    for path in dashboard_files():
        dashboard = load(path)
        out += [(f"{path.name}: {w}", substitute(e)) for w, e in expressions(dashboard)]
        out += [(f"{path.name}: {w}", substitute(e)) for w, e in variable_selectors(dashboard)]
    return out + rule_expressions()


@pytest.fixture(scope="module")
def every_expression() -> list[tuple[str, str]]:
    return all_expressions()


def test_every_expression_parses_with_promtool(every_expression, tmp_path):
    """Each expression becomes a recording rule; `promtool check rules` parses them all with the real
    PromQL parser and names the rule of any expression that does not parse."""
    rules = [{"record": f"expr_{i}", "expr": expr} for i, (_, expr) in enumerate(every_expression)]
    path = tmp_path / "expressions.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "all", "rules": rules}]}))
    out = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    index = "\n".join(f"expr_{i}: {where}" for i, (where, _) in enumerate(every_expression))
    assert out.returncode == 0, f"{out.stdout}{out.stderr}\n{index}"
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


def test_the_parse_check_can_fail(tmp_path):
    """Guard: promtool rejects a broken expression, so the check above is a real one."""
    path = tmp_path / "broken.yaml"
    bad = "histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m]))"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "r", "expr": bad}]}]}))
    out = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode != 0


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", expr))
    names |= set(re.findall(r'__name__=~"([^"]+)"', expr)[0].split("|")) if "__name__=~" in expr else set()
    return {n for n in names if n not in FUNCTIONS_AND_KEYWORDS and n != "__name__"}


def known_metric(name: str, recorded: set[str]) -> bool:
    if name in recorded or name in PROMETHEUS or name in KUBE_STATE_METRICS:
        return True
    families = PREDICTOR | DRIFT_DETECTOR | KSERVE
    return name in families or any(name.removesuffix(s) in families for s in HISTOGRAM_SUFFIXES)


def test_expressions_only_name_known_metrics(every_expression):
    recorded = {w.removeprefix("rule ") for w, _ in every_expression if w.startswith("rule ") and ":" in w}
    for where, expr in every_expression:
        for name in metric_names(expr):
            assert known_metric(name, recorded), f"{where}: unknown metric {name}"


def exported_names(package_dir: Path) -> str:
    return "\n".join(p.read_text() for p in package_dir.rglob("*.py"))


@pytest.mark.parametrize(
    ("image", "family"),
    [("predictor/src/monitored_predictor", PREDICTOR), ("drift-detector/src/drift_detector", DRIFT_DETECTOR)],
)
def test_images_export_the_metrics_dashboards_and_rules_read(image, family, every_expression):
    """prometheus_client appends _total to counters; the source names them without it."""
    source = exported_names(REPO / "images" / image)
    used = {n for _, e in every_expression for n in metric_names(e)}
    for metric in sorted(family):
        base = metric.removesuffix("_total")
        if metric in used or any(metric + s in used for s in HISTOGRAM_SUFFIXES):
            assert f'"{base}"' in source, f"images/{image} does not export {metric}"


def test_rendered_configmaps_hold_the_dashboards_verbatim():
    docs = render_chart(
        set_values={"grafanaDashboards.enabled": True}, show_only="templates/grafana/dashboards.yaml"
    )
    rendered = {k: json.loads(v) for d in docs for k, v in d["data"].items()}
    assert rendered == {p.name: load(p) for p in dashboard_files()}
