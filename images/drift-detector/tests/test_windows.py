"""Windows close, get checked by the engine, and show up in the API, the metrics and Evidently reports."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from conftest import FEATURES, make_reference, sample_rows
from drift_detector.stats import ReferenceProfile, infer_column_specs

WINDOW = 100


def expected(rows: list[dict], column: str | None = None):
    """The engine's own verdict on the same rows, computed here independently of the service."""
    reference = make_reference()
    specs = infer_column_specs(reference)
    if column is None:
        specs = {k: v for k, v in specs.items() if k in FEATURES}
        frame = pd.DataFrame(rows)[FEATURES]
    else:
        specs = {column: specs[column]}
        frame = pd.DataFrame({column: [r[column] for r in rows]})
    return ReferenceProfile.build(reference, specs).check(frame)


def send_window(server, rows: list[dict]) -> None:
    for i in range(0, len(rows), 10):
        chunk = rows[i : i + 10]
        instances = [[r["f_a"], r["f_b"], r["color"]] for r in chunk]
        server.send_pair(instances, [r["prediction"] for r in chunk])


def with_predictions(rows: list[dict]) -> list[dict]:
    return [{**r, "prediction": float(1 / (1 + np.exp(-r["f_a"])))} for r in rows]


def test_windows_checks_api_metrics_and_reports(make_server):
    config = {"report_every_n_windows": 0, "reports_max_count": 1, "reports_min_interval_seconds": 0}
    server = make_server(config, window_size=WINDOW, min_samples=WINDOW).start()
    assert server.client.get("/api/v1/drift").status_code == 404

    clean = with_predictions(sample_rows(WINDOW, seed=1))
    send_window(server, clean)
    result = server.wait_for(lambda: _latest(server, 1), what="first check")
    want = expected(clean)
    assert result["dataset_drift"] is want.dataset_drift is False
    assert result["drift_share"] == pytest.approx(want.drift_share)
    assert result["window"]["rows"] == WINDOW and result["window"]["predictions"] == WINDOW
    for got, col in zip(result["columns"], want.columns, strict=True):
        assert (got["name"], got["stattest"], got["drifted"]) == (col.name, col.stattest, col.drifted)
        assert got["score"] == pytest.approx(col.score, rel=1e-12)
        assert server.metric("model_feature_drift_score", feature_name=col.name, stattest=col.stattest) == (
            pytest.approx(col.score, rel=1e-12)
        )
    want_pred = expected(clean, "prediction").columns[0]
    assert result["prediction_drift"]["score"] == pytest.approx(want_pred.score, rel=1e-12)
    assert server.metric("model_prediction_drift_score") == pytest.approx(want_pred.score, rel=1e-12)
    assert server.metric("model_prediction_drift_detected") == int(want_pred.drifted)
    assert server.metric("model_drift_detected") == 0
    assert server.metric("drift_detector_checks_total") == 1
    assert server.metric("drift_detector_last_check_timestamp_seconds") > 0
    assert "report" not in result  # no drift and no periodic report

    drifted = with_predictions(sample_rows(WINDOW, seed=2, shift=3.0))
    send_window(server, drifted)
    result = server.wait_for(lambda: _latest(server, 2), what="second check")
    want = expected(drifted)
    assert result["dataset_drift"] is want.dataset_drift is True
    assert server.metric("model_drift_detected") == 1
    assert server.metric("model_drift_score") == pytest.approx(want.drift_share)
    for col in want.columns:
        assert server.metric("model_feature_drift_detected", feature_name=col.name) == int(col.drifted)
    history = server.client.get("/api/v1/drift/history?limit=5").json()["results"]
    assert [h["window"]["seq"] for h in history] == [2, 1]  # newest first
    assert len(server.client.get("/api/v1/drift/history?limit=1").json()["results"]) == 1

    # Drift makes an Evidently report (in the report process); the listing links it.
    name = result["report"]
    server.wait_for(lambda: name in server.client.get("/reports/").text, timeout=120, what="Evidently report")
    page = server.client.get(f"/reports/{name}")
    assert page.status_code == 200
    assert "Drifted Columns" in page.text and '"f_a"' in page.text  # Evidently's drift widgets, our columns
    assert server.client.get("/reports/../data/wal").status_code == 404

    # A second drifted window: its report replaces the first (reports_max_count: 1).
    send_window(server, with_predictions(sample_rows(WINDOW, seed=3, shift=3.0)))
    second = server.wait_for(lambda: _latest(server, 3), what="third check")["report"]
    server.wait_for(lambda: second in server.client.get("/reports/").text, timeout=120, what="second report")
    server.wait_for(lambda: name not in server.client.get("/reports/").text, what="retention of the first")
    assert len(list(server.reports_dir.glob("*.html"))) == 1

    # The history survives a restart.
    server.stop()
    again = make_server(config, window_size=WINDOW, min_samples=WINDOW).start()
    assert again.client.get("/api/v1/drift").json()["window"]["seq"] == 3

    if shutil.which("promtool"):  # the real exposition passes Prometheus' own linter
        text = again.client.get("/metrics").text
        proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _latest(server, seq: int) -> dict | None:
    r = server.client.get("/api/v1/drift")
    if r.status_code == 200 and r.json()["window"]["seq"] >= seq:
        body = r.json()
        return body if body["window"]["seq"] == seq else None
    return None


