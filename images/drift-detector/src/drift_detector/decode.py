"""CloudEvents from KServe's payload logger, and KServe v1 / Open Inference Protocol v2 bodies."""

from __future__ import annotations

import base64
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from drift_detector.schema import UNEXPECTED_COLUMN, BadInput, Schema

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
NUMERIC_V2 = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
}  # fmt: skip


@dataclass
class Event:
    id: str
    type: str  # REQUEST_TYPE | RESPONSE_TYPE
    content_type: str
    body: bytes | Any  # raw bytes (binary mode) or already parsed JSON (structured mode)
    request_id: str  # the key feedback joins on: X-Request-Id from Ce-Metadata, else Ce-Id

    @property
    def kind(self) -> str:
        """The events{type} label: request or response."""
        return "request" if self.type == REQUEST_TYPE else "response"


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def binary_event(headers: dict[str, str], body: bytes) -> Event:
    """Binary mode: attributes in Ce-* headers, the body is the logged request or response verbatim."""
    event_id = headers.get("ce-id", "")
    event_type = headers.get("ce-type", "")
    if not event_id:
        raise BadInput("missing_id", "CloudEvent without Ce-Id header")
    _check_type(event_type)
    return Event(event_id, event_type, headers.get("content-type", ""), body, _request_id(headers, event_id))


def structured_events(body: bytes, batch: bool) -> list[Event]:
    """Structured (or batched) mode: one JSON envelope per event, data inline or base64."""
    doc = parse_json(body)
    envelopes = doc if batch else [doc]
    if not isinstance(envelopes, list) or not all(isinstance(e, dict) for e in envelopes):
        raise BadInput("invalid_event", "structured CloudEvent must be a JSON object (batch: a list of them)")
    if not envelopes:
        raise BadInput("empty_batch", "the CloudEvents batch holds no event")
    events = []
    for env in envelopes:
        event_id = str(env.get("id") or "")
        if not event_id:
            raise BadInput("missing_id", "CloudEvent without id attribute")
        event_type = str(env.get("type") or "")
        _check_type(event_type)
        content_type = str(env.get("datacontenttype") or "application/json")
        if "data_base64" in env:
            try:
                data: Any = base64.b64decode(env["data_base64"], validate=True)
            except (ValueError, TypeError):
                raise BadInput("invalid_event", "data_base64 is not valid base64") from None
        elif "data" in env:
            data = env["data"]
            if isinstance(data, str):
                data = data.encode()
        else:
            raise BadInput("invalid_event", f"CloudEvent {event_id!r} has no data")
        meta = {"ce-metadata": env["metadata"]} if isinstance(env.get("metadata"), str) else {}
        events.append(Event(event_id, event_type, content_type, data, _request_id(meta, event_id)))
    return events


def _check_type(event_type: str) -> None:
    if event_type not in (REQUEST_TYPE, RESPONSE_TYPE):
        raise BadInput("unknown_type", f"unknown CloudEvent type {event_type[:100]!r}")


def _request_id(headers: dict[str, str], event_id: str) -> str:
    raw = headers.get("ce-metadata")
    if raw and raw != "{}":
        try:
            meta = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return event_id
        if isinstance(meta, dict):
            for key, values in meta.items():
                if key.lower() == "x-request-id" and isinstance(values, list) and values:
                    return str(values[0])
    return event_id


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInput("invalid_json", f"body is not valid JSON: {exc}") from None


def as_json(data: bytes | Any) -> Any:
    return parse_json(data) if isinstance(data, bytes | bytearray | memoryview) else data


# --- requests -----------------------------------------------------------------------------------


def decode_request(schema: Schema, doc: Any, dq: Counter) -> list[list[Any]]:
    """Feature rows from a v1 (`instances`/`inputs`) or v2 (`inputs` tensors) request."""
    if not isinstance(doc, dict):
        raise BadInput("invalid_body", "request body must be a JSON object")
    inputs = doc.get("inputs")
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) and "datatype" in inputs[0]:
        _check_tensors(inputs)
        return _v2_rows(schema, inputs, dq)
    instances = doc.get("instances", inputs)
    if not isinstance(instances, list) or not instances:
        raise BadInput("invalid_body", "request has no 'instances' (v1) or 'inputs' (v2) list")
    return [instance_row(schema, inst, dq) for inst in instances]


