"""Unit tests of the request monitor middleware on a minimal ASGI app, and of model readiness."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid

import numpy as np
import pytest
import sklearn
from monitored_predictor import http_hooks
from monitored_predictor.artifacts import ModelLoadError
from monitored_predictor.http_hooks import STATE_KEY, RequestMonitor
from monitored_predictor.model import MonitoredModel, ServingSettings
from monitored_predictor.monitoring import PredictorMetrics
from prometheus_client import CollectorRegistry


def metrics():
    return PredictorMetrics("m", ["a"], np.array([True]), [0.5], 10, CollectorRegistry())


def call(app, path, headers=()):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": list(headers)}
    asyncio.run(app(scope, receive, send))
    return scope, sent


def responder(status, reason=None, seen=None):
    async def app(scope, receive, send):
        if seen is not None:
            seen.append(dict(scope["headers"]))
        if reason:
            scope[STATE_KEY] = reason
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def test_generated_id_reaches_the_app_and_the_response():
    seen = []
    _, sent = call(RequestMonitor(responder(200, seen=seen), metrics(), "m"), "/metrics")
    generated = dict(sent[0]["headers"])[b"x-request-id"]
    assert seen[0][b"x-request-id"] == generated and len(generated) == 32


def test_ce_id_is_used_when_there_is_no_request_id():
    seen = []
    _, sent = call(RequestMonitor(responder(200, seen=seen), metrics(), "m"), "/x", [(b"ce-id", b"e1")])
    assert dict(sent[0]["headers"])[b"x-request-id"] == b"e1" == seen[0][b"x-request-id"]


@pytest.mark.parametrize(
    ("status", "reason", "counted"),
    [(400, "non_numeric", "non_numeric"), (400, None, "malformed_json"), (503, None, "internal_error"),
     (404, None, None), (200, None, None)],
)  # fmt: skip
def test_errors_on_predict_paths_are_counted_once(status, reason, counted):
    m = metrics()
    call(RequestMonitor(responder(status, reason), m, "m"), "/v1/models/m:predict")
    counts = {r: c._value.get() for r, c in m.errors.items()}
    assert counts == {r: (1 if r == counted else 0) for r in counts}
    assert m.latency._sum.get() > 0 if status == 200 else m.latency._sum.get() == 0


def test_other_paths_are_not_counted():
    m = metrics()
    call(RequestMonitor(responder(400), m, "m"), "/v1/models/other:predict")
    assert sum(c._value.get() for c in m.errors.values()) == 0


@pytest.mark.parametrize("path", ["/v2/models/m/infer", "/v2/health/ready"])
def test_an_exception_before_any_response_is_a_json_500_with_the_request_id(path):
    async def broken(scope, receive, send):
        raise RecursionError("maximum recursion depth exceeded")

    m = metrics()
    _, sent = call(RequestMonitor(broken, m, "m"), path, [(b"x-request-id", b"r-1")])
    assert sent[0]["status"] == 500 and dict(sent[0]["headers"])[b"x-request-id"] == b"r-1"
    assert json.loads(sent[1]["body"]) == {
        "error": "internal error: RecursionError",
        "reason": "internal_error",
    }
    assert m.errors["internal_error"]._value.get() == (1 if "infer" in path else 0)


def test_model_is_not_ready_until_loaded(demo_model_dir, tmp_path):
    model = MonitoredModel("m", demo_model_dir, registry=CollectorRegistry())
    assert model.ready is False
    assert model.load() is True and model.ready is True
    broken = MonitoredModel("b", tmp_path, registry=CollectorRegistry())
    with pytest.raises(ModelLoadError, match=r"model\.joblib not found"):
        broken.load()
    assert broken.ready is False


def test_generated_request_ids_are_uuid4_hex():
    ids = {http_hooks.new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for request_id in ids:
        parsed = uuid.UUID(hex=request_id.decode())
        assert parsed.hex == request_id.decode()
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


class _RecordsSklearnConfig:
    """Wraps an estimator; remembers scikit-learn's assume_finite setting at each predict_proba."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.assume_finite: list[bool] = []

    def predict_proba(self, features):
        self.assume_finite.append(sklearn.get_config()["assume_finite"])
        return self.estimator.predict_proba(features)


@pytest.mark.parametrize("allow_non_finite", [False, True])
def test_sklearn_skips_its_finiteness_scan_only_when_the_decoder_did_it(
    demo_model_dir, holdout, allow_non_finite
):
    settings = ServingSettings(allow_non_finite=allow_non_finite)
    model = MonitoredModel("m", demo_model_dir, settings, registry=CollectorRegistry())
    model.load()
    recorder = _RecordsSklearnConfig(model.artifacts.estimator)
    model.artifacts = dataclasses.replace(model.artifacts, estimator=recorder)
    rows = holdout.drop(columns="target").to_numpy()[:3]
    features, _ = model.preprocess({"instances": rows.tolist()})
    scored = model.predict((features, None))
    np.testing.assert_allclose(scored.outputs, recorder.estimator.predict_proba(rows)[:, 1], atol=1e-12)
    assert recorder.assume_finite == [not allow_non_finite]
