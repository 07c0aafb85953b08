"""Hostile Prometheus servers on loopback: one that trickles its answer a byte a second, one that answers
HTTP 200 with bodies no Prometheus sends. `check` must exit 2 with one line within its deadline, never
hang and never print a traceback (exit 1 is the invalid-config code)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_prometheus import assert_exit_2_nothing_created, run_cli

TRICKLE_SECONDS = 120  # how long the trickling server would take to finish one answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


def serve(handler: type[BaseHTTPRequestHandler]):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def trickling_prometheus():
    """Sends the status line and headers at once, then the body one byte a second: every read succeeds
    well within a per-read timeout, the whole answer takes TRICKLE_SECONDS."""

    class Trickle(_Handler):
        def do_GET(self):
            body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'.ljust(TRICKLE_SECONDS)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:  # the client gave up: that is the point
                pass

    server, url = serve(Trickle)
    yield url
    server.shutdown()
    server.server_close()


def test_a_trickling_prometheus_cannot_hold_check_past_its_deadline(trickling_prometheus):
    # Without a total deadline this run takes TRICKLE_SECONDS and the subprocess timeout fails the test.
    try:
        result = run_cli(
            "check", "--prometheus-url", trickling_prometheus, "--prometheus-timeout", "1s", timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("check was still reading the trickled answer after 30 s (deadline: 1 s + 2 s grace)")
    assert_exit_2_nothing_created(result, f"timed out querying {trickling_prometheus} after 1s")


def _vector(*samples) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": list(samples)}}


GOOD_METRIC = {"model_name": "m", "namespace": "ml"}
# (case id, the JSON body answered with HTTP 200, words of the one-line reason)
MALFORMED = [
    ("value-is-a-number", _vector({"metric": GOOD_METRIC, "value": 5}), "'value' is not [<time>"),
    ("value-is-empty", _vector({"metric": GOOD_METRIC, "value": []}), "'value' is not [<time>"),
    ("value-is-an-object", _vector({"metric": GOOD_METRIC, "value": {"v": 1}}), "'value' is not [<time>"),
    (
        "metric-is-a-list",
        _vector({"metric": ["model_name", "m"], "value": [1, "0.9"]}),
        "'metric' is not an object",
    ),
    (
        "model-name-is-an-object",
        _vector({"metric": {"model_name": {"x": 1}, "namespace": "ml"}, "value": [1, "0.9"]}),
        "label 'model_name' is not a string",
    ),
    ("sample-is-a-number", _vector(5), "not an object: 5"),
    (
        "result-is-a-number",
        {"status": "success", "data": {"resultType": "vector", "result": 5}},
        "instant vector",
    ),
    ("data-is-a-list", {"status": "success", "data": []}, "did not answer like a Prometheus API"),
    ("body-is-a-number", 5, "did not answer like a Prometheus API"),
    ("body-is-a-list", [], "did not answer like a Prometheus API"),
]


@pytest.fixture(scope="module")
def malformed_prometheus():
    """Answers every query with the body registered for the case (set through the URL path prefix)."""

    class Malformed(_Handler):
        def do_GET(self):
            case = self.path.split("/")[1]
            body = json.dumps(next(c[1] for c in MALFORMED if c[0] == case)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server, url = serve(Malformed)
    yield url
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("case", "words"), [(c[0], c[2]) for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_a_malformed_answer_exits_2_with_one_line(malformed_prometheus, case, words):
    result = run_cli("check", "--prometheus-url", f"{malformed_prometheus}/{case}", "--sustained-for", "0")
    assert "Traceback" not in result.stderr
    assert_exit_2_nothing_created(result, words)
