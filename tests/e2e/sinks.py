"""Loopback HTTP servers that KServe's agent logs to when a test must see what it sends.

- CapturingSink keeps every CloudEvent (headers and body, byte for byte) and answers 200, empty body.
- AckRecorder forwards every event unchanged to the drift detector and keeps the detector's answer per
  event: the agent reports no per-event outcome, and the detector's own counters die with its process.
Both are real servers on 127.0.0.1, talking real HTTP to the real agent; neither imitates KServe.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


@dataclass
class Event:
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def type(self) -> str:
        return self.headers.get("ce-type", "")

    @property
    def id(self) -> str:
        return self.headers.get("ce-id", "")


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, sent with Content-Length or chunked."""
    if handler.headers.get("Content-Length") is not None:
        return handler.rfile.read(int(handler.headers["Content-Length"]))
    if "chunked" not in (handler.headers.get("Transfer-Encoding") or "").lower():
        return b""
    chunks = []
    while size := int(handler.rfile.readline().split(b";")[0], 16):
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()
    handler.rfile.readline()  # the empty line after the last chunk (no trailers expected)
    return b"".join(chunks)


class _Server:
    """A threading HTTP server on a free loopback port; `answer(event)` gives (status, body)."""

    def __init__(self, answer: Callable[[Event], tuple[int, bytes]]):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                event = Event({k.lower(): v for k, v in self.headers.items()}, read_body(self))
                status, body = answer(event)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.changed = threading.Condition()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class CapturingSink(_Server):
    """Keeps every event it receives; answers 200 with an empty body."""

    def __init__(self):
        self.events: list[Event] = []
        super().__init__(self._keep)

    def _keep(self, event: Event) -> tuple[int, bytes]:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()
        return 200, b""

    def clear(self) -> None:
        with self.changed:
            self.events.clear()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Event]:
        """The events received so far, once there are at least `count` (AssertionError on timeout)."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.events) >= count, timeout):
                raise AssertionError(f"{len(self.events)} events received, expected {count}: {self.events}")
            return list(self.events)

    def quiet(self, seconds: float = 1.0) -> list[Event]:
        """The events received once none arrived for `seconds`."""
        while True:
            with self.changed:
                before = len(self.events)
                self.changed.wait(seconds)
                if len(self.events) == before:
                    return list(self.events)


class AckRecorder(_Server):
    """Forwards each event to `target_url` as it came; records (type, id) -> the target's HTTP status,
    None when it could not answer; passes the status back to the agent with an empty body."""

    def __init__(self, target_url: str):
        self.target = urlsplit(target_url)
        self.outcomes: list[tuple[str, str, int | None]] = []
        super().__init__(self._forward)

    def _send(self, event: Event) -> int:
        """POST the event on a new connection (no stale keep-alive socket can fake a failure)."""
        conn = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=30)
        try:
            headers = {k: v for k, v in event.headers.items() if k not in HOP_BY_HOP}
            conn.request("POST", self.target.path or "/", body=event.body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def _forward(self, event: Event) -> tuple[int, bytes]:
        try:
            status: int | None = self._send(event)
        except (http.client.HTTPException, OSError):
            status = None  # no retry: the agent would not retry either
        with self.changed:
            self.outcomes.append((event.type, event.id, status))
            self.changed.notify_all()
        return status or 502, b""

    def received(self) -> int:
        with self.changed:
            return len(self.outcomes)

    def ids(self, ce_type: str, acknowledged: bool) -> set[str]:
        """Ids of `ce_type` events the target acknowledged with 2xx (or, acknowledged=False, did not)."""
        with self.changed:
            return {
                ce_id
                for kind, ce_id, status in self.outcomes
                if kind == ce_type and (status is not None and 200 <= status < 300) == acknowledged
            }

    def wait_for(self, count: int, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        with self.changed:
            self.changed.wait_for(lambda: len(self.outcomes) >= count, max(0.0, deadline - time.monotonic()))
            return len(self.outcomes)
