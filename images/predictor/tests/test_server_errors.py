"""Every bad input over real HTTP: 400 with a JSON body naming the problem, counted once by reason."""

from __future__ import annotations

import pytest
from conftest import sample
from monitored_predictor.inputs import ERROR_REASONS

ROW = [1.0] * 30


def non_finite_body(literal: str) -> str:
    data = ", ".join([literal] + ["1"] * 29)
    return '{"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [' + data + "]}]}"


def named_row(feature_names, **overrides):
    row = dict.fromkeys(feature_names, 1.0)
    row.update(overrides)
    return row


def matrix_tensor(data, shape=None, datatype="FP64"):
    shape = shape or [len(data), len(data[0])]
    return {"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}]}


# (case id, protocol, body builder taking the feature names, reason, words the message must contain)
V1_CASES = [
    (
        "v1-malformed-json",
        "v1",
        lambda f: b'{"instances": [[1, 2]',
        "malformed_json",
        "Unrecognized request format",
    ),
    ("v1-bytes-not-json", "v1-text", lambda f: b"not json at all", "malformed_json", "not valid JSON"),
    ("v1-no-instances", "v1", lambda f: {"inputs": [ROW]}, "invalid_request", "'instances'"),
    ("v1-instances-not-list", "v1", lambda f: {"instances": {"a": 1}}, "invalid_request", "must be a list"),
    ("v1-empty", "v1", lambda f: {"instances": []}, "empty_batch", "no instances"),
    ("v1-too-large", "v1", lambda f: {"instances": [ROW] * 51}, "batch_too_large", "51 instances, max 50"),
    (
        "v1-short-row",
        "v1",
        lambda f: {"instances": [ROW[:29]]},
        "wrong_feature_count",
        "29 values, expected 30",
    ),
    ("v1-ragged", "v1", lambda f: {"instances": [ROW, ROW[:3]]}, "wrong_feature_count", "instance 1 has 3"),
    ("v1-scalars", "v1", lambda f: {"instances": [1.0, 2.0]}, "wrong_feature_count", "single numbers"),
    (
        "v1-string",
        "v1",
        lambda f: {"instances": [[*ROW[:4], "big", *ROW[5:]]]},
        "non_numeric",
        "'mean_smoothness'",
    ),
    ("v1-numeric-text", "v1", lambda f: {"instances": [["1.5", *ROW[1:]]]}, "non_numeric", "'1.5'"),
    ("v1-null", "v1", lambda f: {"instances": [[None, *ROW[1:]]]}, "non_finite", "'mean_radius' is nan"),
    (
        "v1-unknown-name",
        "v1",
        lambda f: {"instances": [named_row(f, colour=3.0)]},
        "unknown_feature",
        "['colour']",
    ),
    (
        "v1-missing-name",
        "v1",
        lambda f: {"instances": [{k: v for k, v in named_row(f).items() if k != "mean_area"}]},
        "missing_feature",
        "['mean_area']",
    ),
    (
        "v1-object-string",
        "v1",
        lambda f: {"instances": [named_row(f, mean_area="x")]},
        "non_numeric",
        "'mean_area'",
    ),
]
V2_CASES = [
    ("v2-malformed-json", "v2", lambda f: b'{"inputs": [', "malformed_json", "not valid JSON"),
    ("v2-not-oip", "v2", lambda f: {"instances": [ROW]}, "invalid_request", "inputs"),
    ("v2-no-tensors", "v2", lambda f: {"inputs": []}, "invalid_request", "at least one tensor"),
    (
        "v2-wrong-columns",
        "v2",
        lambda f: matrix_tensor([ROW[:5]]),
        "wrong_feature_count",
        "5 columns, expected 30",
    ),
    ("v2-empty", "v2", lambda f: matrix_tensor([], shape=[0, 30]), "empty_batch", "no instances"),
    ("v2-too-large", "v2", lambda f: matrix_tensor([ROW] * 51), "batch_too_large", "51 instances"),
    ("v2-shape-mismatch", "v2", lambda f: matrix_tensor([ROW], shape=[2, 30]), "invalid_request", "needs 60"),
    ("v2-bytes", "v2", lambda f: matrix_tensor([["a"] * 30], datatype="BYTES"), "non_numeric", "BYTES"),
    ("v2-string-in-fp64", "v2", lambda f: matrix_tensor([[*ROW[:29], "x"]]), "non_numeric", "'x'"),
    # NaN and Infinity are JSON extensions only the v2 route parses (KServe's v1 parser calls them malformed)
    ("v2-nan", "v2", lambda f: non_finite_body("NaN"), "non_finite", "'mean_radius' is nan"),
    ("v2-infinity", "v2", lambda f: non_finite_body("-Infinity"), "non_finite", "'mean_radius' is -inf"),
    (
        "v2-unknown-tensor",
        "v2",
        lambda f: {
            "inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [1.0]} for n in [*f, "extra"]]
        },
        "unknown_feature",
        "['extra']",
    ),
    (
        "v2-missing-tensor",
        "v2",
        lambda f: {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [1.0]} for n in f[1:]]},
        "missing_feature",
        "['mean_radius']",
    ),
    (
        "v2-unequal-tensors",
        "v2",
        lambda f: {
            "inputs": [
                {"name": n, "shape": [2 if i else 1], "datatype": "FP64", "data": [1.0] * (2 if i else 1)}
                for i, n in enumerate(f)
            ]
        },
        "invalid_request",
        "one shape",
    ),
    (
        "v2-unknown-output",
        "v2",
        lambda f: matrix_tensor([ROW]) | {"outputs": [{"name": "proba"}]},
        "invalid_request",
        "unknown output 'proba'",
    ),
]


