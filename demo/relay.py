"""SIMULATED KServe payload logger: a reverse proxy in front of the predictor.

In a cluster, KServe injects an agent container next to the predictor when the InferenceService has
`spec.predictor.logger`; the agent proxies each call and sends the request and the response to the
logger URL as binary-mode CloudEvents. That agent only exists inside Kubernetes, so the demo and the
end-to-end test put this relay in its place. It sends what KServe 0.20's agent sends
(pkg/logger/handler.go, worker.go):

- one event per request (every call but the kubelet's probes), then one per response, only when the
  predictor answered HTTP 200;
- both with the same `Ce-Id` (the caller's `Ce-Id` header, else a new UUID);
- attributes as headers: Ce-Specversion 1.0, Ce-Id, Ce-Type, Ce-Source, Ce-Time, and the extensions
  Ce-Recordedtime, Ce-Inferenceservicename, Ce-Namespace, Ce-Component, Ce-Endpoint, Ce-Metadata
  (JSON of the allow-listed request headers -> [values]); Ce-Annotations only when not empty;
- the body is the raw request or response bytes, with the ORIGINAL REQUEST's Content-Type on both;
- a queue of 100 events drained by worker threads: when it is full the proxied call waits.

Like an ingress gateway (Istio/Envoy) in front of KServe, the relay adds an `x-request-id` header
when the caller sent none, so the id a client reads back is the one the predictor saw.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
QUEUE_SIZE = 100  # KServe's LoggerWorkerQueueSize
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


def rfc3339(moment: datetime) -> str:
    """CloudEvents time: RFC 3339 in UTC with nanosecond-style fraction, like Go's time.RFC3339Nano."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_kubelet_probe(headers) -> bool:
    return (headers.get("User-Agent") or "").startswith("kube-probe/") or bool(headers.get("K-Kubelet-Probe"))


@dataclass
class LoggedEvent:
    ce_type: str
    ce_id: str
    body: bytes
    content_type: str
    occurred: datetime
    metadata: dict[str, list[str]]


@dataclass
class RelayStats:
    """What the sink acknowledged (2xx) and what it did not, per CloudEvent type."""

    acknowledged: dict[str, int] = field(default_factory=lambda: {REQUEST_TYPE: 0, RESPONSE_TYPE: 0})
    failed: dict[str, int] = field(default_factory=lambda: {REQUEST_TYPE: 0, RESPONSE_TYPE: 0})
    proxied: int = 0
    proxied_ok: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Request ids whose request AND response events the sink acknowledged.
    acked_ids: dict[str, set[str]] = field(
        default_factory=lambda: {REQUEST_TYPE: set(), RESPONSE_TYPE: set()}
    )

    def record(self, event: LoggedEvent, ok: bool) -> None:
        with self.lock:
            (self.acknowledged if ok else self.failed)[event.ce_type] += 1
            if ok:
                self.acked_ids[event.ce_type].add(event.ce_id)

    def fully_acknowledged(self) -> set[str]:
        with self.lock:
            return self.acked_ids[REQUEST_TYPE] & self.acked_ids[RESPONSE_TYPE]


