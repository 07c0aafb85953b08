"""promtool on the rules rendered from the chart: they load, every suite passes, and every alert is
covered by a firing case at the `for` boundary and by a near miss, with labels and annotations asserted."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from conftest import alerts_of, promtool, render_rule, suites

SEVERITIES = {"critical", "warning", "info"}
NAME = re.compile(r"^KServeModel[A-Z][A-Za-z]+$")
RECORD = re.compile(r"^[a-z_]+:[a-z_]+:[a-z0-9_]+$")


def minutes(text: str) -> int:
    """promtool durations used here: Nm or Nh or NhMm."""
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?", str(text))
    assert m and text, f"unsupported duration {text!r}"
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def cases():
    """(suite, group, alert_rule_test) for every alert case of every suite."""
    for path in suites():
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                yield path, group, case


def test_promtool_check_rules(rules_dir):
    out = promtool("check", "rules", "rules.yaml", cwd=rules_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize("suite", [p.name for p in suites()])
def test_promtool_suite(rules_dir, suite):
    out = promtool("test", "rules", suite, cwd=rules_dir)
    assert out.returncode == 0, out.stdout + out.stderr


def test_alert_conventions(rule):
    alerts = alerts_of(rule["spec"])
    assert len(alerts) == 17
    for name, spec in alerts.items():
        assert NAME.match(name), name
        assert spec["labels"]["severity"] in SEVERITIES, name
        ann = spec["annotations"]
        assert ann["summary"].endswith(".") and "{{" not in ann["summary"], f"{name}: static summary"
        assert "{{" in ann["description"] or "churn" in ann["description"], f"{name}: names the model"
        assert ann["runbook_url"] == f"https://runbooks.example.test/kmm/{name}.md"
        assert re.fullmatch(r"\d+[mh]", spec["for"]), f"{name}: for {spec['for']!r}"


def test_recording_rule_names_and_histogram_quantiles(rule):
    records = [r for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r]
    assert records
    for r in records:
        assert RECORD.match(r["record"]), r["record"]
        if "histogram_quantile" in r["expr"]:
            # aggregate buckets over pods before the quantile, never a quantile of raw per-pod rates
            assert "sum by (le, namespace, model_name) (rate(" in r["expr"], r["expr"]


def test_every_expression_is_scoped_to_this_release(rule):
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            for selector in re.findall(r"\b(model_\w+|drift_detector_\w+)\{([^}]*)\}", r["expr"]):
                assert 'namespace="models", model_name="churn"' in selector[1], (r.get("alert"), selector)


def test_every_alert_fires_at_its_for_boundary_and_has_a_near_miss(rule):
    alerts = alerts_of(rule["spec"])
    firing, boundary, near_miss = set(), set(), set()
    for _, group, case in cases():
        name = case["alertname"]
        assert name in alerts, f"suite tests unknown alert {name}"
        evals = {
            c["eval_time"]: bool(c["exp_alerts"]) for c in group["alert_rule_test"] if c["alertname"] == name
        }
        if case["exp_alerts"]:
            firing.add(name)
            for exp in case["exp_alerts"]:
                assert exp["exp_labels"]["severity"] == alerts[name]["labels"]["severity"]
                assert set(exp["exp_annotations"]) >= {"summary", "description", "runbook_url"}
            before = f"{minutes(case['eval_time']) - 1}m"
            if evals.get(before) is False:
                boundary.add(name)
        elif "near miss" in group["name"] and not any(evals.values()):
            near_miss.add(name)
    assert set(alerts) - firing == set(), "alerts without a firing case"
    assert set(alerts) - boundary == set(), "alerts without a 'not firing one minute before' check"
    assert set(alerts) - near_miss == set(), "alerts without a near-miss group"


def test_firing_cases_start_exactly_for_before_they_fire(rule, rules_dir):
    """With every `for` set to 0, each firing case's condition must hold at T - for and not a minute
    earlier: the suites' T is then exactly the moment `for` has elapsed, not just some later time."""
    alerts = alerts_of(rule["spec"])
    spec = copy.deepcopy(rule["spec"])
    for group in spec["groups"]:
        for r in group["rules"]:
            if "alert" in r:
                r["for"] = "0s"
    (rules_dir / "rules_for0.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    tests = []
    for _, group, case in cases():
        if not case["exp_alerts"]:
            continue
        name = case["alertname"]
        onset = minutes(case["eval_time"]) - minutes(alerts[name]["for"])
        exprs = []
        for exp in case["exp_alerts"]:
            labels = {**exp["exp_labels"], "alertname": name, "alertstate": "firing"}
            selector = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            exprs.append(
                {
                    "expr": f"ALERTS{{{selector}}}",
                    "eval_time": f"{onset}m",
                    "exp_samples": [{"labels": f"ALERTS{{{selector}}}", "value": 1}],
                }
            )
        if onset > 0:
            quiet = f'ALERTS{{alertname="{name}"}}'
            exprs.append({"expr": quiet, "eval_time": f"{onset - 1}m", "exp_samples": []})
        tests.append(
            {
                "name": f"onset of {group['name']}",
                "interval": group["interval"],
                "input_series": group["input_series"],
                "promql_expr_test": exprs,
            }
        )
    suite = {"rule_files": ["rules_for0.yaml"], "evaluation_interval": "1m", "tests": tests}
    (rules_dir / "onset.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    out = promtool("test", "rules", "onset.yaml", cwd=rules_dir)
    assert out.returncode == 0, out.stdout + out.stderr


def test_overrides_from_values():
    """for, severity, thresholds, on/off and extra labels come from values; short `for` for tests."""
    spec = render_rule(
        {
            "prometheusRule.rules.KServeModelLatencyHigh": {
                "for": "1m",
                "severity": "critical",
                "threshold": 2,
            },
            "prometheusRule.rules.KServeModelQualityLow": {
                "metric": "rmse",
                "threshold": 3.5,
                "labels": {"page": "x"},
            },
            "prometheusRule.rules.KServeModelTrafficStopped": {"enabled": False},
            "prometheusRule.additionalRuleLabels": {"team": "ml"},
            "prometheusRule.interval": "30s",
        }
    )["spec"]
    alerts = alerts_of(spec)
    latency = alerts["KServeModelLatencyHigh"]
    assert (latency["for"], latency["labels"]["severity"]) == ("1m", "critical")
    assert latency["expr"].endswith("> 2")
    quality = alerts["KServeModelQualityLow"]
    assert 'metric="rmse"' in quality["expr"] and quality["expr"].endswith("> 3.5"), "rmse: higher is worse"
    assert quality["labels"]["page"] == "x"
    assert "KServeModelTrafficStopped" not in alerts
    assert all(a["labels"]["team"] == "ml" for a in alerts.values())
    assert {g["interval"] for g in spec["groups"]} == {"30s"}


def test_values_defaults_match_template_defaults(rule):
    """values.yaml lists every alert's defaults; the template's own fallbacks (used when a user nulls
    the map) must be the same, so documentation and behaviour cannot drift apart."""
    assert render_rule({"prometheusRule.rules": None})["spec"] == rule["spec"]


def test_components_switch_their_alerts_off():
    off = {"driftDetector.enabled": False, "predictor.logger.enabled": False, "retrainer.enabled": False}
    alerts = alerts_of(render_rule(off)["spec"])
    assert "KServeModelDriftDetectorDown" not in alerts, "no absent() alert for an undeployed detector"
    assert "KServeModelRetrainJobFailed" not in alerts
    assert "KServeModelLatencyHigh" in alerts


def test_a_group_whose_alerts_are_all_off_is_left_out(tmp_path):
    """Prometheus needs at least one rule per group: switching every alert of a group off drops it."""
    drift = (
        "KServeModelDataDriftDetected",
        "KServeModelDriftShareCritical",
        "KServeModelMultivariateDrift",
        "KServeModelSegmentDrift",
        "KServeModelPredictionDrift",
        "KServeModelEstimatedPerformanceLow",
    )
    off = {f"prometheusRule.rules.{name}.enabled": False for name in (*drift, "KServeModelQualityLow")}
    off["prometheusRule.rules.KServeModelRetrainJobFailed.enabled"] = False
    spec = render_rule(off)["spec"]
    names = [g["name"] for g in spec["groups"]]
    assert names == ["kserve-model-monitoring.predictor", "kserve-model-monitoring.drift-detector"]
    assert all(g["rules"] for g in spec["groups"])
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    out = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
