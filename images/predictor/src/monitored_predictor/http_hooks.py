"""What the predictor adds to KServe's FastAPI app: request ids, per-request metrics, error bodies.

`RequestMonitor` is a plain ASGI middleware (no per-request Request object) so it stays cheap. It
  * takes the request id from `x-request-id`, else `ce-id`, else makes one, hands it on to the model
    as `x-request-id` and returns it in the `x-request-id` response header, on every response;
  * refuses a body over `max_body_bytes` (413) before it is read in full, and any method but POST on
    the predict paths (405);
  * answers an exception that escapes the app itself (500, JSON, with the id) instead of leaving it to
    Starlette, whose 500 carries no request id;
  * for this model's predict paths, observes the latency of successful requests and counts every
    error response once, by the reason the exception handlers below record in the ASGI scope.
"""

from __future__ import annotations

import logging
import os
import time

import orjson
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .inputs import BadInput
from .model import ModelError
from .monitoring import PredictorMetrics

logger = logging.getLogger("monitored_predictor")

STATE_KEY = "monitored_predictor.error_reason"
OVER_LIMIT_KEY = "monitored_predictor.body_over_limit"
REQUEST_ID = b"x-request-id"
CE_ID = b"ce-id"
CONTENT_LENGTH = b"content-length"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # 1000 instances of 30 features as JSON take about 0.6 MiB


class BodyTooLarge(Exception):
    """A chunked body grew past the limit while the app was reading it."""


def predict_paths(model_name: str) -> frozenset[str]:
    """The routes KServe serves this model's predictions on (v1 and Open Inference Protocol v2)."""
    return frozenset({f"/v1/models/{model_name}:predict", f"/v2/models/{model_name}/infer"})


def fallback_reason(status: int) -> str | None:
    """Reason for an error response no handler of ours labelled.

    A 400 that reaches no handler of ours comes from KServe decoding the v1 body before the model
    sees it (bytes that are not JSON); any 5xx is the server's own failure.
    """
    if status == 400:
        return "malformed_json"
    if status >= 500:
        return "internal_error"
    return None


# Bits uuid.uuid4() fixes in a random 128-bit number: version 4 and the RFC 4122 variant.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> bytes:
    """`uuid.uuid4().hex` as bytes, without building a UUID object (a quarter of the cost)."""
    return b"%032x" % (int.from_bytes(os.urandom(16), "big") & _UUID4_CLEAR | _UUID4_SET)


def take_request_id(scope: dict) -> tuple[dict, bytes]:
    """The request's id: `x-request-id`, else `ce-id`, else a new one, added to the request headers."""
    ce_id = None
    for name, value in scope["headers"]:
        if name == REQUEST_ID:
            return scope, value
        if name == CE_ID:
            ce_id = value
    request_id = ce_id or new_request_id()
    if isinstance(scope["headers"], list):  # uvicorn builds a fresh list per request
        scope["headers"].append((REQUEST_ID, request_id))
    else:
        scope = {**scope, "headers": [*scope["headers"], (REQUEST_ID, request_id)]}
    return scope, request_id


class RequestMonitor:
    def __init__(
        self, app, metrics: PredictorMetrics, model_name: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ):
        self.app = app
        self.metrics = metrics
        self.paths = predict_paths(model_name)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope, request_id = take_request_id(scope)
        id_header = (REQUEST_ID, request_id)
        predict = scope["path"] in self.paths
        length = _content_length(scope)
        refusal = self._refusal(scope, predict, length)
        if refusal is not None:
            await self._answer(send, id_header, predict, *refusal)
            return
        if length is None:  # chunked: count the bytes as the app reads them
            receive = self._limited(scope, receive)

        start = time.perf_counter()
        responded = False

        async def send_monitored(message):
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
                message["headers"] = [*message.get("headers", ()), id_header]
                if predict:
                    self._record(scope, message["status"], start)
            await send(message)

        try:
            await self.app(scope, receive, send_monitored)
        except Exception as exc:
            if responded:
                raise
            await self._answer(send, id_header, predict, *_failure(exc))

    def _refusal(self, scope, predict: bool, length: int | None) -> tuple[int, str, str] | None:
        """(status, reason, message) for a request refused before the app sees it, else None."""
        if predict and scope["method"] != "POST":
            return 405, "method_not_allowed", f"{scope['method']} is not allowed here: predictions take POST"
        if length is not None and length > self.max_body_bytes:
            return 413, "body_too_large", f"the body has {length} bytes, max {self.max_body_bytes}"
        return None

    def _limited(self, scope, receive):
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                scope[OVER_LIMIT_KEY] = self.max_body_bytes  # FastAPI makes the exception a 400 on v2
                raise BodyTooLarge(f"the body has more than {self.max_body_bytes} bytes")
            return message

        return limited_receive

    def _record(self, scope, status: int, start: float) -> None:
        if status < 400:
            self.metrics.latency.observe(time.perf_counter() - start)
            return
        reason = scope.get(STATE_KEY) or fallback_reason(status)
        if reason:
            self.metrics.record_error(reason)

    async def _answer(self, send, id_header, predict: bool, status: int, reason: str, message: str) -> None:
        if predict:
            self.metrics.record_error(reason)
        headers = [(b"content-type", b"application/json"), id_header]
        if status == 405:
            headers.append((b"allow", b"POST"))
        if status == 413:  # the rest of the body stays unread: this connection cannot carry another request
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps({"error": message, "reason": reason})})


