"""Write-ahead log with group commit.

Records are appended on the event loop and written once per commit into the page cache (survives a
killed process): at once when the commit waits for no fdatasync, else once per loop iteration for all
the commits of that iteration. `mapped` (the default, setting wal_write: mmap): they are copied into a
shared memory map of the space zeroed ahead, under 1 us where a pwrite took 10-15 us of CPU in the
service (it lets go of the GIL, which the other threads then take). A write past the map (no zeroed
room left) still goes through pwrite, so a full disk is refused the same way. pwrite for every write
(wal_write: pwrite) is for copy-on-write file systems, where an overwrite needs new blocks and a full
disk would stop a mapped write with SIGBUS.

When a commit is acknowledged depends on the policy and on who waits:
- `interval` (default): after the write; an fdatasync follows within `fsync_interval` of it (a timer,
  so a write that no traffic follows is synced too). A durable commit (a caller that retries: ingest,
  feedback) is acknowledged after an fdatasync that covers it, as under `always`.
- `always`: every commit after an fdatasync that covers it.
- `never`: after the write; the kernel writes back in its own time.
fdatasync runs in a helper thread: while one is in flight the next records are written and queue up,
and one fdatasync then covers all of them (group commit).

Layout: <dir>/wal-<n>.log segments, zero-filled ahead of the writes (CHUNK at a time, by the helper
thread) so that an fdatasync flushes data only, never the file size: about half the latency of an
appending log. Each segment opens with a versioned header; each record is a typed frame with a CRC and
a sequence number (wal_format.py). `rotate(snapshot)` starts a new segment whose first record is a full
snapshot of the state, then deletes the segments before the previous one: the previous one stays so
that a snapshot that cannot be read falls back to the one before it. Replay (wal_replay.py) zeroes a
torn tail (a crash in the middle of a write, never acknowledged) and skips and counts corruption in the
middle, never destroying a readable record.

Storage failures. A failed write or fsync puts the log in `error`: the records not yet written are
dropped (memory stays bounded while the disk refuses), their waiters fail, a partly written batch is
zeroed again, and `on_failure` tells the owner, which rebuilds its state from what the log holds and
calls `probe()` until a write and an fsync succeed again. The next CHUNK is zero-filled only while the
file system keeps RESERVE bytes free after it; without that room the log says so (`no_room`) and
refuses a batch that would grow the file rather than take the last free space. A rotation whose new
segment cannot be written is abandoned and retried later: the old segment keeps taking records.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import mmap
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from drift_detector.wal_format import encode, segment_header
from drift_detector.wal_replay import Replay, ReplayReport, segment_number

LOG = logging.getLogger(__name__)
CHUNK = 4 * 1024 * 1024  # zeroed ahead of the write offset
RESERVE = 1024 * 1024  # free bytes a zero-fill must leave on the file system
ROTATE_RETRY_SECONDS = 5.0  # after a rotation failed, the old segment keeps taking records this long


class NoRoom(OSError):
    """The file system has no room for the next zero-filled chunk."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)


