"""Write-ahead log with group commit.

Records are appended from the event loop; one writer thread writes everything that arrived while the
previous write was in progress and fsyncs it once (group commit), then wakes every waiter. A request is
acknowledged only after its record is written (and fsynced, under the default policy).

Layout: <dir>/wal-<n>.log segments. Frame: u32 length, u32 crc32, orjson payload. A torn tail (a
crash in the middle of a write) fails its CRC or length check and is cut off at replay: it was never
acknowledged. `rotate(snapshot)` starts a new segment whose first record is a full snapshot of the
state, then deletes the older segments, so the log stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

LOG = logging.getLogger(__name__)
HEADER = struct.Struct("<II")
MAX_RECORD = 1 << 30


def encode(record: Any) -> bytes:
    payload = orjson.dumps(record)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class WriteAheadLog:
    def __init__(self, directory: Path, fsync: str = "always", fsync_interval_ms: int = 50):
        self.dir = directory
        self.fsync_policy = fsync
        self.fsync_interval = fsync_interval_ms / 1000
        self.dir.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._buf: list[bytes] = []
        self._waiters: list[asyncio.Future] = []
        self._ops: list[tuple[str, bytes]] = []  # ordered writes and rotations queued before _buf
        self._closed = False
        self._fd = -1
        self._segment = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.bytes_in_segment = 0
        self.snapshot_bytes = 0
        self._last_fsync = 0.0
        self.error: BaseException | None = None

    # --- replay -------------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("wal-*.log"), key=lambda p: int(p.stem.split("-")[1]))

    def replay(self) -> Iterator[Any]:
        """Every intact record in order; truncates a torn tail of the last segment."""
        segments = self.segments()
        for i, path in enumerate(segments):
            data = path.read_bytes()
            pos = 0
            while pos + HEADER.size <= len(data):
                length, crc = HEADER.unpack_from(data, pos)
                payload = data[pos + HEADER.size : pos + HEADER.size + length]
                if length > MAX_RECORD or len(payload) != length or zlib.crc32(payload) != crc:
                    break
                yield orjson.loads(payload)
                pos += HEADER.size + length
            if pos != len(data):
                LOG.warning("write-ahead log %s: cutting a torn tail of %d bytes", path.name, len(data) - pos)
                if i == len(segments) - 1:
                    with open(path, "r+b") as fh:
                        fh.truncate(pos)
                        os.fsync(fh.fileno())
        if segments:
            self._segment = int(segments[-1].stem.split("-")[1])
            self.bytes_in_segment = segments[-1].stat().st_size

    # --- writing ------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self._segment == 0:
            self._segment = 1
        self._fd = os.open(self._path(self._segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._fsync_dir()
        self._thread = threading.Thread(target=self._run, name="wal-writer", daemon=True)
        self._thread.start()

    def append(self, record: Any) -> None:
        frame = encode(record)
        with self._cond:
            self._buf.append(frame)
            self.bytes_in_segment += len(frame)

    def commit(self) -> asyncio.Future:
        """A future resolved when everything appended so far is durable (per the fsync policy)."""
        fut = self._loop.create_future()
        with self._cond:
            if self.error is not None:
                fut.set_exception(OSError(f"write-ahead log failed: {self.error}"))
                return fut
            self._waiters.append(fut)
            self._cond.notify()
        return fut

    def rotate(self, snapshot: Any) -> None:
        """Start a new segment with this snapshot; older segments go once it is durable."""
        frame = encode(["s", snapshot])
        with self._cond:
            # Records already buffered belong to the old segment: they are written before the switch.
            if self._buf:
                self._ops.append(("data", b"".join(self._buf)))
                self._buf = []
            self._ops.append(("rotate", frame))
            self.bytes_in_segment = len(frame)
            self.snapshot_bytes = len(frame)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._buf or self._waiters or self._ops or self._closed):
                    self._cond.wait()
                ops, self._ops = self._ops, []
                buf, self._buf = self._buf, []
                waiters, self._waiters = self._waiters, []
                closing = self._closed
            try:
                for kind, data in ops:
                    if kind == "data":
                        self._write(data)
                    else:
                        self._rotate(data)
                if buf:
                    self._write(b"".join(buf))
                self._sync()
            except OSError as exc:  # disk full, I/O error: fail the waiters, never ack
                LOG.error("write-ahead log write failed: %s", exc)
                self.error = exc
            if waiters:
                self._loop.call_soon_threadsafe(_resolve, waiters, self.error)
            if closing:
                return

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _sync(self) -> None:
        if self.fsync_policy == "always":
            os.fdatasync(self._fd)
        elif self.fsync_policy == "interval":
            now = time.monotonic()
            if now - self._last_fsync >= self.fsync_interval:
                os.fdatasync(self._fd)
                self._last_fsync = now

    def _rotate(self, frame: bytes) -> None:
        old = self._segment
        os.fdatasync(self._fd)
        os.close(self._fd)
        self._segment += 1
        path = self._path(self._segment)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(frame)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self._fsync_dir()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        for seg in self.segments():
            if int(seg.stem.split("-")[1]) <= old:
                seg.unlink()

    def _path(self, n: int) -> Path:
        return self.dir / f"wal-{n:08d}.log"

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _resolve(waiters: list[asyncio.Future], error: BaseException | None) -> None:
    for fut in waiters:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(OSError(f"write-ahead log failed: {error}"))
