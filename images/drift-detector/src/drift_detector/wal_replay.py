"""Replay of the write-ahead log: the newest state the log can prove, and never a valid record destroyed.

Policy (docs/contracts.md, "Write-ahead log"):
- Start: the newest segment that opens with a readable snapshot, or the start of the history. A
  snapshot that cannot be read falls back to the segment before it (rotation keeps it until the next
  snapshot is durable) and replays its records, then the records after the damaged snapshot. When no
  such segment exists the log cannot be replayed: LogFormatError, every file left as it is.
- A damaged frame followed by a readable one (mid-log corruption) is skipped: the records after it are
  kept, the records lost are counted from the gap in sequence numbers, an ERROR names file and offset,
  and a copy of the segment goes to <wal>/corrupt/ first. Nothing in the segment is rewritten.
- A damaged frame with nothing readable after it in the last segment is a torn tail: a write that a
  crash cut short, never acknowledged. Its bytes are copied to <wal>/corrupt/ and zeroed, as before.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drift_detector.wal_format import (
    VERSION,
    Damage,
    Frame,
    Header,
    LogFormatError,
    SegmentReader,
    first_frame,
    is_snapshot,
    read_header,
)

LOG = logging.getLogger(__name__)


def segment_number(path: Path) -> int:
    return int(path.stem.split("-")[1])


@dataclass
class ReplayReport:
    """What the last replay found: /readyz shows it, metrics count it."""

    records: int = 0
    corrupt_records: int = 0  # records lost to damage (a format-1 damaged region counts one)
    corrupt_bytes: int = 0  # bytes skipped because no frame in them could be read
    torn_bytes: int = 0  # a torn tail that was zeroed (never acknowledged, not corruption)
    snapshot_fallback: bool = False  # a snapshot could not be read; an older one was replayed
    old_format: bool = False  # format-1 segments were read
    preserved: list[str] = field(default_factory=list)  # copies of damaged segments

    @property
    def degraded(self) -> bool:
        return bool(self.corrupt_records or self.corrupt_bytes or self.snapshot_fallback)

    def as_dict(self) -> dict:
        return {"degraded": self.degraded, **asdict(self)}


@dataclass
class Segment:
    path: Path
    data: bytes
    header: Header

    @classmethod
    def load(cls, path: Path) -> Segment:
        data = path.read_bytes()
        return cls(path, data, read_header(data, path.name))

    @property
    def number(self) -> int:
        return segment_number(self.path)


class Replay:
    """One replay of a log directory. After `records()` is exhausted: `last_seq`, `base` (the segment
    it started from) and `tail` ((segment, offset, size) to append to, or None for a new segment)."""

    def __init__(self, directory: Path, paths: list[Path]):
        self.dir = directory
        self.paths = paths
        self.report = ReplayReport()
        self.last_seq = 0
        self.base: int | None = None
        self.tail: tuple[int, int, int] | None = None

    def records(self) -> Iterator[list]:
        if not self.paths:
            return
        chain = self._chain()
        for seg in chain:
            yield from self._segment(seg, first=seg is chain[0], last=seg is chain[-1])

    # --- where to start ---------------------------------------------------------------------------
    def _chain(self) -> list[Segment]:
        """Segments from the newest provable start to the newest segment."""
        chain: list[Segment] = []
        for path in reversed(self.paths):
            seg = Segment.load(path)
            chain.insert(0, seg)
            if self._can_start(seg):
                self.base = seg.number
                return chain
        newest = chain[-1]
        self._preserve(newest, newest.header.size)
        raise LogFormatError(
            f"write-ahead log {newest.path.name} is corrupt: its snapshot (or segment header) cannot be "
            f"read and no older segment holds the records before it; no file was changed, a copy is in "
            f"{self.dir / 'corrupt'}. To recover: move {self.dir} aside to start with an empty state, "
            f"or restore it from a backup"
        )

    def _can_start(self, seg: Segment) -> bool:
        header, frame = seg.header, first_frame(seg.data, seg.header)
        if is_snapshot(frame) and (header.version == 1 or not header.ok or frame.seq == header.base_seq):
            return True
        if header.version == 1 and (seg.number == 1 or not seg.data.strip(b"\0")):
            return seg.number == 1  # the start of the history, or a file a crash left empty
        if header.version == VERSION and header.ok and not header.snapshot:
            return header.base_seq == 0  # the start of the history; else it continues an older segment
        LOG.error(
            "write-ahead log %s: the %s cannot be read; falling back to the segment before it",
            seg.path.name, "snapshot" if header.ok else "segment header",
        )  # fmt: skip
        self.report.snapshot_fallback = True
        return False

    # --- reading ----------------------------------------------------------------------------------
    def _segment(self, seg: Segment, first: bool, last: bool) -> Iterator[list]:
        self.report.old_format |= seg.header.version == 1
        damaged: int | None = None if seg.header.ok else 0  # offset of the first damage
        if damaged is not None:
            self._damage(seg, Damage(0, seg.header.size))
        reader = SegmentReader(seg.data, seg.header)
        try:
            for item in reader:
                if isinstance(item, Damage):
                    damaged = item.start if damaged is None else damaged
                    self._damage(seg, item)
                    continue
                record = self._accept(seg, item, base=first and item.start == seg.header.size)
                if record is not None:
                    yield record
        except LogFormatError as exc:
            raise LogFormatError(f"write-ahead log {seg.path.name}: {exc}") from None
        dirty = len(seg.data[reader.end :].rstrip(b"\0"))
        if dirty and not last:  # later segments follow: damage, not a torn write
            damaged = reader.end if damaged is None else damaged
            self._damage(seg, Damage(reader.end, reader.end + dirty))
        if damaged is not None:
            self._preserve(seg, damaged)
        if last:
            if dirty:
                self._zero_torn_tail(seg, reader.end, dirty)
            if seg.header.version == VERSION and seg.header.ok:
                self.tail = (seg.number, reader.end, len(seg.data))

    def _accept(self, seg: Segment, frame: Frame, base: bool) -> list | None:
        """The frame's record if it comes next in sequence; counts the records a gap lost."""
        kind = frame.record[0]
        seq = frame.seq
        if seq is None:  # format 1: numbered in the order read
            seq = self.last_seq if kind == "s" else self.last_seq + 1
        if kind == "s":
            if not base and seq < self.last_seq:
                return None  # an older state than the one replayed
            self.last_seq = seq
            self.report.records += 1
            return frame.record
        if seq <= self.last_seq:
            LOG.error("write-ahead log %s: record %d repeats, skipped", seg.path.name, seq)
            return None
        if seq > self.last_seq + 1:
            lost = seq - self.last_seq - 1
            self.report.corrupt_records += lost
            LOG.error(
                "write-ahead log %s: records %d to %d are lost (unreadable); replay continues at byte %d",
                seg.path.name, self.last_seq + 1, seq - 1, frame.start,
            )  # fmt: skip
        self.last_seq = seq
        self.report.records += 1
        return frame.record

    def _damage(self, seg: Segment, damage: Damage) -> None:
        size = damage.end - damage.start
        self.report.corrupt_bytes += size
        if seg.header.version == 1:  # no sequence numbers: at least one record
            self.report.corrupt_records += 1
        LOG.error(
            "write-ahead log %s: %d corrupt bytes at byte %d skipped, the records after them are kept",
            seg.path.name, size, damage.start,
        )  # fmt: skip

    # --- changing files ---------------------------------------------------------------------------
    def _preserve(self, seg: Segment, damage_at: int) -> None:
        """A copy of the segment as found, before anything in it changes: one per damage, not per restart."""
        directory = self.dir / "corrupt"
        directory.mkdir(exist_ok=True)
        copy = directory / f"{seg.path.name}.damaged-at-{damage_at}"
        if not copy.exists():
            tmp = copy.with_suffix(".tmp")
            tmp.write_bytes(seg.data)
            os.replace(tmp, copy)
            LOG.error("write-ahead log %s: a copy of the damaged segment is at %s", seg.path.name, copy)
        self.report.preserved.append(str(copy))

    def _zero_torn_tail(self, seg: Segment, start: int, size: int) -> None:
        directory = self.dir / "corrupt"
        directory.mkdir(exist_ok=True)
        (directory / f"{seg.path.name}.tail-{start}").write_bytes(seg.data[start : start + size])
        LOG.warning(
            "write-ahead log %s: zeroing a torn tail of %d bytes after byte %d (never acknowledged)",
            seg.path.name, size, start,
        )  # fmt: skip
        self.report.torn_bytes = size
        with open(seg.path, "r+b") as fh:
            fh.seek(start)
            fh.write(bytes(size))
            os.fsync(fh.fileno())
