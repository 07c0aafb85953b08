"""Write-ahead log with group commit.

Records are appended on the event loop; once per loop iteration everything appended is written with
one os.write (page cache: survives a killed process). Under the default policy (`always`) the waiters
are acknowledged only after an fdatasync, which runs in a helper thread: while one fsync is in flight
the next records are written and queue up, and one fsync then covers all of them (group commit).

Layout: <dir>/wal-<n>.log segments, zero-filled ahead of the writes (CHUNK at a time, by the helper
thread) so that an fdatasync flushes data only, never the file size: about half the latency of an
appending log. Each segment opens with a versioned header; each record is a typed frame with a CRC and
a sequence number (wal_format.py). `rotate(snapshot)` starts a new segment whose first record is a full
snapshot of the state, then deletes the segments before the previous one: the previous one stays so
that a snapshot that cannot be read falls back to the one before it. Replay (wal_replay.py) zeroes a
torn tail (a crash in the middle of a write, never acknowledged) and skips and counts corruption in the
middle, never destroying a readable record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from drift_detector.wal_format import encode, segment_header
from drift_detector.wal_replay import Replay, ReplayReport, segment_number

LOG = logging.getLogger(__name__)
CHUNK = 4 * 1024 * 1024  # zeroed ahead of the write offset


class WriteAheadLog:
    def __init__(self, directory: Path, fsync: str = "always", fsync_interval_ms: int = 50):
        self.dir = directory
        self.fsync_policy = fsync
        self.fsync_interval = fsync_interval_ms / 1000
        self.dir.mkdir(parents=True, exist_ok=True)
        self._buf: list[bytes] = []  # encoded records not yet written
        self._waiters: list[asyncio.Future] = []  # commits waiting for the next write
        self._sync_waiters: list[asyncio.Future] = []  # written, waiting for the next fsync
        self._flush_scheduled = False
        self._syncing = False
        self._rotation: bytes | None = None  # snapshot frame of a rotation waiting for an fsync
        self._before_rotation: list[bytes] = []  # records that precede that snapshot
        self._fd = -1
        self._offset = 0  # end of the data in the current segment
        self._allocated = 0  # end of the zeroed region that writes may use without racing the zeroing
        self._extending = False  # the helper thread is zeroing [_allocated, _allocated + CHUNK)
        self._segment = 0
        self._fresh = True  # the segment to write is new: it needs a header
        self._seq = 0  # sequence number of the last record appended
        self._base = 1  # first segment that replay may need: the ones before it go at the next rotation
        self.replay_report = ReplayReport()
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.bytes_in_segment = 0
        self.snapshot_bytes = 0
        self._last_fsync = 0.0
        self.error: BaseException | None = None

    # --- replay -------------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("wal-*.log"), key=segment_number)

    def replay(self) -> Iterator[list]:
        """Every readable record in order (see wal_replay.py); `replay_report` tells what was found.

        Raises LogFormatError when the log cannot be replayed to a state it can prove."""
        segments = self.segments()
        replay = Replay(self.dir, segments)
        self.replay_report = replay.report
        yield from replay.records()
        self._seq = replay.last_seq
        self._base = replay.base or 1
        if replay.tail is not None:  # keep appending to the newest segment
            self._segment, self._offset, self._allocated = replay.tail
            self._fresh = False
        elif segments:  # the newest segment is in the old format or its header is damaged
            self._segment = segment_number(segments[-1]) + 1
        self.bytes_in_segment = self._offset

    # --- writing ------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self._segment == 0:
            self._segment = 1
        self._fd = os.open(self._path(self._segment), os.O_RDWR | os.O_CREAT, 0o640)
        if self._fresh:  # durable with the first commit's fdatasync
            self._write(segment_header(self._seq, snapshot=False))
            self.bytes_in_segment = self._offset
        self._fsync_dir()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-fsync")
        self._maybe_extend()

    def append(self, record: list) -> None:
        self._seq += 1
        frame = encode(record, self._seq)
        self._buf.append(frame)
        self.bytes_in_segment += len(frame)

    def has_unwritten(self) -> bool:
        return bool(self._buf or self._before_rotation)

    def commit(self) -> asyncio.Future:
        """A future resolved when everything appended so far is durable (per the fsync policy)."""
        fut = self._loop.create_future()
        if self.error is not None:
            fut.set_exception(OSError(f"write-ahead log failed: {self.error}"))
            return fut
        self._waiters.append(fut)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def rotate(self, snapshot: Any) -> None:
        """Start a new segment with this snapshot; the segments before the current one's start go later."""
        # Records appended so far belong to the old segment; later ones follow the snapshot.
        self._before_rotation += self._buf
        self._buf = []
        # The snapshot carries the number of the last record it includes: the numbers stay gapless.
        self._rotation = segment_header(self._seq, snapshot=True) + encode(["s", snapshot], self._seq)
        self.bytes_in_segment = self.snapshot_bytes = len(self._rotation)
        if not self._syncing and not self._extending:
            self._rotate()

    def close(self) -> None:
        """Write and sync whatever is left (clean shutdown)."""
        if self._fd < 0:
            return
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        try:
            if self._rotation is not None:
                self._rotate()
            if self._buf:
                self._write(b"".join(self._buf))
                self._buf = []
            os.fdatasync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
        _resolve(self._waiters + self._sync_waiters, self.error)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._rotation is not None:
            return  # held back until the rotation (after the in-flight fsync) is done
        data = b"".join(self._buf)
        if self._extending and self._offset + len(data) > self._allocated:
            return  # would race the zeroing: written when it is done
        waiters, self._waiters = self._waiters, []
        try:
            if data:
                self._write(data)
                self._buf = []
                self._maybe_extend()
        except OSError as exc:  # disk full, I/O error: fail the waiters, never acknowledge
            LOG.error("write-ahead log write failed: %s", exc)
            self.error = exc
            _resolve(waiters, exc)
            return
        if self.fsync_policy == "always":
            self._sync_waiters.extend(waiters)
            if not self._syncing:
                self._start_sync()
            return
        _resolve(waiters, None)
        due = time.monotonic() - self._last_fsync >= self.fsync_interval
        if self.fsync_policy == "interval" and due and not self._syncing:
            self._start_sync()

    def _start_sync(self) -> None:
        waiters, self._sync_waiters = self._sync_waiters, []
        self._syncing = True
        self._last_fsync = time.monotonic()
        future = self._loop.run_in_executor(self._executor, os.fdatasync, self._fd)
        future.add_done_callback(lambda f: self._synced(f, waiters))

    def _synced(self, future: asyncio.Future, waiters: list[asyncio.Future]) -> None:
        self._syncing = False
        error = future.exception()
        if error is not None:
            LOG.error("write-ahead log fsync failed: %s", error)
            self.error = error
        _resolve(waiters, error)
        if self._rotation is not None and not self._extending:
            self._rotate()
            self._flush()
        elif self._sync_waiters:
            self._start_sync()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, self._offset)
            self._offset += n
            view = view[n:]

    def _maybe_extend(self) -> None:
        """Zero the next CHUNK in the helper thread before the writes get there."""
        if self._extending or self._executor is None or self._allocated - self._offset > CHUNK // 2:
            return
        self._extending = True
        self._allocated = start = max(self._allocated, self._offset)
        future = self._loop.run_in_executor(self._executor, _zero_fill, self._fd, start, CHUNK)
        future.add_done_callback(lambda f: self._extended(f, start))

    def _extended(self, future: asyncio.Future, start: int) -> None:
        self._extending = False
        if future.exception() is None:
            self._allocated = start + CHUNK
        else:  # not fatal: writes past the zeroed region simply grow the file
            LOG.warning("write-ahead log: zero-filling failed: %s", future.exception())
        if self._rotation is not None and not self._syncing:
            self._rotate()
        if self._buf or self._waiters:
            self._flush()
        else:
            self._maybe_extend()

    def _rotate(self) -> None:
        """Old segment synced, the new one holds the snapshot, then the segments replay cannot need go."""
        frame, self._rotation = self._rotation, None
        try:
            if self._before_rotation:
                self._write(b"".join(self._before_rotation))
                self._before_rotation = []
            os.fdatasync(self._fd)
            os.close(self._fd)
            self._segment += 1
            path = self._path(self._segment)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(frame)
                fh.write(bytes(CHUNK))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            self._fsync_dir()
            self._fd = os.open(path, os.O_RDWR)
            self._offset, self._allocated = len(frame), len(frame) + CHUNK
        except OSError as exc:
            LOG.error("write-ahead log rotation failed: %s", exc)
            self.error = exc
            return
        _resolve(self._sync_waiters, None)  # their records were in the old segment, now synced
        self._sync_waiters = []
        for seg in self.segments():  # keep what replay needs if the new snapshot cannot be read
            if segment_number(seg) < self._base:
                seg.unlink()
        self._base = self._segment

    def _path(self, n: int) -> Path:
        return self.dir / f"wal-{n:08d}.log"

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _zero_fill(fd: int, start: int, size: int) -> None:
    os.pwrite(fd, bytes(size), start)
    os.fdatasync(fd)


def _resolve(waiters: list[asyncio.Future], error: BaseException | None) -> None:
    for fut in waiters:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(OSError(f"write-ahead log failed: {error}"))