def _content_length(scope) -> int | None:
    """The declared body size, or None (chunked: counted while read)."""
    for name, value in scope["headers"]:
        if name == CONTENT_LENGTH:
            return int(value) if value.isdigit() else None
    return None


def _failure(exc: Exception) -> tuple[int, str, str]:
    """(status, reason, message) for an exception no handler answered."""
    if isinstance(exc, BodyTooLarge):
        return 413, "body_too_large", str(exc)
    logger.error("unhandled error: %s", exc, exc_info=exc)
    return 500, "internal_error", f"internal error: {type(exc).__name__}"


def _error_response(
    request: Request, status: int, reason: str, message: str, headers: dict | None = None
) -> JSONResponse:
    request.scope[STATE_KEY] = reason
    return JSONResponse(status_code=status, content={"error": message, "reason": reason}, headers=headers)


async def bad_input_handler(request: Request, exc: BadInput) -> JSONResponse:
    logger.warning("rejected request (%s): %s", exc.error_reason, exc)
    return _error_response(request, 400, exc.error_reason, str(exc))


async def model_error_handler(request: Request, exc: ModelError) -> JSONResponse:
    logger.error("model error: %s", exc, exc_info=exc.__cause__ or exc)
    return _error_response(request, 500, exc.error_reason, str(exc))


async def request_validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI validates the v2 body against the OIP schema; answer 400 (not 422) like every bad input."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
        message = f"the body is not valid JSON: {detail}".rstrip(": ")
        return _error_response(request, 400, "malformed_json", message)
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    message = f"the body is not an inference request: {where}: {first.get('msg', 'invalid')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return _error_response(request, 400, "invalid_request", message)


def unparsable_body_handler(paths: frozenset[str]):
    """FastAPI answers a v2 body it could not read (JSON nested about 1000 deep, or a chunked body our
    limit cut off) with a bare 400 `{"detail": ...}`: on the predict paths give it our body and reason,
    elsewhere FastAPI's answer."""

    async def handler(request: Request, exc: HTTPException):
        limit = request.scope.get(OVER_LIMIT_KEY)
        if limit is not None:
            message = f"the body has more than {limit} bytes"
            return _error_response(request, 413, "body_too_large", message, {"connection": "close"})
        if request.url.path in paths and exc.status_code == 400:
            message = f"the body is not valid JSON or is nested too deeply to parse ({exc.detail})"
            return _error_response(request, 400, "malformed_json", message)
        return await http_exception_handler(request, exc)

    return handler


def install(
    app: FastAPI, metrics: PredictorMetrics, model_name: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> None:
    """Add the middleware and handlers; call before the server starts (Starlette freezes both then).

    KServe registers its own handlers for InvalidInput and InferenceError when it starts; ours are for
    their subclasses, so Starlette's most-specific-class lookup still picks ours.
    """
    app.add_middleware(RequestMonitor, metrics=metrics, model_name=model_name, max_body_bytes=max_body_bytes)
    app.add_exception_handler(BadInput, bad_input_handler)
    app.add_exception_handler(ModelError, model_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(HTTPException, unparsable_body_handler(predict_paths(model_name)))