def send(predictor, protocol, body):
    if protocol == "v1-text":
        return predictor.v1(body, {"content-type": "text/plain"})
    return predictor.v1(body) if protocol == "v1" else predictor.v2(body)


@pytest.mark.parametrize(("protocol", "build", "reason", "words"), [c[1:] for c in V1_CASES + V2_CASES],
                         ids=[c[0] for c in V1_CASES + V2_CASES])  # fmt: skip
def test_bad_input_is_400_named_and_counted_once(predictor, feature_names, protocol, build, reason, words):
    before = predictor.metrics()
    response = send(predictor, protocol, build(feature_names))
    after = predictor.metrics()

    assert response.status_code == 400, response.text
    body = response.json()
    assert words in body["error"], body
    if "reason" in body:  # KServe itself answers the v1 bodies that are not JSON at all
        assert body["reason"] == reason
    for other in ERROR_REASONS:
        change = sample(after, "model_prediction_errors_total", model_name="demo", reason=other) - sample(
            before, "model_prediction_errors_total", model_name="demo", reason=other
        )
        assert change == (1 if other == reason else 0), other
    assert sample(after, "model_predictions_total", model_name="demo") == sample(
        before, "model_predictions_total", model_name="demo"
    )
    # the server keeps serving
    assert predictor.v1({"instances": [ROW]}).status_code == 200


def test_model_error_is_500_counted_and_survived(demo_model_dir):
    """NaN passed through (--allow_non_finite) makes LogisticRegression itself fail: reason model_error."""
    from conftest import Predictor

    server = Predictor(demo_model_dir, "--allow_non_finite", "true").start()
    try:
        response = server.v1({"instances": [[None, *ROW[1:]]]})
        assert response.status_code == 500, response.text
        assert response.json()["reason"] == "model_error"
        assert "NaN" in response.json()["error"]
        metrics = server.metrics()
        assert sample(metrics, "model_prediction_errors_total", model_name="demo", reason="model_error") == 1
        assert sample(metrics, "model_predictions_total", model_name="demo") == 0
        assert server.v1({"instances": [ROW]}).status_code == 200
    finally:
        server.stop()


def test_errors_do_not_observe_latency(predictor):
    before = sample(predictor.metrics(), "model_prediction_latency_seconds_count", model_name="demo")
    predictor.v1({"instances": []})
    after = sample(predictor.metrics(), "model_prediction_latency_seconds_count", model_name="demo")
    assert after == before