def test_model_performance_from_feedback(make_server):
    from sklearn import metrics as skm

    config = {"reports_enabled": False, "performance_min_samples": 30}
    server = make_server(config, window_size=1000, min_samples=100).start()
    rng = np.random.default_rng(5)
    scores = rng.uniform(size=60).round(3)
    labels = (rng.uniform(size=60) < scores).astype(int)
    ids = []
    for i in range(0, 60, 2):
        instances = [[0.1, 1.0, "red"], [0.2, 2.0, "blue"]]
        ids.append(server.send_pair(instances, [float(scores[i]), float(scores[i + 1])]))
    feedback = [{"id": ids[k], "label": [int(labels[2 * k]), int(labels[2 * k + 1])]} for k in range(30)]
    assert server.client.post("/v1/feedback", json=feedback).json() == {
        "matched": 30,
        "unknown": 0,
        "duplicates": 0,
    }
    server.wait_for(
        lambda: server.metric("model_performance", metric="roc_auc") > 0, what="performance gauges"
    )
    predicted = (scores >= 0.5).astype(int)
    assert server.metric("model_performance", metric="roc_auc") == pytest.approx(
        skm.roc_auc_score(labels, scores)
    )
    assert server.metric("model_performance", metric="accuracy") == pytest.approx(
        skm.accuracy_score(labels, predicted)
    )
    assert server.metric("model_performance", metric="f1") == pytest.approx(skm.f1_score(labels, predicted))
    assert server.metric("model_performance", metric="precision") == pytest.approx(
        skm.precision_score(labels, predicted)
    )
    assert server.metric("model_performance", metric="recall") == pytest.approx(
        skm.recall_score(labels, predicted)
    )
    # The same id again is unknown now: each prediction takes one label.
    assert server.client.post("/v1/feedback", json=feedback[:1]).json() == {
        "matched": 0,
        "unknown": 1,
        "duplicates": 0,
    }


def test_large_ingest_batches_split_into_windows_and_age_closes_a_window(make_server):
    config = {"reports_enabled": False, "window_max_age_seconds": 1.0}
    server = make_server(config, window_size=200, min_samples=100).start()
    rows = [{**r, "prediction": 0.5} for r in sample_rows(450, seed=4)]
    assert server.client.post("/v1/ingest", json={"rows": rows}).json() == {"accepted": 450}
    server.wait_for(lambda: _latest(server, 2), what="two windows closed by count")
    history = server.client.get("/api/v1/drift/history?limit=10").json()["results"]
    assert [h["window"]["rows"] for h in history] == [200, 200]
    assert server.window()["rows"] == 50  # fewer than min_samples: age alone does not close it
    assert server.client.post("/v1/ingest", json=rows[:60]).status_code == 200
    aged = server.wait_for(lambda: _latest(server, 3), timeout=15, what="window closed by age")
    assert aged["window"]["rows"] == 110


def test_a_feature_missing_from_a_whole_window_leaves_the_others_checked(make_server):
    config = {"report_every_n_windows": 1, "reports_min_interval_seconds": 0}
    server = make_server(config, window_size=100, min_samples=100).start()
    rows = [{"f_a": r["f_a"], "color": r["color"]} for r in sample_rows(100, seed=6)]  # and no predictions
    assert server.client.post("/v1/ingest", json=rows).status_code == 200
    result = server.wait_for(lambda: _latest(server, 1), what="check without f_b")
    assert result["unchecked_columns"] == ["f_b"]
    assert [c["name"] for c in result["columns"]] == ["f_a", "color"]
    assert result["prediction_drift"] is None
    assert (
        server.metric(
            "drift_detector_data_quality_violations_total", feature_name="f_b", kind="missing_column"
        )
        == 100
    )
    name = result["report"]  # Evidently gets the same columns
    server.wait_for(
        lambda: name in server.client.get("/reports/").text, timeout=120, what="report without f_b"
    )
