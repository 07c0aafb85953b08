"""The benchmark's load generator: equal rate really means the same requests for every server."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_predictor.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_predictor", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Echo(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 server answering every POST with 200 and a small JSON body; counts them."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies += 1
        status = 500 if self.server.fail else 200
        body = b'{"predictions": [0.5]}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    started = []
    for fail in (False, True):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        server.bodies, server.fail = 0, fail
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def test_equal_rate_sends_the_same_number_of_requests_to_every_server(bench, servers):
    ports = [s.server_address[1] for s in servers]
    results = asyncio.run(bench._load(ports, b'{"instances": [[1.0]]}', 3, 0.5, 120.0))
    for server, port in zip(servers, ports, strict=True):
        assert len(results[port]["latencies"]) == 60 == server.bodies
        assert all(latency > 0 for latency in results[port]["latencies"])
    assert results[ports[0]]["failures"] == []
    assert results[ports[1]]["failures"] == ["HTTP/1.1 500 Internal Server Error"] * 60


def test_closed_loop_runs_each_connection_back_to_back_until_the_deadline(bench, servers):
    port = servers[0].server_address[1]
    results = asyncio.run(bench._load([port], b"{}", 2, 0.3, 0.0))
    assert len(results[port]["latencies"]) == servers[0].bodies > 10
    assert results[port]["failures"] == []
