"""Performance estimation without labels (CBPE): the estimator's rules, and the service carrying the
estimates, their thresholds and the realized values from feedback into the results and the metrics.
Parity with NannyML itself is in test_cbpe_parity.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_reference
from drift_detector.config import load_settings
from drift_detector.report_worker import with_estimated_performance_section
from drift_detector.stats import DriftInputError
from drift_detector.stats.cbpe import METRICS, PerformanceEstimator

WINDOW = 100
FLAT = dict.fromkeys(METRICS, (0.0, 1.0))  # thresholds that never alert


# --- the estimator ----------------------------------------------------------------------------------
def test_estimates_come_from_the_expected_confusion_matrix():
    model = PerformanceEstimator(None, 0.5, FLAT, {})
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    # Predicted positive: 0.9, 0.8 -> TP 1.7, FP 0.3. Predicted negative: 0.3, 0.1 -> FN 0.4, TN 1.6.
    got = {name: e.value for name, e in model.estimate(scores).items()}
    assert got["accuracy"] == pytest.approx((1.7 + 1.6) / 4)
    assert got["precision"] == pytest.approx(1.7 / 2.0)
    assert got["recall"] == pytest.approx(1.7 / 2.1)
    assert got["f1"] == pytest.approx(1.7 / (1.7 + 0.35))


def test_rows_without_a_score_are_left_out_and_an_unscored_window_has_no_value():
    model = PerformanceEstimator(None, 0.5, FLAT, {})
    with_gap = model.estimate(np.array([0.9, np.nan, 0.2]))
    assert with_gap["accuracy"].value == pytest.approx((0.9 + 0.8) / 2)
    empty = model.estimate(np.array([np.nan, np.nan]))
    assert all(e.value is None and e.alert is False for e in empty.values())


def test_thresholds_are_realized_chunk_values_plus_minus_three_stds_clipped_to_0_1():
    scores, y_true = labelled(2000, seed=0)
    model = PerformanceEstimator.fit(scores, y_true, 200)
    for name in METRICS:
        values = model.reference_chunk_values[name]
        assert len(values) == 10
        mean, spread = np.nanmean(values), 3 * np.nanstd(values)
        assert model.thresholds[name] == pytest.approx((max(mean - spread, 0.0), min(mean + spread, 1.0)))
    assert model.thresholds["accuracy"][1] <= 1.0


def test_an_estimate_outside_the_thresholds_alerts():
    scores, y_true = labelled(2000, seed=0)
    model = PerformanceEstimator.fit(scores, y_true, 200)
    clean, _ = labelled(200, seed=1)
    assert not model.estimate(clean)["accuracy"].alert
    uncertain = 0.5 + (clean - 0.5) * 0.05  # every score close to the decision threshold
    estimate = model.estimate(uncertain)["accuracy"]
    assert estimate.alert and estimate.value < estimate.lower_threshold


def test_scores_that_separate_the_classes_are_not_calibrated():
    y_true = np.arange(400) % 2 == 0
    scores = np.where(y_true, 0.6, 0.4) + np.linspace(0, 0.01, 400)  # AUC 1, far from calibrated
    assert not PerformanceEstimator.fit(scores, y_true, 100).calibrated


@pytest.mark.parametrize(
    ("rows", "chunk", "message"),
    [(150, 100, "at least two reference chunks"), (300, 0, "at least two reference chunks")],
)
def test_fit_refuses_what_it_cannot_fit_on(rows, chunk, message):
    scores, y_true = labelled(rows, seed=0)
    with pytest.raises(DriftInputError, match=message):
        PerformanceEstimator.fit(scores, y_true, chunk)


def labelled(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores: each row is positive with the chance its score says."""
    rng = np.random.default_rng(seed)
    scores = 1 / (1 + np.exp(-rng.normal(0.0, 2.0, n)))
    return scores, rng.uniform(size=n) < scores


def test_settings_default_on(tmp_path):
    (tmp_path / "c.yaml").write_text("performance_estimation_enabled: false\n")
    assert load_settings(["--reference", "r.parquet"], environ={}).performance_estimation_enabled is True
    off = load_settings(["--reference", "r.parquet", "--config", str(tmp_path / "c.yaml")], environ={})
    assert off.performance_estimation_enabled is False


