"""What the predictor adds to KServe's FastAPI app: request ids, per-request metrics, error bodies.

`RequestMonitor` is a plain ASGI middleware (no per-request Request object) so it stays cheap. It
  * takes the request id from `x-request-id`, else `ce-id`, else makes one, hands it on to the model
    as `x-request-id` and returns it in the `x-request-id` response header;
  * for this model's predict paths, observes the latency of successful requests and counts every
    error response once, by the reason the exception handlers below record in the ASGI scope.
"""

from __future__ import annotations

import logging
import os
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .inputs import BadInput
from .model import ModelError
from .monitoring import PredictorMetrics

logger = logging.getLogger("monitored_predictor")

STATE_KEY = "monitored_predictor.error_reason"
REQUEST_ID = b"x-request-id"
CE_ID = b"ce-id"


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
    def __init__(self, app, metrics: PredictorMetrics, model_name: str):
        self.app = app
        self.metrics = metrics
        self.paths = predict_paths(model_name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope, request_id = take_request_id(scope)
        id_header = (REQUEST_ID, request_id)

        if scope["path"] not in self.paths:

            async def send_with_id(message):
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), id_header]
                await send(message)

            await self.app(scope, receive, send_with_id)
            return

        start = time.perf_counter()
        responded = False

        async def send_monitored(message):
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
                message["headers"] = [*message.get("headers", ()), id_header]
                status = message["status"]
                if status < 400:
                    self.metrics.latency.observe(time.perf_counter() - start)
                else:
                    reason = scope.get(STATE_KEY) or fallback_reason(status)
                    if reason:
                        self.metrics.record_error(reason)
            await send(message)

        try:
            await self.app(scope, receive, send_monitored)
        except Exception:
            if not responded:  # Starlette's outermost middleware turns this into a 500 after us
                self.metrics.record_error(scope.get(STATE_KEY) or "internal_error")
            raise


def _error_response(request: Request, status: int, reason: str, message: str) -> JSONResponse:
    request.scope[STATE_KEY] = reason
    return JSONResponse(status_code=status, content={"error": message, "reason": reason})


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


def install(app: FastAPI, metrics: PredictorMetrics, model_name: str) -> None:
    """Add the middleware and handlers; call before the server starts (Starlette freezes both then).

    KServe registers its own handlers for InvalidInput and InferenceError when it starts; ours are for
    their subclasses, so Starlette's most-specific-class lookup still picks ours.
    """
    app.add_middleware(RequestMonitor, metrics=metrics, model_name=model_name)
    app.add_exception_handler(BadInput, bad_input_handler)
    app.add_exception_handler(ModelError, model_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