class PayloadLoggerRelay:
    """Proxy on `listen_port` to `predictor_url`, logging every call to `sink_url` as CloudEvents."""

    def __init__(
        self,
        predictor_url: str,
        sink_url: str,
        inference_service: str,
        namespace: str,
        component: str = "predictor",
        endpoint: str = "",
        metadata_headers: tuple[str, ...] = ("X-Request-Id",),
        annotations: dict[str, str] | None = None,
        workers: int = 4,
    ):
        self.predictor = urlsplit(predictor_url)
        self.sink = urlsplit(sink_url)
        self.inference_service = inference_service
        self.namespace = namespace
        self.component = component
        self.endpoint = endpoint
        self.metadata_headers = {h.lower(): h for h in metadata_headers}
        self.annotations = annotations or {}
        self.stats = RelayStats()
        self.events: queue.Queue[LoggedEvent | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.source_uri = f"{self.url}/"  # the agent's default: http://localhost:<agent port>/
        self._threads = [threading.Thread(target=self._serve, name="relay-http", daemon=True)]
        self._threads += [
            threading.Thread(target=self._send_loop, name=f"relay-logger-{i}", daemon=True)
            for i in range(workers)
        ]
        self._local = threading.local()
        self._idle = threading.Condition()
        self._in_flight = 0  # proxied calls whose response event is not queued yet

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> PayloadLoggerRelay:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for _ in self._threads[1:]:
            with contextlib.suppress(queue.Full):
                self.events.put(None, timeout=5)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until no call is in flight and every event was delivered (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout):
                return False
        done = threading.Event()

        def _join():
            self.events.join()
            done.set()

        threading.Thread(target=_join, daemon=True).start()
        return done.wait(max(0.0, deadline - time.monotonic()))

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    # --- proxy ------------------------------------------------------------------------------------
    def _handler_class(self):
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                relay._proxy(self)

            def do_GET(self):
                relay._proxy(self)

            def log_message(self, *args):  # quiet: the demo prints its own progress
                pass

        return Handler

    def _upstream(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(self.predictor.hostname, self.predictor.port, timeout=60)
            self._local.conn = conn
        return conn

    def _proxy(self, handler: BaseHTTPRequestHandler) -> None:
        with self._idle:
            self._in_flight += 1
        try:
            self._proxy_call(handler)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _proxy_call(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        if not any(k.lower() == "x-request-id" for k in headers):
            headers["X-Request-Id"] = str(uuid.uuid4())  # what the ingress gateway would add
        ce_id = handler.headers.get("Ce-Id") or str(uuid.uuid4())
        content_type = handler.headers.get("Content-Type", "")
        metadata = {
            canonical: handler.headers.get_all(lower) or []
            for lower, canonical in self.metadata_headers.items()
            if handler.headers.get(lower) is not None
        }
        if "x-request-id" in self.metadata_headers and "x-request-id" not in {k.lower() for k in metadata}:
            metadata[self.metadata_headers["x-request-id"]] = [headers["X-Request-Id"]]
        # Like the agent, log every call but the kubelet's probes (knative.dev/pkg/network.IsKubeletProbe):
        # a GET of model metadata through the logger becomes an event with an empty body, too.
        is_inference = not is_kubelet_probe(handler.headers)
        if is_inference:
            self._enqueue(LoggedEvent(REQUEST_TYPE, ce_id, body, content_type, datetime.now(UTC), metadata))
        status, reason, resp_headers, resp_body = self._forward(handler.command, handler.path, headers, body)
        handler.send_response(status, reason)
        for key, value in resp_headers:
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(resp_body)))
        handler.end_headers()
        handler.wfile.write(resp_body)
        with self.stats.lock:
            self.stats.proxied += 1
            self.stats.proxied_ok += status == 200
        if is_inference and status == 200:
            self._enqueue(
                LoggedEvent(RESPONSE_TYPE, ce_id, resp_body, content_type, datetime.now(UTC), metadata)
            )

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes):
        for attempt in (0, 1):  # one retry on a stale keep-alive connection
            conn = self._upstream(fresh=attempt == 1)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.reason, resp.getheaders(), data
            except (http.client.HTTPException, OSError) as err:
                if attempt == 1:
                    message = json.dumps({"error": f"relay: predictor unreachable: {err}"}).encode()
                    return 502, "Bad Gateway", [("Content-Type", "application/json")], message
        raise AssertionError("unreachable")

    # --- logger -----------------------------------------------------------------------------------
    def _enqueue(self, event: LoggedEvent) -> None:
        self.events.put(event)  # blocks when full, like the agent's channel send

    def cloudevent_headers(self, event: LoggedEvent) -> dict[str, str]:
        headers = {
            "Ce-Specversion": "1.0",
            "Ce-Id": event.ce_id,
            "Ce-Type": event.ce_type,
            "Ce-Source": self.source_uri,
            "Ce-Time": rfc3339(event.occurred),
            "Ce-Recordedtime": rfc3339(datetime.now(UTC)),
            "Ce-Inferenceservicename": self.inference_service,
            "Ce-Namespace": self.namespace,
            "Ce-Component": self.component,
            "Ce-Endpoint": self.endpoint,
            "Ce-Metadata": json.dumps(event.metadata, separators=(",", ":")),
            "Content-Type": event.content_type,
        }
        if self.annotations:
            headers["Ce-Annotations"] = json.dumps(self.annotations, separators=(",", ":"))
        return headers

    def _sink_connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "sink", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(self.sink.hostname, self.sink.port, timeout=30)
            self._local.sink = conn
        return conn

    def send_event(self, event: LoggedEvent) -> bool:
        """POST one CloudEvent in binary mode; True when the sink answered 2xx."""
        path = self.sink.path or "/"
        for attempt in (0, 1):  # a reused keep-alive socket may be dead; the agent reconnects too
            conn = self._sink_connection(fresh=attempt == 1)
            try:
                conn.request("POST", path, body=event.body, headers=self.cloudevent_headers(event))
                resp = conn.getresponse()
                resp.read()
                return 200 <= resp.status < 300
            except (http.client.HTTPException, OSError):
                if attempt == 1:
                    return False
        return False

    def _send_loop(self) -> None:
        while True:
            event = self.events.get()
            try:
                if event is None:
                    return
                self.stats.record(event, self.send_event(event))
            finally:
                self.events.task_done()
