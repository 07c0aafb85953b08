"""Ingest over real HTTP: KServe CloudEvents (binary and structured), v1/v2 bodies, validation, joins."""

from __future__ import annotations

import base64
import http.client
import socket
import uuid

import orjson
import pytest
from conftest import REQUEST, RESPONSE, Server, kserve_headers, make_reference


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ingest")
    reference = tmp / "reference.parquet"
    make_reference().to_parquet(reference)
    config = {"pending_ttl_seconds": 1.0, "max_body_bytes": 100_000, "reports_enabled": False}
    srv = Server(tmp, reference, config, window_size=100000, min_samples=100).start()
    yield srv
    srv.stop()
    srv.client.close()


def rows_in(server: Server) -> int:
    w = server.window()
    return w["rows"] + w["pending_rows"]


def test_v1_request_and_response_join_by_ce_id(server):
    before = server.window()["rows"]
    joined = server.metric("drift_detector_events_total", type="join", outcome="matched")
    server.send_pair([[0.1, 2.0, "red"], [0.3, 4.0, "blue"]], [0.52, 0.57])
    assert server.window()["rows"] == before + 2
    assert server.metric("drift_detector_events_total", type="join", outcome="matched") == joined + 1
    assert server.metric("drift_detector_events_total", type="request", outcome="accepted") >= 1
    assert server.metric("drift_detector_events_total", type="response", outcome="accepted") >= 1


def test_response_before_request_still_joins(server):
    before = server.window()["rows"]
    event_id = str(uuid.uuid4())
    assert server.post_event(event_id, RESPONSE, {"predictions": [0.4]}).status_code == 200
    assert server.window()["rows"] == before  # waiting for its request
    assert server.post_event(event_id, REQUEST, {"instances": [[0.0, 1.0, "green"]]}).status_code == 200
    assert server.window()["rows"] == before + 1


def _exchange(sock: socket.socket, event_id: str, event_type: str, body: bytes) -> http.client.HTTPResponse:
    """One KServe-style binary CloudEvent and its whole response on an already open connection."""
    head = "".join(f"{k}: {v}\r\n" for k, v in kserve_headers(event_id, event_type).items())
    sock.sendall(
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    )
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.body = response.read()
    return response


def test_delivered_events_get_an_empty_200_and_keep_the_connection(server):
    """KServe's agent closes a 2xx body unread and Go then drops the connection, so a delivered event
    is answered with no body at all; one keep-alive connection carries every event. A refusal still
    names its problem in a JSON body."""
    before = server.window()["rows"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for i in range(5):
            event_id = str(uuid.uuid4())
            for event_type, doc in [
                (REQUEST, {"instances": [[0.1 * i, 2.0, "red"]]}),
                (RESPONSE, {"predictions": [0.5]}),
            ]:
                r = _exchange(sock, event_id, event_type, orjson.dumps(doc))
                assert (r.status, r.body) == (200, b"")
                assert r.getheader("Content-Length") == "0" and r.getheader("Content-Type") is None
                assert not r.will_close
        r = _exchange(sock, str(uuid.uuid4()), REQUEST, b"{not json")
        assert r.status == 400 and r.getheader("Content-Type") == "application/json"
        assert orjson.loads(r.body)["reason"] == "invalid_json"
        r = _exchange(sock, str(uuid.uuid4()), REQUEST, b"")  # a logged GET: ignored, also empty
        assert (r.status, r.body) == (200, b"")
    assert server.window()["rows"] == before + 5


def test_keyed_instances_count_missing_and_unexpected_columns(server):
    missing = server.metric(
        "drift_detector_data_quality_violations_total", feature_name="f_b", kind="missing_column"
    )
    extra = server.metric(
        "drift_detector_data_quality_violations_total", feature_name="zz", kind="unexpected_column"
    )
    unseen = server.metric(
        "drift_detector_data_quality_violations_total", feature_name="color", kind="unseen_category"
    )
    server.send_pair(
        [{"f_a": 0.1, "color": "purple", "zz": 1}, {"f_a": 0.2, "f_b": 1.0, "color": "red"}], [0.1, 0.2]
    )
    q = "drift_detector_data_quality_violations_total"
    assert server.metric(q, feature_name="f_b", kind="missing_column") == missing + 1
    assert server.metric(q, feature_name="zz", kind="unexpected_column") == extra + 1
    assert server.metric(q, feature_name="color", kind="unseen_category") == unseen + 1


def test_range_and_null_violations(server):
    q = "drift_detector_data_quality_violations_total"
    out = server.metric(q, feature_name="f_b", kind="out_of_range")
    null = server.metric(q, feature_name="f_a", kind="null")
    server.send_pair([[None, 1000.0, "red"]], [0.5])
    assert server.metric(q, feature_name="f_b", kind="out_of_range") == out + 1
    assert server.metric(q, feature_name="f_a", kind="null") == null + 1


def test_v2_single_tensor_with_bytes_and_v2_outputs(server):
    before = server.window()["rows"]
    event_id = str(uuid.uuid4())
    request = {
        "id": event_id,
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 3],
                "datatype": "BYTES",
                "data": ["0.5", "3", "red", "1", "2", "blue"],
            }
        ],
    }
    response = {
        "model_name": "demo-model",
        "id": event_id,
        "outputs": [{"name": "predictions", "shape": [2], "datatype": "FP64", "data": [0.6, 0.7]}],
    }
    assert server.post_event(event_id, REQUEST, request).status_code == 200
    assert server.post_event(event_id, RESPONSE, response).status_code == 200
    assert server.window()["rows"] == before + 2


