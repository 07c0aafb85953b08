"""Hostile input over real HTTP: every case was a 500 (or a wrong count) and is now a 4xx with a JSON
reason, counted in drift_detector_events_total, and the service keeps accepting events."""

from __future__ import annotations

import uuid

import orjson
import pytest
from conftest import REQUEST, RESPONSE, Server, kserve_headers, make_reference

TENSOR = {"shape": [1], "datatype": "FP64", "data": [0.5]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    reference = tmp / "reference.parquet"
    make_reference().to_parquet(reference)
    srv = Server(tmp, reference, {"pending_ttl_seconds": 60.0}, window_size=100000, min_samples=100).start()
    yield srv
    srv.stop()
    srv.client.close()


def events(server: Server, type_: str) -> dict[str, float]:
    prefix = "drift_detector_events_total{"
    return {
        dict(kv.split("=", 1) for kv in key[len(prefix) : -1].split(","))["outcome"]: value
        for key, value in server.metrics().items()
        if key.startswith(prefix) and f"type={type_}" in key
    }


def counted_once(before: dict, after: dict, outcome: str) -> bool:
    changed = {k: after.get(k, 0) - before.get(k, 0) for k in after.keys() | before.keys()}
    return {k: v for k, v in changed.items() if v} == {outcome: 1}


def still_accepts_events(server: Server) -> bool:
    rid = str(uuid.uuid4())
    request = server.post_event(rid, REQUEST, {"instances": [[0.1, 1.0, "red"]]})
    response = server.post_event(rid, RESPONSE, {"predictions": [0.6]})
    return request.status_code == response.status_code == 200


# (case id, request body, outcome words in the error)
V2_BODIES = [
    ("tensor-name-is-a-list", {"inputs": [{"name": ["f_a"], **TENSOR}]}, "tensor name must be a string"),
    ("tensor-name-is-an-object", {"inputs": [{"name": {"f": 1}, **TENSOR}]}, "tensor name must be a string"),
    (
        "later-tensor-name-is-a-list",
        {"inputs": [{"name": "f_a", **TENSOR}, {"name": ["f_b"], **TENSOR}]},
        "input 1: tensor name must be a string",
    ),
    ("input-is-a-number", {"inputs": [{"name": "f_a", **TENSOR}, 5]}, "input 1 must be a tensor object"),
    ("input-is-a-list", {"inputs": [{"name": "f_a", **TENSOR}, ["f_b"]]}, "must be a tensor object"),
]


@pytest.mark.parametrize(("body", "words"), [c[1:] for c in V2_BODIES], ids=[c[0] for c in V2_BODIES])
def test_hostile_v2_requests_are_400_and_counted(server, body, words):
    before = events(server, "request")
    response = server.post_event(str(uuid.uuid4()), REQUEST, body)
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "invalid_body" and words in response.json()["error"]
    assert counted_once(before, events(server, "request"), "invalid_body")
    assert still_accepts_events(server)


def test_an_empty_cloudevents_batch_is_400_and_counted(server):
    before = events(server, "cloudevent")
    response = server.client.post(
        "/", content=b"[]", headers={"content-type": "application/cloudevents-batch+json"}
    )
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "the CloudEvents batch holds no event", "reason": "empty_batch"}
    assert counted_once(before, events(server, "cloudevent"), "empty_batch")
    assert still_accepts_events(server)


@pytest.mark.parametrize("limit", ["²", "١٢", "9" * 5000, "1" * 10, "-1"])
def test_a_bad_history_limit_is_400_and_counted(server, limit):
    before = events(server, "query")
    response = server.client.get("/api/v1/drift/history", params={"limit": limit})
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "invalid_limit" and "limit" in response.json()["error"]
    assert counted_once(before, events(server, "query"), "invalid_limit")


def test_a_large_history_limit_within_bounds_is_served(server):
    response = server.client.get("/api/v1/drift/history", params={"limit": "999999999"})
    assert response.status_code == 200 and response.json()["results"] == []


@pytest.mark.parametrize("name", ["r" * 300 + ".html", "x" * 5000 + ".html", "absent.html"])
def test_a_report_name_that_cannot_exist_is_404_and_counted(server, name):
    before = events(server, "query")
    response = server.client.get(f"/reports/{name}")
    assert response.status_code == 404, response.text
    assert response.json()["reason"] == "no_such_report"
    assert counted_once(before, events(server, "query"), "no_such_report")
    assert server.client.get("/reports/").status_code == 200  # the index still answers


def logged_prediction(server: Server, request_id: str) -> None:
    meta = orjson.dumps({"X-Request-Id": [request_id]}).decode()
    for type_, body in ((REQUEST, {"instances": [[0.2, 1.0, "red"]]}), (RESPONSE, {"predictions": [0.7]})):
        response = server.client.post(
            "/",
            content=orjson.dumps(body),
            headers=kserve_headers("ce-" + request_id, type_, **{"Ce-Metadata": meta}),
        )
        assert response.status_code == 200, response.text


def test_one_id_three_times_matches_once_and_says_so(server):
    """The first label is applied (a prediction takes one label); the repeats are answered and counted
    as duplicates, not as matches."""
    logged_prediction(server, "dup-1")
    before = events(server, "feedback")
    items = [{"id": "dup-1", "label": 1}, {"id": "dup-1", "label": 0}, {"id": "dup-1", "label": 1}]
    response = server.client.post("/v1/feedback", json=items)
    assert response.status_code == 200, response.text
    assert response.json() == {"matched": 1, "unknown": 0, "duplicates": 2}
    after = events(server, "feedback")
    assert after.get("matched", 0) - before.get("matched", 0) == 1
    assert after.get("duplicate_id", 0) - before.get("duplicate_id", 0) == 2
    # labelling consumed the prediction: the same id again is unknown, as it always was
    assert server.client.post("/v1/feedback", json=items[:1]).json() == {
        "matched": 0,
        "unknown": 1,
        "duplicates": 0,
    }


def test_a_malformed_repeat_is_still_refused(server):
    logged_prediction(server, "dup-2")
    items = [{"id": "dup-2", "label": 1}, {"id": "dup-2"}]
    response = server.client.post("/v1/feedback", json=items)
    assert response.status_code == 400 and "needs 'id' and 'label'" in response.json()["error"]