def instance_row(schema: Schema, inst: Any, dq: Counter, parse_strings: bool = False) -> list[Any]:
    if isinstance(inst, dict):
        return keyed_row(schema, inst, dq)
    if not isinstance(inst, list):
        raise BadInput("invalid_body", f"instance must be a list or an object, got {type(inst).__name__}")
    if len(inst) != len(schema.names):
        raise BadInput(
            "wrong_feature_count", f"instance has {len(inst)} values, the reference has {len(schema.names)}"
        )
    return schema.row(inst, dq, parse_strings)


def keyed_row(schema: Schema, inst: dict, dq: Counter, ignore: tuple[str, ...] = ()) -> list[Any]:
    row = []
    found = 0
    for j, name in enumerate(schema.names):
        if name in inst:
            found += 1
            row.append(schema.normalize(j, inst[name], dq))
        else:
            dq[(name, "missing_column")] += 1
            row.append(None)
    if found + len(ignore) < len(inst):
        for key in inst:
            if key not in schema.index and key not in ignore:
                dq[(schema.unexpected_label(str(key)[:100]), UNEXPECTED_COLUMN)] += 1
    return row


def _check_tensors(inputs: list) -> None:
    """Every v2 input is an object named by a string: a list or object name would otherwise reach
    dict lookups (unhashable) and a bare number the attribute lookups of _v2_rows."""
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise BadInput(
                "invalid_body", f"v2 input {i} must be a tensor object, got {type(tensor).__name__}"
            )
        if not isinstance(tensor.get("name"), str):
            raise BadInput("invalid_body", f"v2 input {i}: tensor name must be a string")


def _v2_rows(schema: Schema, inputs: list[dict], dq: Counter) -> list[list[Any]]:
    names = schema.names
    if len(inputs) == 1 and inputs[0].get("name") not in schema.index:
        tensor = inputs[0]
        data, shape = _tensor(tensor)
        width = len(names)
        if len(shape) != 2 or shape[1] != width:
            raise BadInput(
                "wrong_feature_count", f"tensor {tensor.get('name')!r} shape {shape}: expected [N, {width}]"
            )
        rows = [data[i * width : (i + 1) * width] for i in range(shape[0])]
        text = tensor.get("datatype") == "BYTES"
        return [instance_row(schema, r, dq, parse_strings=text) for r in rows]
    columns: dict[str, list] = {}
    n = None
    for tensor in inputs:
        name = str(tensor.get("name"))
        data, shape = _tensor(tensor)
        if (len(shape) == 2 and shape[1] != 1) or len(shape) not in (1, 2):
            raise BadInput(
                "invalid_shape", f"tensor {name!r} shape {shape}: expected [N] or [N, 1] per feature"
            )
        if n is not None and shape[0] != n:
            raise BadInput("invalid_shape", f"tensor {name!r} has {shape[0]} rows, others have {n}")
        n = shape[0]
        if name not in schema.index:
            dq[(schema.unexpected_label(name[:100]), UNEXPECTED_COLUMN)] += 1
            continue
        columns[name] = data
    rows = []
    for i in range(n or 0):
        row = []
        for j, name in enumerate(names):
            col = columns.get(name)
            if col is None:
                dq[(name, "missing_column")] += 1
                row.append(None)
            else:
                row.append(schema.normalize(j, col[i], dq))
        rows.append(row)
    if not rows:
        raise BadInput("invalid_body", "v2 request has no rows")
    return rows