def test_v2_one_tensor_per_feature_and_class_scores(server):
    before = server.window()["rows"]
    event_id = str(uuid.uuid4())
    request = {
        "inputs": [
            {"name": "f_a", "shape": [2], "datatype": "FP32", "data": [0.1, 0.2]},
            {"name": "f_b", "shape": [2, 1], "datatype": "FP64", "data": [[1.0], [2.0]]},
            {"name": "color", "shape": [2], "datatype": "BYTES", "data": ["red", "green"]},
        ]
    }
    response = {
        "outputs": [
            {"name": "predictions", "shape": [2, 2], "datatype": "FP64", "data": [0.3, 0.7, 0.6, 0.4]}
        ]
    }
    assert server.post_event(event_id, REQUEST, request).status_code == 200
    assert server.post_event(event_id, RESPONSE, response).status_code == 200
    assert server.window()["rows"] == before + 2


def test_structured_mode_inline_and_base64(server):
    before = server.window()["rows"]
    event_id = str(uuid.uuid4())
    envelope = {
        "specversion": "1.0",
        "id": event_id,
        "type": REQUEST,
        "source": "http://localhost:9081/",
        "datacontenttype": "application/json",
        "data": {"instances": [[0.1, 1.0, "red"]]},
    }
    r = server.client.post(
        "/", content=orjson.dumps(envelope), headers={"Content-Type": "application/cloudevents+json"}
    )
    assert r.status_code == 200, r.text
    body = base64.b64encode(orjson.dumps({"predictions": [0.5]})).decode()
    envelope = {**envelope, "type": RESPONSE, "data_base64": body}
    del envelope["data"]
    r = server.client.post(
        "/", content=orjson.dumps(envelope), headers={"Content-Type": "application/cloudevents+json"}
    )
    assert r.status_code == 200, r.text
    assert server.window()["rows"] == before + 1


def _event(event_type=REQUEST, body=b'{"instances": [[0.1, 1.0, "red"]]}', **extra):
    return kserve_headers(str(uuid.uuid4()), event_type, **extra), body


# (reason label, metric type label, headers, body, status)
BAD = [
    ("invalid_json", "request", *_event(body=b'{"instances": [[0.1, 1.0, "red"]'), 400),
    ("unsupported_content_type", "cloudevent", *_event(content_type="application/octet-stream"), 415),
    ("unknown_type", "cloudevent", *_event(event_type="org.example.other"), 400),
    ("missing_id", "cloudevent", {**_event()[0], "Ce-Id": ""}, _event()[1], 400),
    ("wrong_feature_count", "request", *_event(body=b'{"instances": [[0.1, 1.0]]}'), 400),
    ("non_numeric", "request", *_event(body=b'{"instances": [["abc", 1.0, "red"]]}'), 400),
    ("invalid_body", "request", *_event(body=b'{"foo": 1}'), 400),
    (
        "invalid_shape",
        "request",
        *_event(body=b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1]}]}'),
        400,
    ),
    (
        "too_large",
        "cloudevent",
        *_event(body=b'{"instances": [' + b"[0.1, 1.0, 1.0]," * 10000 + b"[1, 1, 1]]}"),
        413,
    ),
]


