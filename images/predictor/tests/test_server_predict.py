"""Real server, real HTTP: v1 and v2 predictions, request ids, readiness, and the metrics they move."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import sample
from monitored_predictor.inputs import ERROR_REASONS
from monitored_predictor.monitoring import PROBABILITY_BUCKETS


def rows(holdout, n, start=0):
    return holdout.drop(columns="target").iloc[start : start + n]


def expected_scores(estimator, frame):
    return estimator.predict_proba(frame.to_numpy())[:, 1]


def test_v1_lists_return_positive_class_scores(predictor, holdout, demo_estimator):
    batch = rows(holdout, 3)
    response = predictor.v1({"instances": batch.to_numpy().tolist()})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == pytest.approx(
        expected_scores(demo_estimator, batch).tolist(), abs=1e-12
    )


def test_v1_keyed_objects_in_any_key_order(predictor, holdout, demo_estimator):
    batch = rows(holdout, 2, start=10)
    instances = [dict(reversed(list(r.items()))) for r in batch.to_dict(orient="records")]
    response = predictor.v1({"instances": instances})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == pytest.approx(
        expected_scores(demo_estimator, batch).tolist(), abs=1e-12
    )


def test_v2_one_matrix_tensor(predictor, holdout, demo_estimator):
    batch = rows(holdout, 4, start=20)
    body = {
        "id": "req-42",
        "inputs": [
            {
                "name": "input-0",
                "shape": list(batch.shape),
                "datatype": "FP64",
                "data": batch.to_numpy().tolist(),
            }
        ],
    }
    response = predictor.v2(body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["id"] == "req-42"
    assert payload["model_name"] == "demo"
    (output,) = payload["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("predictions", "FP64", [4])
    assert output["data"] == pytest.approx(expected_scores(demo_estimator, batch).tolist(), abs=1e-12)


def test_v2_flat_data_for_matrix_tensor(predictor, holdout, demo_estimator):
    batch = rows(holdout, 2, start=30)
    body = {
        "inputs": [
            {"name": "x", "shape": [2, 30], "datatype": "FP32", "data": batch.to_numpy().ravel().tolist()}
        ]
    }
    response = predictor.v2(body)
    assert response.status_code == 200, response.text
    # JSON numbers are read as float64 whatever the declared width: no precision is thrown away
    expected = expected_scores(demo_estimator, batch)
    assert response.json()["outputs"][0]["data"] == pytest.approx(expected.tolist(), abs=1e-12)


def test_v2_one_tensor_per_feature(predictor, holdout, demo_estimator, feature_names):
    batch = rows(holdout, 3, start=40)
    inputs = [
        {"name": name, "shape": [3], "datatype": "FP64", "data": batch[name].tolist()}
        for name in reversed(feature_names)
    ]
    response = predictor.v2({"inputs": inputs})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == pytest.approx(
        expected_scores(demo_estimator, batch).tolist(), abs=1e-12
    )
    assert response.json()["id"] == response.headers["x-request-id"]


def test_request_id_is_honoured_then_ce_id_then_generated(predictor, holdout):
    body = {"instances": rows(holdout, 1).to_numpy().tolist()}
    assert predictor.v1(body, {"x-request-id": "abc-1"}).headers["x-request-id"] == "abc-1"
    assert predictor.v1(body, {"ce-id": "ce-7"}).headers["x-request-id"] == "ce-7"
    both = predictor.v1(body, {"x-request-id": "wins", "ce-id": "loses"})
    assert both.headers["x-request-id"] == "wins"
    generated = {predictor.v1(body).headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3 and all(len(g) == 32 for g in generated)
    # errors carry the id too, so a client can report which request failed
    assert predictor.v1({"instances": []}, {"x-request-id": "bad-1"}).headers["x-request-id"] == "bad-1"


def test_readiness_and_model_metadata(predictor):
    assert predictor.client.get("/v2/health/ready").json() == {"ready": True}
    assert predictor.client.get("/v1/models/demo").json() == {"name": "demo", "ready": True}
    assert predictor.client.get("/v2/models/demo/ready").status_code == 200


def test_success_moves_exactly_the_model_metrics(predictor, holdout, demo_estimator, feature_names):
    batch = rows(holdout, 5, start=50)
    before = predictor.metrics()
    response = predictor.v1({"instances": batch.to_numpy().tolist()})
    assert response.status_code == 200
    after = predictor.metrics()

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    scores = expected_scores(demo_estimator, batch)
    assert delta("model_predictions_total", model_name="demo") == 5
    assert delta("model_prediction_latency_seconds_count", model_name="demo") == 1
    assert delta("model_prediction_distribution_count", model_name="demo") == 5
    assert delta("model_prediction_distribution_sum", model_name="demo") == pytest.approx(
        scores.sum(), abs=1e-9
    )
    for bound in PROBABILITY_BUCKETS:
        le = str(bound)
        assert delta("model_prediction_distribution_bucket", model_name="demo", le=le) == int(
            (scores <= bound).sum()
        )
    for reason in ERROR_REASONS:
        assert delta("model_prediction_errors_total", model_name="demo", reason=reason) == 0
    # KServe's own histograms are still there and counted this request
    for stage in ("preprocess", "predict", "postprocess"):
        assert delta(f"request_{stage}_seconds_count", model_name="demo") == 1
    # one mean per schema feature, nothing else
    means = {dict(k[1])["feature_name"] for k in after if k[0] == "model_feature_mean"}
    assert means == set(feature_names)


def test_every_series_has_model_name_and_none_has_namespace(predictor, holdout):
    predictor.v1({"instances": rows(holdout, 1).to_numpy().tolist()})
    for name, labels in predictor.metrics():
        if name.startswith("model_"):
            keys = dict(labels)
            assert keys.get("model_name") == "demo", name
            assert "namespace" not in keys, name


def test_http_host_binds_only_the_given_address(predictor):
    """KServe always binds 0.0.0.0; --http_host 127.0.0.1 must leave only a loopback listener."""
    listeners = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port = local.split(":")
        if state == "0A" and int(port, 16) == predictor.port:  # 0A: LISTEN
            listeners.append(address)
    assert listeners == ["0100007F"]  # 127.0.0.1, little-endian hex


def test_serving_does_not_log_a_deprecation_warning_per_request(predictor, holdout, feature_names):
    # KServe's ORJSONResponse trips a FastAPI deprecation warning that would otherwise repeat per request.
    rows = holdout[feature_names].to_numpy().tolist()
    for row in rows[:20]:
        assert predictor.v1({"instances": [row]}).status_code == 200
    assert "ORJSONResponse is deprecated" not in predictor.output()
