"""The relay that stands in for KServe's payload logger sends what KServe 0.20's agent sends.

A second relay in front of the stack's real predictor logs to a capturing HTTP sink, so each CloudEvent
can be read back byte for byte. Facts from kserve pkg/logger (handler.go, worker.go).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from demo.relay import REQUEST_TYPE, RESPONSE_TYPE, PayloadLoggerRelay
from demo.traffic import Client, v1_body, v2_body


class CapturingSink:
    """A real HTTP server on loopback that keeps every POST (headers and body) and answers 200."""

    def __init__(self):
        self.events: list[tuple[dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.events.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def logged(stack):
    sink = CapturingSink()
    relay = PayloadLoggerRelay(
        stack.predictor_url,
        sink.url,
        inference_service=stack.model_name,
        namespace="demo",
        metadata_headers=("X-Request-Id",),
    ).start()
    yield relay, sink
    relay.stop()
    sink.close()


def post(relay, path: str, body: bytes, headers=None):
    return Client().post(f"{relay.url}{path}", body, headers)


def test_request_and_response_events_match_kserve(stack, data, logged):
    relay, sink = logged
    row = data.holdout[data.features].iloc[0].tolist()
    status, headers, answer = post(relay, f"/v1/models/{stack.model_name}:predict", v1_body([row]))
    headers = {k.lower(): v for k, v in headers.items()}
    assert status == 200
    assert relay.drain(10)
    (req_h, req_body), (resp_h, resp_body) = sorted(sink.events, key=lambda e: e[0]["Ce-Type"])
    assert req_h["Ce-Type"] == REQUEST_TYPE and resp_h["Ce-Type"] == RESPONSE_TYPE
    assert req_body == v1_body([row]) and resp_body == answer  # raw bytes, both ways
    for h in (req_h, resp_h):
        assert h["Ce-Specversion"] == "1.0"
        assert h["Content-Type"] == "application/json"  # the request's, also on the response event
        assert h["Ce-Inferenceservicename"] == stack.model_name
        assert h["Ce-Namespace"] == "demo" and h["Ce-Component"] == "predictor" and h["Ce-Endpoint"] == ""
        assert h["Ce-Source"] == f"{relay.url}/"
        datetime.fromisoformat(h["Ce-Time"].replace("Z", "+00:00"))
        assert json.loads(h["Ce-Metadata"]) == {"X-Request-Id": [headers["x-request-id"]]}
        assert "Ce-Annotations" not in h  # only sent when there are annotations
    assert req_h["Ce-Id"] == resp_h["Ce-Id"]


def test_callers_ce_id_is_kept_and_v2_is_logged_verbatim(stack, data, logged):
    relay, sink = logged
    row = data.holdout[data.features].iloc[1].tolist()
    body = v2_body([row])
    status, _, _ = post(relay, f"/v2/models/{stack.model_name}/infer", body, {"Ce-Id": "caller-id-1"})
    assert status == 200
    assert relay.drain(10)
    assert {h["Ce-Id"] for h, _ in sink.events} == {"caller-id-1"}
    assert [b for h, b in sink.events if h["Ce-Type"] == REQUEST_TYPE] == [body]


def test_response_is_logged_only_for_http_200(stack, logged):
    relay, sink = logged
    bad = json.dumps({"instances": [[1.0, 2.0]]}).encode()  # 2 features where the model has 30
    status, _, _ = post(relay, f"/v1/models/{stack.model_name}:predict", bad)
    assert status == 400
    assert relay.drain(10)
    assert [h["Ce-Type"] for h, _ in sink.events] == [REQUEST_TYPE]


def test_every_call_but_kubelet_probes_is_logged(stack, logged):
    relay, sink = logged
    status, _, _ = Client().get(f"{relay.url}/v2/models/{stack.model_name}")
    assert status == 200
    probe, _, _ = Client().get(f"{relay.url}/v2/health/ready", {"User-Agent": "kube-probe/1.31"})
    assert probe == 200
    assert relay.drain(10)
    # The agent logs a metadata GET like an inference call (empty request body); probes never.
    assert sorted((h["Ce-Type"], len(b) > 0) for h, b in sink.events) == [
        (REQUEST_TYPE, False),
        (RESPONSE_TYPE, True),
    ]