def test_report_section_lists_each_metric_with_its_thresholds_and_realized_value():
    estimated = {
        "method": "cbpe",
        "calibrated": True,
        "n_scored": 100,
        "metrics": {
            "accuracy": {"value": 0.71234, "lower_threshold": 0.9, "upper_threshold": 1.0, "alert": True,
                         "realized": 0.69},
            "roc_auc": {"value": None, "lower_threshold": 0.8, "upper_threshold": 1.0, "alert": False},
        },
    }  # fmt: skip
    page = with_estimated_performance_section("<html><body><div>evidently</div></body></html>", estimated)
    assert page.index('<section id="estimated-performance"') == page.index("<body>") + len("<body>")
    assert "<td>accuracy</td><td>0.7123</td><td>0.9000 .. 1.0000</td><td>yes</td><td>0.6900</td>" in page
    assert "<td>roc_auc</td><td>-</td><td>0.8000 .. 1.0000</td><td>no</td><td>-</td>" in page
    assert "isotonic-calibrated scores" in page and page.endswith("<div>evidently</div></body></html>")


# --- the service ----------------------------------------------------------------------------------
def ingest(server, frame: pd.DataFrame, prefix: str) -> None:
    rows = [
        {"f_a": r.f_a, "f_b": r.f_b, "color": r.color, "prediction": r.prediction, "id": f"{prefix}-{i}"}
        for i, r in enumerate(frame.itertuples())
    ]
    assert server.client.post("/v1/ingest", json={"rows": rows}).status_code == 200


def checked(server, seq: int) -> dict | None:
    r = server.client.get("/api/v1/drift")
    return r.json() if r.status_code == 200 and r.json()["window"]["seq"] == seq else None


def test_service_estimates_every_window_and_puts_the_realized_value_beside_it(make_server, reference_path):
    reference = pd.read_parquet(reference_path)
    model = PerformanceEstimator.fit(reference["prediction"], reference["target"] == 1, WINDOW)
    server = make_server(
        {"reports_enabled": False, "performance_min_samples": 50}, window_size=WINDOW, min_samples=WINDOW
    ).start()
    first = make_reference(n=WINDOW, seed=7)

    ingest(server, first, "a")
    result = server.wait_for(lambda: checked(server, 1), what="check of the first window")
    estimated = result["estimated_performance"]
    assert estimated["method"] == "cbpe" and estimated["calibrated"] == model.calibrated
    assert estimated["n_scored"] == WINDOW
    want = model.estimate(first["prediction"].to_numpy())
    for name in METRICS:
        got = estimated["metrics"][name]
        assert got["value"] == pytest.approx(want[name].value, rel=1e-12)
        assert (got["lower_threshold"], got["upper_threshold"]) == pytest.approx(model.thresholds[name])
        assert got["alert"] is want[name].alert
        assert "realized" not in got  # no label yet
        assert server.metric("model_estimated_performance", metric=name) == pytest.approx(want[name].value)
        assert server.metric("model_estimated_performance_lower_threshold", metric=name) == pytest.approx(
            model.thresholds[name][0]
        )

    labels = [{"id": f"a-{i}", "label": int(t)} for i, t in enumerate(first["target"])]
    assert server.client.post("/v1/feedback", json=labels).json()["matched"] == WINDOW
    ingest(server, make_reference(n=WINDOW, seed=8), "b")
    second = server.wait_for(lambda: checked(server, 2), what="check of the second window")
    realized = second["performance"]
    for name in METRICS:
        assert second["estimated_performance"]["metrics"][name]["realized"] == realized[name]


def test_service_without_a_binary_scored_reference_logs_why_and_has_no_series(make_server, tmp_path):
    multiclass = make_reference()
    multiclass["target"] = np.arange(len(multiclass)) % 3
    path = tmp_path / "multiclass.parquet"
    multiclass.to_parquet(path)
    server = make_server({"reports_enabled": False}, reference=path, window_size=WINDOW, min_samples=WINDOW)
    server.start()
    ingest(server, make_reference(n=WINDOW, seed=7), "a")
    result = server.wait_for(lambda: checked(server, 1), what="check of the window")
    assert result["estimated_performance"] is None
    assert "performance estimation is off: the target has 3 classes" in server.log()
    assert not any(k.startswith("model_estimated_performance") for k in server.metrics())
