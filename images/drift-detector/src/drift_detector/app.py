"""The HTTP interface: a plain ASGI application (no framework on the hot path)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from drift_detector import decode, imports
from drift_detector.decode import BATCH, STRUCTURED, BadInput, media_type
from drift_detector.service import NotReady, Service

LOG = logging.getLogger(__name__)
JSON = [(b"content-type", b"application/json")]
REPORT_CHUNK = 1 << 16
MAX_LIMIT_DIGITS = 9  # ?limit= above any history size; int() of thousands of digits raises
CE_HEADERS = frozenset((b"ce-specversion", b"ce-id", b"ce-type", b"ce-metadata", b"content-type"))
# A delivered logger event is answered 200 with no body at all. KServe's agent (cloudevents sdk-go)
# closes a 2xx response body unread, and Go's HTTP client then drops the connection instead of
# reusing it: any body would cost one new TCP connection per event. 200, not 202/204: the agent
# logs any other status as an error.
EMPTY_200 = (200, b"", None)
NO_CONTENT_HEADERS = ((b"content-length", b"0"),)
# What the service raises to refuse a call, each answered by App._refuse (4xx, or 503 for the last two).
REFUSALS = (BadInput, NotReady, OSError)


class Response(Exception):
    """Raised by a handler to answer at once (errors, mostly)."""

    def __init__(self, status: int, body: Any, content_type: bytes = b"application/json"):
        self.status, self.body, self.content_type = status, body, content_type


class App:
    def __init__(self, service: Service):
        self.service = service
        self.settings = service.settings
        self.routes = {
            ("POST", "/"): self.cloudevents,
            ("POST", "/v1/ingest"): self.ingest,
            ("POST", "/v1/feedback"): self.feedback,
            ("GET", "/api/v1/drift"): self.drift,
            ("GET", "/api/v1/drift/history"): self.history,
            ("POST", "/api/v1/drift/import"): self.import_results,
            ("GET", "/reports"): self.reports_index,
            ("GET", "/reports/"): self.reports_index,
            ("GET", "/healthz"): self.healthz,
            ("GET", "/readyz"): self.readyz,
            ("GET", "/metrics"): self.metrics,
        }
        self.paths = {path for _, path in self.routes}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        handler = self.routes.get(("GET" if method == "HEAD" else method, path))
        try:
            if handler is None:
                if method in ("GET", "HEAD") and path.startswith("/reports/"):
                    await self.report_file(path[len("/reports/") :], send)
                    return
                if path in self.paths:
                    raise Response(405, {"error": f"method {method} not allowed on {path}"})
                raise Response(404, {"error": f"no such endpoint: {path}"})
            status, body, content_type = await handler(scope, receive)
        except Response as r:
            status, body, content_type = r.status, r.body, r.content_type
        except Exception:  # never let one request take the service down
            LOG.exception("unhandled error on %s %s", method, path)
            status, body, content_type = (
                500,
                {"error": "internal error, see the service log"},
                b"application/json",
            )
        if not isinstance(body, bytes):
            body = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        if body or content_type is not None:
            headers = [(b"content-length", str(len(body)).encode())]
            if content_type is not None:
                headers.append((b"content-type", content_type))
        else:  # a logger event's answer (EMPTY_200)
            headers = NO_CONTENT_HEADERS
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.service.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- ingestion ------------------------------------------------------------------------------
    async def _body(self, scope, receive, event_type: str) -> bytes:
        limit = self.settings.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                self._reject(
                    event_type, BadInput("too_large", f"body of {int(value)} bytes exceeds {limit}", 413)
                )
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                self._reject(event_type, BadInput("too_large", f"body exceeds {limit} bytes", 413))
            if not message.get("more_body"):  # one message (the usual case): returned as it came
                return b"".join([*chunks, chunk]) if chunks else chunk
            chunks.append(chunk)

    def _reject(self, event_type: str, exc: BadInput) -> None:
        self.service.metrics.event(event_type, exc.outcome)
        raise Response(exc.status, {"error": str(exc), "reason": exc.outcome})

    async def _run(self, event_type: str, coro) -> tuple[int, Any, bytes]:
        try:
            return 200, await coro, b"application/json"
        except REFUSALS as exc:
            self._refuse(event_type, exc)

    def _refuse(self, event_type: str, exc: Exception) -> None:
        """A call the service refused: counted, and answered 4xx or 503 naming the reason."""
        if isinstance(exc, BadInput):
            self._reject(event_type, exc)
        if isinstance(exc, NotReady):
            self.service.metrics.event(event_type, "not_ready")
            raise Response(503, {"error": f"not ready: {exc}", "reason": "not_ready"}) from None
        # the write-ahead log could not write: nothing acknowledged
        self.service.metrics.event(event_type, "storage_error")
        raise Response(503, {"error": str(exc), "reason": "storage_error"}) from None

    async def cloudevents(self, scope, receive):
        headers = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in CE_HEADERS}
        body = await self._body(scope, receive, "cloudevent")
        content_type = media_type(headers.get("content-type", ""))
        try:
            if content_type in (STRUCTURED, BATCH):
                events = decode.structured_events(body, batch=content_type == BATCH)
            elif "ce-specversion" not in headers:
                raise BadInput(
                    "not_cloudevent", "not a CloudEvent: no Ce-Specversion header and not structured mode"
                )
            else:
                if content_type not in self.settings.accept_content_types:
                    raise BadInput(
                        "unsupported_content_type", f"unsupported Content-Type {content_type!r}", 415
                    )
                events = [decode.binary_event(headers, body)]
        except BadInput as exc:
            self._reject("cloudevent", exc)
        try:  # not through _run: one coroutine less on the busiest path
            await self.service.accept_events(events)
        except REFUSALS as exc:
            self._refuse(events[0].kind, exc)
        return EMPTY_200

    async def _json(self, scope, receive, event_type: str) -> Any:
        body = await self._body(scope, receive, event_type)
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = media_type(value.decode("latin-1"))
        if content_type not in self.settings.accept_content_types:
            self._reject(
                event_type,
                BadInput("unsupported_content_type", f"expected application/json, got {content_type!r}", 415),
            )
        try:
            return decode.parse_json(body)
        except BadInput as exc:
            self._reject(event_type, exc)

    async def ingest(self, scope, receive):
        doc = await self._json(scope, receive, "ingest")
        return await self._run("ingest", self.service.ingest(doc))

    async def feedback(self, scope, receive):
        doc = await self._json(scope, receive, "feedback")
        doc, duplicates = decode.first_label_per_id(doc)
        status, answer, content_type = await self._run("feedback", self.service.feedback(doc))
        if duplicates:
            self.service.metrics.event("feedback", "duplicate_id", duplicates)
        return status, {**answer, "duplicates": duplicates}, content_type

    async def import_results(self, scope, receive):
        doc = await self._json(scope, receive, "import")
        return await self._run("import", imports.import_results(self.service, doc))

    # --- reading --------------------------------------------------------------------------------
    def _refuse_query(self, status: int, reason: str, message: str) -> None:
        """A bad read request: counted as events{type="query"}, which the rejected-events alert leaves out."""
        self.service.metrics.event("query", reason)
        raise Response(status, {"error": message, "reason": reason})

    async def drift(self, scope, receive):
        latest = self.service.checker.latest() if self.service.checker else None
        window = self.service.open_window() if self.service.ready else None
        if latest is None:
            return (
                404,
                {"error": "no window has been checked yet", "open_window": window},
                b"application/json",
            )
        return 200, {**latest, "open_window": window}, b"application/json"

    async def history(self, scope, receive):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        raw = query.get("limit", ["10"])[0]
        # isdigit() alone takes "²" and other Unicode digits, which int() refuses
        if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_LIMIT_DIGITS):
            self._refuse_query(
                400, "invalid_limit", f"limit must be a whole number below 10^9, got {raw[:20]!r}"
            )
        checker = self.service.checker
        results = checker.recent(min(int(raw), self.settings.history_size)) if checker else []
        return 200, {"model_name": self.settings.model_name, "results": results}, b"application/json"

    async def reports_index(self, scope, receive):
        reports = self.service.reports
        if reports is None:
            raise Response(404, {"error": "reports are disabled (reports_enabled: false) or not loaded yet"})
        return 200, reports.index_html(), b"text/html; charset=utf-8"

    async def report_file(self, name: str, send) -> None:
        reports = self.service.reports
        try:  # a name past the file system's limit raises ENAMETOOLONG; a report may expire meanwhile
            path = reports.path(name) if reports else None
            report = open(path, "rb") if path is not None else None  # noqa: SIM115 - closed below
        except OSError:
            report = None
        if report is None:
            self._refuse_query(404, "no_such_report", f"no such report: {name[:100]}")
        with report:
            await self._send_report(report, send)

    async def _send_report(self, report, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")],
            }
        )
        while chunk := report.read(REPORT_CHUNK):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def healthz(self, scope, receive):
        return 200, {"status": "alive"}, b"application/json"

    async def readyz(self, scope, receive):
        s = self.service
        problem = s.storage_problem() if s.ready else None
        if s.ready and problem is None:  # a damaged log still serves (the logger keeps delivering)
            log = s.wal.replay_report
            status = "degraded" if log.degraded else "ready"
            body = {"status": status, "open_window": s.open_window(), "log": log.as_dict()}
            return 200, body, b"application/json"
        reason = problem or s.failed or "reference loading or log replay in progress"
        return 503, {"status": "not ready", "reason": reason}, b"application/json"

    async def metrics(self, scope, receive):
        return 200, generate_latest(self.service.metrics.registry), CONTENT_TYPE_LATEST.encode()
