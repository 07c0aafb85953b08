"""Unit tests of the metric arithmetic, on an isolated CollectorRegistry."""

from __future__ import annotations

import numpy as np
import pytest
from monitored_predictor.monitoring import FOLD_EVERY, BatchHistogram, FeatureMeans, PredictorMetrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def reference_ewma(rows: np.ndarray, half_life: float) -> np.ndarray:
    """The documented definition, written the slow way: weight 0.5 ** (age / half_life)."""
    ages = np.arange(len(rows) - 1, -1, -1)
    weights = 0.5 ** (ages / half_life)
    return (weights[:, None] * rows).sum(axis=0) / weights.sum()


def test_feature_means_match_the_definition_across_batches():
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(57, 4))
    means = FeatureMeans(4, half_life=5)
    for chunk in np.split(rows, [1, 8, 9, 40]):
        means.update(chunk, all_finite=True)
    np.testing.assert_allclose(means.means(), reference_ewma(rows, 5), rtol=1e-12)


def test_feature_mean_half_life_weighs_older_instance_half():
    means = FeatureMeans(1, half_life=1)
    means.update(np.array([[0.0]]), True)
    means.update(np.array([[3.0]]), True)
    # weights 0.5 (older) and 1 (newer): (0 * 0.5 + 3 * 1) / 1.5
    assert means.means()[0] == pytest.approx(2.0)


def test_feature_means_skip_missing_values_per_feature():
    means = FeatureMeans(2, half_life=1e12)  # practically a plain mean
    means.update(np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 8.0]]), all_finite=False)
    np.testing.assert_allclose(means.means(), [2.0, 6.0])


def test_feature_means_before_any_instance_are_nan():
    assert np.isnan(FeatureMeans(2, 10).means()).all()


def test_histogram_buckets_are_inclusive_and_cumulative():
    hist = BatchHistogram([0.5, 0.25, 1.0])
    hist.observe_many(np.array([0.25, 0.3, 1.0, 7.0, 0.0]))
    assert hist.buckets() == [("0.25", 2), ("0.5", 3), ("1.0", 4), ("+Inf", 5)]
    assert hist.total == pytest.approx(8.55)


def test_histogram_needs_a_finite_bound():
    with pytest.raises(ValueError):
        BatchHistogram([float("inf")])


def scrape(registry) -> dict:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_predictor_metrics_exposition_is_exact_at_every_scrape():
    registry = CollectorRegistry()
    metrics = PredictorMetrics("m", ["a", "b", "c"], np.array([True, False, True]), [0.5, 1.0], 2, registry)
    features = np.array([[1.0, "x", 2.0], [3.0, "y", 4.0]], dtype=object)
    metrics.record_batch(features, np.array([0.2, 0.9]), all_finite=True)
    got = scrape(registry)
    assert got[("model_predictions_total", (("model_name", "m"),))] == 2
    assert got[("model_prediction_distribution_bucket", (("le", "0.5"), ("model_name", "m")))] == 1
    assert got[("model_prediction_distribution_bucket", (("le", "+Inf"), ("model_name", "m")))] == 2
    assert got[("model_prediction_distribution_sum", (("model_name", "m"),))] == pytest.approx(1.1)
    # categorical "b" has no mean; numeric ones follow the half-life definition
    expected = reference_ewma(np.array([[1.0, 2.0], [3.0, 4.0]]), 2)
    mean_of = {dict(k[1])["feature_name"]: v for k, v in got.items() if k[0] == "model_feature_mean"}
    assert mean_of == {"a": pytest.approx(expected[0]), "c": pytest.approx(expected[1])}


def test_pending_batches_fold_in_order_without_a_scrape():
    registry = CollectorRegistry()
    metrics = PredictorMetrics("m", ["a"], np.array([True]), [0.5], 3, registry)
    values = np.arange(FOLD_EVERY * 2 + 5, dtype=float)
    for v in values:
        metrics.record_batch(np.array([[v]]), np.array([0.1]), all_finite=True)
    assert len(metrics._pending) == 5  # two folds already happened on the request path
    got = scrape(registry)
    assert got[("model_feature_mean", (("feature_name", "a"), ("model_name", "m")))] == pytest.approx(
        reference_ewma(values[:, None], 3)[0], rel=1e-12
    )
    assert got[("model_prediction_distribution_count", (("model_name", "m"),))] == len(values)


def test_errors_are_pre_created_and_unknown_reasons_fall_back():
    registry = CollectorRegistry()
    metrics = PredictorMetrics("m", ["a"], np.array([True]), [0.5], 3, registry)
    metrics.record_error("not_a_reason")
    got = scrape(registry)
    assert got[("model_prediction_errors_total", (("model_name", "m"), ("reason", "internal_error")))] == 1
    assert got[("model_prediction_errors_total", (("model_name", "m"), ("reason", "empty_batch")))] == 0


def test_non_finite_predictions_stay_out_of_the_distribution():
    registry = CollectorRegistry()
    metrics = PredictorMetrics("m", ["a"], np.array([True]), [0.5], 3, registry)
    metrics.record_batch(np.array([[1.0], [2.0], [3.0]]), np.array([0.25, np.nan, np.inf]), all_finite=True)
    got = scrape(registry)
    assert got[("model_prediction_distribution_count", (("model_name", "m"),))] == 1
    assert got[("model_prediction_distribution_sum", (("model_name", "m"),))] == 0.25
    assert got[("model_predictions_total", (("model_name", "m"),))] == 3