@pytest.mark.parametrize(("reason", "kind", "headers", "body", "status"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_naming_the_problem_and_counted(server, reason, kind, headers, body, status):
    before_rows = rows_in(server)
    counted = server.metric("drift_detector_events_total", type=kind, outcome=reason)
    r = server.client.post("/", content=body, headers=headers)
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["reason"] == reason
    assert payload["error"]
    assert server.metric("drift_detector_events_total", type=kind, outcome=reason) == counted + 1
    assert rows_in(server) == before_rows
    assert server.client.get("/healthz").status_code == 200


def test_not_a_cloudevent(server):
    r = server.client.post("/", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "Ce-Specversion" in r.json()["error"]


def test_response_with_wrong_prediction_count_is_rejected(server):
    event_id = str(uuid.uuid4())
    assert server.post_event(event_id, REQUEST, {"instances": [[0.1, 1.0, "red"]]}).status_code == 200
    r = server.post_event(event_id, RESPONSE, {"predictions": [0.1, 0.2]})
    assert r.status_code == 400
    assert r.json()["reason"] == "prediction_count_mismatch"


def test_request_without_response_expires_into_the_window(server):
    expired = server.metric("drift_detector_events_total", type="join", outcome="expired_request")
    before = rows_in(server)
    r = server.post_event(str(uuid.uuid4()), REQUEST, {"instances": [[0.1, 1.0, "red"]] * 3})
    assert r.status_code == 200
    assert rows_in(server) == before + 3
    server.wait_for(
        lambda: server.window()["pending_rows"] == 0, timeout=10, what="expiry of pending requests"
    )
    assert server.window()["rows"] == before + 3  # a request without response still counts as input
    assert server.metric("drift_detector_events_total", type="join", outcome="expired_request") >= expired + 1


def test_ingest_rows_and_feedback_by_id(server):
    before = server.window()["rows"]
    rows = [
        {"f_a": 0.1 * i, "f_b": 1.0, "color": "red", "prediction": 0.9, "id": f"ing-{i}"} for i in range(5)
    ]
    r = server.client.post("/v1/ingest", json={"rows": rows})
    assert r.status_code == 200 and r.json() == {"accepted": 5}
    assert server.window()["rows"] == before + 5
    r = server.client.post("/v1/feedback", json=[{"id": "ing-0", "label": 1}, {"id": "nope", "label": 0}])
    assert r.json() == {"matched": 1, "unknown": 1, "duplicates": 0}
    assert server.metric("drift_detector_events_total", type="feedback", outcome="unknown_id") >= 1
    r = server.client.post("/v1/feedback", json=[{"label": 1}])
    assert r.status_code == 400 and "id" in r.json()["error"]


def test_feedback_joins_on_x_request_id_from_metadata(server):
    meta = orjson.dumps({"X-Request-Id": ["req-abc-1"]}).decode()
    event_id = str(uuid.uuid4())
    body = orjson.dumps({"instances": [[0.1, 1.0, "red"]]})
    assert (
        server.client.post(
            "/", content=body, headers=kserve_headers(event_id, REQUEST, **{"Ce-Metadata": meta})
        ).status_code
        == 200
    )
    body = orjson.dumps({"predictions": [0.8]})
    assert (
        server.client.post(
            "/", content=body, headers=kserve_headers(event_id, RESPONSE, **{"Ce-Metadata": meta})
        ).status_code
        == 200
    )
    assert server.client.post("/v1/feedback", json=[{"id": "req-abc-1", "label": 1}]).json()["matched"] == 1


def test_endpoints_and_errors(server):
    assert server.client.get("/healthz").json()["status"] == "alive"
    assert server.client.get("/nope").status_code == 404
    assert server.client.get("/v1/ingest").status_code == 405
    r = server.client.get("/api/v1/drift/history?limit=abc")
    assert r.status_code == 400 and "limit" in r.json()["error"]
    assert server.client.get("/api/v1/drift").status_code == 404  # nothing checked yet
    assert server.client.get("/reports/").status_code == 404  # disabled in this server
    r = server.client.post("/v1/ingest", content=b"x=1", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_structured_batch_of_request_and_response(server):
    before = server.window()["rows"]
    event_id = str(uuid.uuid4())
    common = {"specversion": "1.0", "id": event_id, "source": "http://localhost:9081/"}
    batch = [
        {
            **common,
            "type": REQUEST,
            "datacontenttype": "application/json",
            "data": {"instances": [[0.2, 2.0, "red"]]},
        },
        {**common, "type": RESPONSE, "datacontenttype": "application/json", "data": {"predictions": [0.6]}},
    ]
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    accepted = server.metric("drift_detector_events_total", type="request", outcome="accepted")
    r = server.client.post("/", content=orjson.dumps(batch), headers=headers)
    assert (r.status_code, r.content) == (200, b"")
    assert server.window()["rows"] == before + 1
    assert server.metric("drift_detector_events_total", type="request", outcome="accepted") == accepted + 1


def _outcomes(server: Server) -> dict[tuple[str, str], float]:
    prefix = "drift_detector_events_total{"
    out = {}
    for key, value in server.metrics().items():
        if key.startswith(prefix):
            labels = dict(p.split("=", 1) for p in key[len(prefix) : -1].split(","))
            out[(labels["type"], labels["outcome"])] = value
    return out


# What KServe 0.20's model server answers to GETs (kserve/protocol/rest/v1_endpoints.py, v2_endpoints.py).
V2_MODEL_METADATA = {
    "name": "demo-model",
    "versions": None,
    "platform": "",
    "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}],
    "outputs": [{"name": "predictions", "datatype": "FP64", "shape": [-1]}],
}
V1_MODEL_READY = {"name": "demo-model", "ready": True}


@pytest.mark.parametrize(
    ("response_body", "response_first"),
    [
        (orjson.dumps(V2_MODEL_METADATA), False),  # GET /v2/models/<m>
        (orjson.dumps(V1_MODEL_READY), True),  # GET /v1/models/<m>; the logger's workers may reorder
        (orjson.dumps({"ready": True}), False),  # GET /v2/health/ready, not from the kubelet
        (b"not json: whatever the GET answered", False),  # known by its ignored request's Ce-Id
    ],
    ids=["v2-metadata", "v1-ready-response-first", "v2-ready", "non-json-after-empty-request"],
)
def test_logged_get_calls_are_ignored_not_rejected(server, response_body, response_first):
    """KServe's agent logs every call but kubelet probes: a GET reaches the sink as an empty-body
    request event (no Content-Type) and, on 200, a response event. Neither is data nor an error."""
    before, outcomes = server.window(), _outcomes(server)
    event_id = str(uuid.uuid4())
    request = (kserve_headers(event_id, REQUEST, content_type=""), b"")
    response = (kserve_headers(event_id, RESPONSE, content_type=""), response_body)
    for headers, body in [response, request] if response_first else [request, response]:
        r = server.client.post("/", content=body, headers=headers)
        assert (r.status_code, r.content) == (200, b""), r.text
    after = _outcomes(server)
    changed = {k: after[k] - outcomes.get(k, 0) for k in after if after[k] != outcomes.get(k, 0)}
    assert changed == {("request", "ignored"): 1, ("response", "ignored"): 1}
    now = server.window()
    assert (now["rows"], now["pending_joins"]) == (before["rows"], before["pending_joins"])


def test_response_without_predictions_for_a_waiting_request_is_still_rejected(server):
    event_id = str(uuid.uuid4())
    assert server.post_event(event_id, REQUEST, {"instances": [[0.1, 1.0, "red"]]}).status_code == 200
    r = server.post_event(event_id, RESPONSE, V1_MODEL_READY)
    assert r.status_code == 400
    assert r.json()["reason"] == "invalid_body"
