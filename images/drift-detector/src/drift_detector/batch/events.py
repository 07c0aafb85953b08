"""One logged record as the online path would see it: the same checks and the same decoder.

The agent in HTTP mode sends each record as a binary-mode CloudEvent; the service (app.cloudevents,
Service._decode_event) refuses or ignores it, or decodes its rows or predictions. Here each record is
decoded on its own (executors do this in parallel); what depends on the join state (a response to an
ignored request, a metadata answer to a request awaiting predictions, a prediction count mismatch) is
decided later, in order, by the sequencer, and so are the service's bounds (Service._within_bounds
checks them after those decisions): each record carries what they need, its row count and its size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from drift_detector import decode
from drift_detector.batch.logs import LogRecord
from drift_detector.decode import REQUEST_TYPE, BadInput
from drift_detector.service import received_size

OK = "ok"
IGNORED = "ignored"  # a logged call that is no inference (empty body)


@dataclass
class Decoded:
    pos: int  # position in the run's sequence
    ts: float
    id: str  # Ce-Id: joins request and response
    request: bool
    request_id: str
    outcome: str  # OK, IGNORED or the BadInput reason the service would answer with
    payload: list[Any] | None  # feature rows (request) or predictions (response)
    inference: bool = True  # response only: shaped like predictions (not a metadata answer)
    count: int = 0  # rows or predictions in payload
    size: int = 0  # bytes the service would size payload by (the received body): its pending table's unit
    quality: dict | None = None  # data-quality counts by (feature, kind), as the service counts them

    def meta(self) -> Decoded:
        """This record without its payload: what the sequencer needs."""
        return Decoded(
            self.pos,
            self.ts,
            self.id,
            self.request,
            self.request_id,
            self.outcome,
            None,
            self.inference,
            self.count,
            self.size,
            self.quality or None,
        )


def position(rank: int, index: int) -> int:
    """One integer per record: object rank, then record index (an agent batch is far below 2^32)."""
    return (rank << 32) | index


def decode_record(record: LogRecord, pos: int, engine, settings) -> Decoded:
    headers = {"ce-id": record.id, "ce-type": record.req_type, "content-type": record.content_type}
    if record.metadata:
        headers["ce-metadata"] = record.metadata
    request = record.req_type == REQUEST_TYPE
    out = Decoded(pos, record.ts, record.id, request, record.id, OK, None)
    try:
        event = decode.binary_event(headers, record.body)
        out.request_id = event.request_id
        _check_envelope(record, settings)
        if decode.is_empty(event.body):
            out.outcome = IGNORED
            return out
        doc = decode.as_json(event.body)
        dq: dict = defaultdict(int)
        if request:
            out.payload = decode.decode_request(engine.schema, doc, dq)
        else:
            out.inference = decode.is_inference_response(doc)
            out.payload = _predictions(doc, engine, settings)
        out.count, out.size = len(out.payload), received_size(event, out.payload)
        out.quality = dict(dq)
    except BadInput as exc:
        out.outcome = exc.outcome
        out.payload, out.count, out.size = None, 0, 0
    return out


def _check_envelope(record: LogRecord, settings) -> None:
    """What the HTTP handler refuses before the service decodes (app.App._body and cloudevents)."""
    if len(record.body) > settings.max_body_bytes:
        raise BadInput("too_large", f"body exceeds {settings.max_body_bytes} bytes", 413)
    content_type = decode.media_type(record.content_type)
    if content_type not in settings.accept_content_types:
        raise BadInput("unsupported_content_type", f"unsupported Content-Type {content_type!r}", 415)


def _predictions(doc: Any, engine, settings) -> list[Any]:
    preds = decode.decode_response(doc, settings.prediction_output, settings.positive_class_index)
    if not engine.prediction_numeric:
        return preds
    out = []
    for value in preds:  # Service._prediction: labels of a numeric prediction column must parse
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise BadInput("non_numeric", f"prediction {value[:40]!r} is not a number") from None
        out.append(value)
    return out