def _tensor(tensor: dict) -> tuple[list, list[int]]:
    name = tensor.get("name")
    shape, data, datatype = tensor.get("shape"), tensor.get("data"), tensor.get("datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape) or not shape:
        raise BadInput("invalid_shape", f"tensor {name!r}: shape must be a list of non-negative integers")
    if datatype not in NUMERIC_V2 and datatype != "BYTES":
        raise BadInput("invalid_datatype", f"tensor {name!r}: unknown datatype {str(datatype)[:20]!r}")
    if not isinstance(data, list):
        raise BadInput("invalid_body", f"tensor {name!r}: data must be a list")
    flat = _flatten(data) if data and isinstance(data[0], list) else data
    if len(flat) != math.prod(shape):
        raise BadInput("invalid_shape", f"tensor {name!r}: {len(flat)} values do not fill shape {shape}")
    if datatype == "BYTES":
        flat = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in flat]
    return flat, shape


def _flatten(data: list) -> list:
    out: list = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


# --- responses ----------------------------------------------------------------------------------


def is_empty(body: bytes | Any) -> bool:
    """A logged call without a body: KServe's agent logs a GET (model metadata, readiness) like this."""
    if isinstance(body, memoryview):
        body = body.tobytes()
    if isinstance(body, bytes | bytearray):
        return not body or body.isspace()  # no copy of a large body
    return body is None


def is_inference_response(doc: Any) -> bool:
    """False for the JSON objects KServe answers to a GET: {"name", "ready"} (v1 model), {"models"},
    {"status": "alive"}, v2 {"live"}/{"ready"}/server metadata, and v2 model metadata, whose
    `outputs` describe tensors (name, datatype, shape) without `data`."""
    if not isinstance(doc, dict):
        return True  # not a metadata object: decode it, and refuse it if it is no response either
    if "predictions" in doc:
        return True
    outputs = doc.get("outputs")
    return isinstance(outputs, list) and any(isinstance(o, dict) and "data" in o for o in outputs)


def decode_response(doc: Any, output_name: str, class_index: int) -> list[Any]:
    """One prediction per instance: a number (score or value) or a label."""
    if not isinstance(doc, dict):
        raise BadInput("invalid_body", "response body must be a JSON object")
    if "predictions" in doc:
        preds = doc["predictions"]
        if not isinstance(preds, list):
            raise BadInput("invalid_body", "'predictions' must be a list")
        return [prediction_value(p, class_index) for p in preds]
    outputs = doc.get("outputs")
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
        raise BadInput("invalid_body", "response has no 'predictions' (v1) or 'outputs' (v2) list")
    tensor = next((o for o in outputs if o.get("name") == output_name), outputs[0])
    data, shape = _tensor(tensor)
    if len(shape) == 1:
        return [prediction_value(v, class_index) for v in data]
    width = math.prod(shape[1:])
    return [prediction_value(data[i * width : (i + 1) * width], class_index) for i in range(shape[0])]


def prediction_value(value: Any, class_index: int) -> Any:
    if isinstance(value, list):  # all class scores: keep the positive class's
        if not value:
            raise BadInput("invalid_body", "empty prediction list")
        try:
            value = value[class_index]
        except IndexError:
            raise BadInput("invalid_body", f"prediction has no class index {class_index}") from None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) or value is None:
        return value
    raise BadInput("invalid_body", f"prediction must be a number or a label, got {type(value).__name__}")


# --- feedback -----------------------------------------------------------------------------------


def first_label_per_id(doc: Any) -> tuple[Any, int]:
    """Feedback with each id once, and how many repeats were dropped.

    A logged prediction takes one label (the first, as across requests: labelling consumes it), so a
    repeated id in one body is a duplicate, not another match. Only well-formed repeats are dropped:
    a malformed item still reaches validation and is refused.
    """
    items = doc.get("feedback") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        return doc, 0
    seen: set[str] = set()
    kept = []
    for item in items:
        if isinstance(item, dict) and item.get("id") is not None and "label" in item:
            rid = str(item["id"])
            if rid in seen:
                continue
            seen.add(rid)
        kept.append(item)
    dropped = len(items) - len(kept)
    if not dropped:
        return doc, 0
    return ({**doc, "feedback": kept} if isinstance(doc, dict) else kept), dropped
