"""Fault injection over real HTTP: hostile bodies, sizes and methods get a 4xx JSON reason, an id, one count.

Each case failed before the fix it names: a 500 RecursionError without a request id (deep nesting), a
body parsed in full whatever its size, a 404 "model does not exist" for GET on `:predict`, and a
rank-3 tensor reported as an unknown feature.
"""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import Predictor, sample
from monitored_predictor.inputs import ERROR_REASONS

ROW = [1.0] * 30
LIMIT = 64 * 1024  # the small body limit of the `limited` server below


def nested(depth: int) -> str:
    return "[" * depth + "1.0" + "]" * depth


def v2_body(data: str, shape=(1, 30)) -> str:
    return f'{{"inputs": [{{"name": "x", "shape": {list(shape)}, "datatype": "FP64", "data": {data}}}]}}'


def chunks(total: int, size: int = 8192):
    """A body without Content-Length (chunked transfer), so only counting while reading can stop it."""
    for _ in range(total // size):
        yield b" " * size


@pytest.fixture(scope="module")
def limited(demo_model_dir):
    """The demo model with a 64 KiB body limit set through the environment twin of --max_body_bytes."""
    server = Predictor(demo_model_dir, env={"MAX_BODY_BYTES": str(LIMIT)}).start()
    yield server
    server.stop()


def error_counts(server) -> dict[str, float]:
    metrics = server.metrics()
    return {
        r: sample(metrics, "model_prediction_errors_total", model_name="demo", reason=r)
        for r in ERROR_REASONS
    }


def assert_refused(server, response, status: int, reason: str, before: dict, words: str = "") -> None:
    """The answer is a JSON reason with a request id, counted once under `reason`; the server still serves."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["reason"] == reason and words in response.json()["error"]
    assert len(response.headers["x-request-id"]) > 0
    after = error_counts(server)
    assert {r: after[r] - before[r] for r in ERROR_REASONS} == {r: float(r == reason) for r in ERROR_REASONS}
    assert server.v1({"instances": [ROW]}).status_code == 200


# (case id, body, reason, words in the message)
HOSTILE_V2 = [
    ("data-nested-500-deep", v2_body(nested(500)), "wrong_shape", "nested deeper than its 2-d shape"),
    ("data-nested-100-deep", v2_body(nested(100)), "wrong_shape", "nested deeper"),
    ("body-nested-5000-deep", v2_body(nested(5000)), "malformed_json", "nested too deeply"),
    ("shape-1-30-1", v2_body(json.dumps([[[1.0]] * 30]), shape=(1, 30, 1)), "wrong_shape", "[1, 30, 1]"),
]


@pytest.mark.parametrize(
    ("body", "reason", "words"), [c[1:] for c in HOSTILE_V2], ids=[c[0] for c in HOSTILE_V2]
)
def test_hostile_v2_bodies_are_400_with_reason_and_request_id(predictor, body, reason, words):
    before = error_counts(predictor)
    response = predictor.v2(body, {"x-request-id": "hostile-1"})
    assert_refused(predictor, response, 400, reason, before, words)
    assert response.headers["x-request-id"] == "hostile-1"


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_a_declared_body_over_the_limit_is_413_before_it_is_read(limited, protocol):
    before = error_counts(limited)
    body = json.dumps({"instances": [ROW] * 2000})  # about 300 KiB, a valid request otherwise
    response = limited.v1(body) if protocol == "v1" else limited.v2(body)
    assert_refused(limited, response, 413, "body_too_large", before, f"max {LIMIT}")
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("path", ["/v1/models/demo:predict", "/v2/models/demo/infer"])
def test_a_chunked_body_over_the_limit_is_413(limited, path):
    before = error_counts(limited)
    response = limited.client.post(
        path, content=chunks(4 * LIMIT), headers={"content-type": "application/json"}
    )
    assert_refused(limited, response, 413, "body_too_large", before, f"more than {LIMIT} bytes")


def test_a_body_under_the_limit_is_served(limited):
    body = json.dumps({"instances": [ROW] * 50})
    assert len(body) < LIMIT
    chunked = limited.client.post(
        "/v1/models/demo:predict", content=iter([body.encode()]), headers={"content-type": "application/json"}
    )
    assert limited.v1(body).status_code == 200 and chunked.status_code == 200, chunked.text
    assert len(chunked.json()["predictions"]) == 50


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/demo:predict"),
        ("GET", "/v2/models/demo/infer"),
        ("PUT", "/v1/models/demo:predict"),
    ],
)
def test_other_methods_on_predict_paths_are_405(predictor, method, path):
    before = error_counts(predictor)
    response = predictor.client.request(method, path)
    assert_refused(predictor, response, 405, "method_not_allowed", before, "POST")
    assert response.headers["allow"] == "POST"


def test_model_metadata_still_answers_get(predictor):
    assert predictor.client.get("/v1/models/demo").status_code == 200
    assert (
        predictor.client.get("/v1/models/other:predict").status_code == 404
    )  # not our model: KServe's answer


def test_the_default_limit_is_four_mib(predictor):
    before = error_counts(predictor)
    body = b'{"instances": []}' + b" " * (4 * 1024 * 1024)
    try:
        response = predictor.v1(body)
    except httpx.TransportError:  # the server may close before the client has sent everything
        pytest.fail("the 413 did not reach the client")
    assert_refused(predictor, response, 413, "body_too_large", before, "max 4194304")
