"""Real servers with other models and settings: regression, categorical features, all class scores,
non-finite values let through, environment twins, and the feature means checked exactly over HTTP."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import Predictor, sample


@pytest.fixture(scope="module")
def regression_server(regression_model_dir):
    server = Predictor(regression_model_dir, "--prediction_buckets", "0,5,10", model_name="house").start()
    yield server
    server.stop()


def test_regression_returns_values_and_buckets_them(regression_server, regression_model_dir):
    estimator = joblib.load(regression_model_dir / "model.joblib")
    frame = pd.DataFrame([[1.0, 0.0, 2.0], [-3.0, 1.0, 0.0]], columns=["alpha", "beta", "gamma"])
    expected = estimator.predict(frame)
    response = regression_server.v1({"instances": frame.to_dict(orient="records")})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == pytest.approx(expected.tolist(), abs=1e-12)

    v2 = regression_server.v2(
        {"inputs": [{"name": n, "shape": [2], "datatype": "FP64", "data": frame[n].tolist()} for n in frame]}
    )
    assert v2.json()["outputs"][0]["data"] == pytest.approx(expected.tolist(), abs=1e-12)

    metrics = regression_server.metrics()
    # expected values are 6.0 and -4.0 (2a - b + c/2 + 3): one in (5, 10], one at or below 0, twice over
    assert expected == pytest.approx([6.0, -4.0])
    buckets = {le: sample(metrics, "model_prediction_distribution_bucket", model_name="house", le=le)
               for le in ("0.0", "5.0", "10.0", "+Inf")}  # fmt: skip
    assert buckets == {"0.0": 2, "5.0": 2, "10.0": 4, "+Inf": 4}
    assert sample(metrics, "model_predictions_total", model_name="house") == 4


def test_categorical_features_reach_the_pipeline(categorical_model_dir):
    estimator = joblib.load(categorical_model_dir / "model.joblib")
    frame = pd.DataFrame({"size": [0.5, -1.0], "segment": ["c", "a"]})
    server = Predictor(categorical_model_dir, model_name="segments").start()
    try:
        lists = server.v1({"instances": frame.to_numpy().tolist()})
        assert lists.status_code == 200, lists.text
        expected = estimator.predict_proba(frame)[:, 1].tolist()
        assert lists.json()["predictions"] == pytest.approx(expected, abs=1e-12)
        v2 = server.v2(
            {
                "inputs": [
                    {"name": "size", "shape": [2], "datatype": "FP64", "data": [0.5, -1.0]},
                    {"name": "segment", "shape": [2], "datatype": "BYTES", "data": ["c", "a"]},
                ]
            }
        )
        assert v2.status_code == 200, v2.text
        assert v2.json()["outputs"][0]["data"] == pytest.approx(expected, abs=1e-12)
        bad = server.v1({"instances": [["big", "a"]]})
        assert (bad.status_code, bad.json()["reason"]) == (400, "non_numeric")
        means = {dict(k[1])["feature_name"] for k in server.metrics() if k[0] == "model_feature_mean"}
        assert means == {"size"}  # only numeric features have a mean
    finally:
        server.stop()


def test_all_scores_non_finite_and_environment_twins(demo_model_dir, demo_estimator, holdout):
    """Settings from environment variables; NaN let through to a model that copes with it."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    features = holdout.drop(columns="target").to_numpy()
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(features, holdout["target"])
    model_dir = demo_model_dir.parent / "nan-tolerant"
    model_dir.mkdir(exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "schema.json").write_text((demo_model_dir / "schema.json").read_text())
    env = {"RETURN_ALL_SCORES": "true", "ALLOW_NON_FINITE": "true", "MAX_BATCH_SIZE": "2"}
    server = Predictor(model_dir, env=env).start()
    try:
        rows = features[:2].copy()
        rows[0, 3] = np.nan
        response = server.v1({"instances": [[None if np.isnan(v) else v for v in r] for r in rows.tolist()]})
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"], model.predict_proba(rows), atol=1e-12)
        # the NaN carries no weight in its feature's mean; the other feature means count both rows
        metrics = server.metrics()
        area = sample(metrics, "model_feature_mean", model_name="demo", feature_name="mean_area")
        radius = sample(metrics, "model_feature_mean", model_name="demo", feature_name="mean_radius")
        decay = 0.5 ** (1 / 1000)  # default half-life: 1000 instances
        assert area == pytest.approx(rows[1, 3], rel=1e-12)  # only the second row has a value
        assert radius == pytest.approx((decay * rows[0, 0] + rows[1, 0]) / (decay + 1), rel=1e-12)
        tensor = {"name": "x", "shape": [2, 30], "datatype": "FP64", "data": features[:2].tolist()}
        v2 = server.v2({"inputs": [tensor]})
        assert v2.json()["outputs"][0]["shape"] == [2, 2]
        assert server.v1({"instances": [features[0].tolist()] * 3}).json()["reason"] == "batch_too_large"
    finally:
        server.stop()


def test_feature_means_follow_the_half_life_over_http(demo_model_dir, holdout, feature_names):
    server = Predictor(demo_model_dir, "--feature_mean_half_life", "4").start()
    try:
        frame = holdout.drop(columns="target")
        sent = []
        for start, size in ((0, 1), (1, 7), (8, 1), (9, 20)):
            batch = frame.iloc[start : start + size].to_numpy()
            assert server.v1({"instances": batch.tolist()}).status_code == 200
            sent.append(batch)
        rows = np.concatenate(sent)
        weights = 0.5 ** (np.arange(len(rows) - 1, -1, -1) / 4)
        expected = weights @ rows / weights.sum()
        metrics = server.metrics()
        for i, name in enumerate(feature_names):
            got = sample(metrics, "model_feature_mean", model_name="demo", feature_name=name)
            assert got == pytest.approx(expected[i], rel=1e-12), name
        assert sample(metrics, "model_predictions_total", model_name="demo") == len(rows)
    finally:
        server.stop()