class WriteAheadLog:
    def __init__(
        self, directory: Path, fsync: str = "interval", fsync_interval_ms: int = 200, mapped: bool = True
    ):
        self.dir = directory
        self.mapped = mapped  # records are copied into _map rather than pwrite (see the docstring)
        self.fsync_policy = fsync
        self.fsync_interval = fsync_interval_ms / 1000
        self.dir.mkdir(parents=True, exist_ok=True)
        self._buf: list[bytes] = []  # encoded records not yet written
        self._waiters: list[asyncio.Future] = []  # commits waiting for the next write
        self._durable_waiters: list[asyncio.Future] = []  # ... then for an fdatasync (policy interval)
        self._sync_waiters: list[asyncio.Future] = []  # written, waiting for the next fsync
        self._flush_scheduled = False
        self._syncing = False
        self._unsynced = False  # bytes written since the last fdatasync began
        self._sync_timer: asyncio.TimerHandle | None = None  # policy interval: the next fdatasync
        self._rotation: bytes | None = None  # snapshot frame of a rotation waiting for an fsync
        self._before_rotation: list[bytes] = []  # records that precede that snapshot
        self._fd = -1
        self._map: mmap.mmap | None = None  # the segment up to _allocated, shared with the page cache
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
        self.error: BaseException | None = None  # set by a failed write or fsync, cleared by probe()
        self.no_room: str | None = None  # why the next chunk could not be zero-filled
        self.rotate_not_before = 0.0  # monotonic time; a failed rotation waits this long
        self._dirty: tuple[int, int] | None = None  # bytes of a failed write that could not be zeroed
        # on_failure(kind, error, records_dropped): kind is write, fsync, rotate or no_room.
        self.on_failure: Callable[[str, BaseException, int], None] | None = None

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
        self._remap()
        self._maybe_extend()

    def append(self, record: list) -> None:
        self._seq += 1
        frame = encode(record, self._seq)
        self._buf.append(frame)
        self.bytes_in_segment += len(frame)

    def has_unwritten(self) -> bool:
        return bool(self._buf or self._before_rotation)

    def commit(self, durable: bool = False) -> asyncio.Future:
        """A future resolved when everything appended so far is acknowledged by the fsync policy;
        durable: under `interval`, only once an fdatasync covers it (for callers that retry)."""
        fut = self._loop.create_future()
        if self.error is not None:
            fut.set_exception(OSError(f"write-ahead log failed: {self.error}"))
            return fut
        (self._durable_waiters if durable else self._waiters).append(fut)
        if not durable and self.fsync_policy != "always":
            # Nothing to wait for but the write: written now, so the caller goes on without yielding
            # (a loop turn there and back costs more than the write it could share).
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def retry_room(self) -> None:
        """While there was no room for the next chunk: look again (the timer calls this)."""
        if self.no_room is not None and self.error is None:
            self._maybe_extend()

    def can_rotate(self) -> bool:
        return self.error is None and self._rotation is None and time.monotonic() >= self.rotate_not_before

    def rotate(self, snapshot: Any) -> None:
        """Start a new segment with this snapshot; the segments before the current one's start go later."""
        if not self.can_rotate():
            return
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
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None  # no zero-fill from here on
        try:
            if self._rotation is not None:
                self._rotate()
            if self._buf:
                self._write(b"".join(self._buf))
                self._buf = []
            os.fdatasync(self._fd)
        finally:
            self._unmap()
            os.close(self._fd)
            self._fd = -1
        _resolve(self._waiters + self._durable_waiters + self._sync_waiters, self.error)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.error is not None:
            self._fail(self.error, None)
            return
        if self._rotation is not None:
            return  # held back until the rotation (after the in-flight fsync) is done
        data = b"".join(self._buf)
        if self._extending and self._offset + len(data) > self._allocated:
            return  # would race the zeroing: written when it is done
        waiters, self._waiters = self._waiters, []
        durable, self._durable_waiters = self._durable_waiters, []
        try:
            if data:
                if self.no_room and self._offset + len(data) > self._allocated:
                    raise NoRoom(f"refused a write that would grow the log: {self.no_room}")
                self._write(data)
                self._unsynced = True
                self._buf = []
                self._maybe_extend()
        except OSError as exc:  # disk full, I/O error: fail the waiters, never acknowledge
            self._waiters = waiters + self._waiters
            self._durable_waiters = durable + self._durable_waiters
            self._fail(exc, "write")
            return
        if self.fsync_policy == "always":
            durable, waiters = waiters + durable, []
        elif self.fsync_policy == "never":
            durable, waiters = [], waiters + durable
        _resolve(waiters, None)
        if durable:
            self._sync_waiters.extend(durable)
            if not self._syncing:
                self._start_sync()
        elif self.fsync_policy == "interval":
            self._sync_later()

    def _sync_later(self) -> None:
        """Policy interval: an fdatasync within fsync_interval of the last one, for what is written."""
        if self._syncing or self._sync_timer is not None or not self._unsynced:
            return
        delay = self._last_fsync + self.fsync_interval - time.monotonic()
        if delay <= 0:
            self._start_sync()
        else:
            self._sync_timer = self._loop.call_later(delay, self._timed_sync)

    def _timed_sync(self) -> None:
        self._sync_timer = None
        if self.error is None and not self._syncing:
            self._start_sync()

    def _start_sync(self) -> None:
        waiters, self._sync_waiters = self._sync_waiters, []
        self._syncing = True
        self._unsynced = False  # this fdatasync covers everything written so far
        self._last_fsync = time.monotonic()
        future = self._loop.run_in_executor(self._executor, os.fdatasync, self._fd)
        future.add_done_callback(lambda f: self._synced(f, waiters))

    def _synced(self, future: asyncio.Future, waiters: list[asyncio.Future]) -> None:
        self._syncing = False
        error = future.exception()
        _resolve(waiters, error)
        if error is not None:
            self._fail(error, "fsync")
        elif self.error is None and self._rotation is not None and not self._extending:
            self._rotate()
            self._flush()
        elif self._sync_waiters:
            self._start_sync()
        elif self.fsync_policy == "interval" and self.error is None:
            self._sync_later()

    def _write(self, data: bytes) -> None:
        """All of data at the write offset, or nothing: a failed write is zeroed again and the offset
        stays, so the next batch overwrites it and no torn frame sits between valid records. Copied
        into the map when it holds all of data: zeroed, allocated space, with no error to handle here
        (see the module docstring for copy-on-write file systems)."""
        start = self._offset
        if self._map is not None and start + len(data) <= len(self._map):
            self._map[start : start + len(data)] = data
            self._offset += len(data)
            return
        view = memoryview(data)
        try:
            while view:
                n = os.pwrite(self._fd, view, self._offset)
                self._offset += n
                view = view[n:]
        except OSError:
            end, self._offset = self._offset, start
            if end > start:
                try:  # the blocks are allocated already: overwriting them needs no new space
                    os.pwrite(self._fd, bytes(end - start), start)
                except OSError:
                    self._dirty = (start, end)  # probe() zeroes them before anything else is written
            raise

    def _remap(self) -> None:
        """Map the current segment up to its zeroed end (called whenever that end moves)."""
        self._unmap()
        if self.mapped and self._allocated > 0:
            self._map = mmap.mmap(self._fd, self._allocated)

    def _unmap(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def _fail(self, exc: BaseException, kind: str | None) -> None:
        """Drop every record not yet written, fail its waiters and tell the owner (once per failure)."""
        dropped = len(self._buf) + len(self._before_rotation) + (self._rotation is not None)
        # Never written, so never on disk: they had the highest numbers, which the next records reuse
        # (a gap would read as damage at replay).
        self._seq -= len(self._buf) + len(self._before_rotation)
        self._buf, self._before_rotation, self._rotation = [], [], None
        self.bytes_in_segment = self._offset
        waiters, self._waiters, self._durable_waiters = self._waiters + self._durable_waiters, [], []
        _resolve(waiters, exc)
        if kind == "fsync":  # written after the failed fsync began: nothing says they are on the disk
            waiters, self._sync_waiters = self._sync_waiters, []
            _resolve(waiters, exc)
        elif self._sync_waiters and not self._syncing:  # written before the failure: sync them still
            self._start_sync()
        if kind is None or self.error is not None:
            return
        LOG.error("write-ahead log %s failed, refusing writes until a probe succeeds: %s", kind, exc)
        self.error = exc
        if self.on_failure is not None:
            self.on_failure(kind, exc, dropped)

    def _maybe_extend(self) -> None:
        """Zero the next CHUNK in the helper thread before the writes get there, if there is room."""
        if self._extending or self._executor is None or self._allocated - self._offset > CHUNK // 2:
            return
        if not self._room_for_chunk():
            return
        self._extending = True
        self._allocated = start = max(self._allocated, self._offset)
        future = self._loop.run_in_executor(self._executor, _zero_fill, self._fd, start, CHUNK)
        future.add_done_callback(lambda f: self._extended(f, start))

    def _room_for_chunk(self) -> bool:
        """Whether a zero-fill leaves RESERVE free; reports the change either way (once)."""
        try:
            st = os.statvfs(self.dir)
            free = st.f_bavail * st.f_frsize
        except OSError as exc:
            free, reason = 0, f"cannot read the free space of {self.dir}: {exc}"
        else:
            reason = (
                f"no room for the next {CHUNK >> 20} MiB log chunk on {self.dir}: {free} bytes free, "
                f"{CHUNK + RESERVE} needed"
            )
        if free >= CHUNK + RESERVE:
            if self.no_room is not None:
                LOG.info("write-ahead log: room for the next chunk again (%d bytes free)", free)
                self.no_room = None
            return True
        if self.no_room is None:
            self.no_room = reason
            LOG.error("write-ahead log: %s; writes continue into the zeroed space, then are refused", reason)
            if self.on_failure is not None:
                self.on_failure("no_room", NoRoom(reason), 0)
        return False

    def _extended(self, future: asyncio.Future, start: int) -> None:
        self._extending = False
        error = future.exception()
        if error is None:
            self._allocated = start + CHUNK
            self._remap()
        elif self.no_room is None:  # the space went between the check and the zero-fill
            self.no_room = f"zero-filling the next log chunk failed: {error}"
            LOG.error("write-ahead log: %s", self.no_room)
            if self.on_failure is not None:
                self.on_failure("no_room", error, 0)
        if self.error is not None:
            return
        if self._rotation is not None and not self._syncing:
            self._rotate()
        if self._buf or self._waiters or self._durable_waiters:
            self._flush()
        elif error is None:
            self._maybe_extend()

    async def probe(self) -> None:
        """After a failure: zero what a failed write left, make room for the next chunk and fsync.
        Raises OSError while storage still fails; on success the log takes writes again."""
        if self._extending or self._syncing:
            raise OSError(errno.EAGAIN, "write-ahead log busy, probe again")
        if self._allocated - self._offset <= CHUNK // 2 and not self._room_for_chunk():
            raise NoRoom(self.no_room)
        extend = self._allocated - self._offset <= CHUNK // 2
        start = max(self._allocated, self._offset)
        await self._loop.run_in_executor(self._executor, _probe_io, self._fd, self._dirty, start, extend)
        self._dirty = None
        if extend:
            self._allocated = start + CHUNK
            self._remap()
        self.error = None
        LOG.info("write-ahead log: probe write succeeded, taking writes again")

    def _rotate(self) -> None:
        """Old segment synced, the new one holds the snapshot, then the segments replay cannot need go."""
        frame, self._rotation = self._rotation, None
        try:
            if self._before_rotation:
                self._write(b"".join(self._before_rotation))
                self._before_rotation = []
        except OSError as exc:
            self._fail(exc, "write")
            return
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            self._fail(exc, "fsync")
            return
        _resolve(self._sync_waiters, None)  # their records are in the old segment, now synced
        self._sync_waiters = []
        self._unsynced = False
        try:
            fd = self._new_segment(self._segment + 1, frame)
        except OSError as exc:  # the old segment stays complete and keeps taking records
            LOG.error("write-ahead log rotation failed, retrying in %.0fs: %s", ROTATE_RETRY_SECONDS, exc)
            self.rotate_not_before = time.monotonic() + ROTATE_RETRY_SECONDS
            self.bytes_in_segment = self._offset + sum(map(len, self._buf))
            if self.on_failure is not None:
                self.on_failure("rotate", exc, 0)
            return
        self._switch_to(fd, len(frame))
        self._maybe_extend()

    def _switch_to(self, fd: int, data_end: int) -> None:
        """The new segment (opened as fd, data up to data_end) takes the writes; older ones go."""
        old = self._segment
        self._unmap()
        os.close(self._fd)
        self._fd, self._segment = fd, old + 1
        self._offset = self._allocated = data_end  # zero-filled next, once the old segments are gone
        # The segment before stays so that a snapshot that cannot be read falls back to the previous one,
        # unless the disk has no room for it.
        keep_from = self._segment if self.no_room else self._base
        for seg in self.segments():
            if segment_number(seg) < keep_from:
                seg.unlink()
        self._base = self._segment

    def _new_segment(self, n: int, frame: bytes) -> int:
        """Segment n holding the snapshot frame, durable and named; removed again if anything fails."""
        path = self._path(n)
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(frame)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            self._fsync_dir()
            return os.open(path, os.O_RDWR)
        except OSError:
            for leftover in (tmp, path):
                leftover.unlink(missing_ok=True)
            raise

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


def _probe_io(fd: int, dirty: tuple[int, int] | None, start: int, extend: bool) -> None:
    if dirty is not None:
        os.pwrite(fd, bytes(dirty[1] - dirty[0]), dirty[0])
    if extend:
        os.pwrite(fd, bytes(CHUNK), start)
    os.fdatasync(fd)


def _resolve(waiters: list[asyncio.Future], error: BaseException | None) -> None:
    for fut in waiters:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(OSError(f"write-ahead log failed: {error}"))
