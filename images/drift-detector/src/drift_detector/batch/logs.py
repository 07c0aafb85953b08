"""The agent's blob-storage objects: listing them in a fixed order and reading their records.

KServe's blob logger (pkg/logger/store.go) writes one object per batch, keyed
`<prefix>/<namespace>/<isvc>/<component>/<store path>/<first id>-<request|response>.<json|parquet|csv>`.
A parquet record carries url, bytes (the payload, base64), contentType, reqType, id, sourceUri,
inferenceService, namespace, component, endpoint, metadata (JSON), annotations, certName and
tlsSkipVerify, and no event time; a json object is one LogRequest (a batch of one) or a list of them,
with `bytes` base64 too and an `occurrenceTime`. The object's last-modified time stands in for the
event time of parquet records.

Order: objects by (last modified, key), records in an object as the agent batched them. Every run over
the same objects sees the same sequence, so forms the same windows.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import orjson
import pyarrow.parquet as pq
from pyarrow import fs

FORMATS = {".parquet": "parquet", ".json": "json"}
COLUMNS = ["id", "reqType", "contentType", "bytes", "metadata"]


class LogsError(ValueError):
    """The logs cannot be read: the message names the object or setting."""


@dataclass(frozen=True)
class LogObject:
    rank: int  # position in the run's order
    path: str  # filesystem path (bucket/key on S3)
    format: str  # parquet | json
    mtime: float  # seconds since the epoch
    size: int


@dataclass(frozen=True)
class LogRecord:
    id: str
    req_type: str
    content_type: str
    body: bytes
    metadata: str  # JSON of header -> [values], as the Ce-Metadata header carries it
    ts: float


def filesystem(logs: str) -> tuple[fs.FileSystem, str]:
    """The filesystem and base path of --logs: s3://bucket/prefix (AWS_* settings) or a directory."""
    if not logs.startswith("s3://"):
        return fs.LocalFileSystem(), os.path.abspath(logs)
    parts = urlsplit(logs)
    if not parts.netloc:
        raise LogsError(f"--logs {logs!r}: no bucket")
    return s3_filesystem(), f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")


def s3_filesystem() -> fs.S3FileSystem:
    """Credentials and region as the agent takes them; AWS_ENDPOINT_URL selects a local server
    (path-style addressing, the scheme from the URL)."""
    options: dict = {
        "region": os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    }
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        options.update(access_key=key, secret_key=secret, session_token=os.environ.get("AWS_SESSION_TOKEN"))
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        options.update(endpoint_override=parts.netloc or parts.path, scheme=parts.scheme or "https")
    return fs.S3FileSystem(**options)


def list_objects(filesys: fs.FileSystem, base: str) -> list[LogObject]:
    """Every json or parquet object under base, in the run's order."""
    try:
        infos = filesys.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=False))
    except (OSError, FileNotFoundError) as exc:
        raise LogsError(f"cannot list {base}: {exc}") from None
    found = []
    for info in infos:
        fmt = FORMATS.get(os.path.splitext(info.path)[1])
        if info.type == fs.FileType.File and fmt:
            found.append((_seconds(info.mtime), info.path, fmt, info.size))
    found.sort()
    return [LogObject(rank, path, fmt, mtime, size) for rank, (mtime, path, fmt, size) in enumerate(found)]


def _seconds(mtime: datetime | None) -> float:
    return mtime.timestamp() if mtime is not None else 0.0


def read_records(filesys: fs.FileSystem, obj: LogObject) -> list[LogRecord]:
    try:
        if obj.format == "parquet":
            return _parquet_records(filesys, obj)
        with filesys.open_input_stream(obj.path) as stream:
            return _json_records(stream.read(), obj)
    except (OSError, ValueError) as exc:
        raise LogsError(f"cannot read {obj.path}: {exc}") from None


def _parquet_records(filesys: fs.FileSystem, obj: LogObject) -> list[LogRecord]:
    with filesys.open_input_file(obj.path) as handle:
        table = pq.read_table(handle, columns=COLUMNS)
    cols = [table.column(name).to_pylist() for name in COLUMNS]
    return [
        LogRecord(i or "", t or "", c or "", _base64(b), m or "", obj.mtime)
        for i, t, c, b, m in zip(*cols, strict=True)
    ]


def _json_records(raw: bytes, obj: LogObject) -> list[LogRecord]:
    doc = orjson.loads(raw)
    items = doc if isinstance(doc, list) else [doc]
    records = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("a json log object holds LogRequest objects")
        meta = item.get("metadata")
        records.append(
            LogRecord(
                str(item.get("id") or ""),
                str(item.get("reqType") or ""),
                str(item.get("contentType") or ""),
                _base64(item.get("bytes")),
                orjson.dumps(meta).decode() if meta else "",
                _occurred(item.get("occurrenceTime"), obj.mtime),
            )
        )
    return records


def _base64(text: str | None) -> bytes:
    return base64.b64decode(text, validate=True) if text else b""


def _occurred(text: str | None, default: float) -> float:
    """Go's RFC 3339 time, nanoseconds cut to what Python parses; the object's time when absent."""
    if not text or text.startswith("0001-01-01"):
        return default
    head, dot, frac = text.partition(".")
    if dot:
        digits = frac.rstrip("Z").split("+")[0].split("-")[0]
        zone = frac[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
