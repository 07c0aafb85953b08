"""The on-disk format of the write-ahead log: segment header, typed and numbered frames, and a reader
that tells a damaged frame from the end of the data.

Format 2 (written since this module exists), little-endian:

  segment header (28 bytes)  magic b"\\x89DDWAL\\r\\n", u32 format version, u32 flags, u64 base_seq,
                             u32 crc32 of the 24 bytes before it. base_seq: every record of the log
                             up to this sequence number precedes this segment. Flag SNAPSHOT: the first
                             frame is a snapshot of the state through base_seq.
  frame (24 bytes + payload) 4-byte marker b"\\xfeWR\\xff", u32 crc32 of the rest of the frame
                             (header fields after the crc, then the payload), u32 payload length,
                             u16 record type, u16 zero, u64 sequence number, orjson payload (the
                             record without its kind letter).

Every record has the sequence number after the one before it, across segments; a snapshot carries the
number of the last record it includes. A gap in the numbers is the count of records lost. The marker
cannot occur in a payload (0xfe and 0xff are never part of UTF-8), so a reader that meets a frame that
fails its checks finds the next candidate with one bytes.find and checks its CRC.

Format 1 (written before): no segment header, frames of u32 length, u32 crc32 of the payload, orjson
list whose first item is the kind letter; no sequence numbers. It is read, never written: its first
four bytes, read as a length, are always below MAX_RECORD, the magic's never.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

VERSION = 2
MAGIC = b"\x89DDWAL\r\n"
SEGMENT_HEADER = struct.Struct("<8sIIQI")
SNAPSHOT = 1  # segment flag: the first frame is a snapshot
MARKER = b"\xfeWR\xff"
FRAME = struct.Struct("<4sIIHHQ")  # marker, crc, payload length, type, zero, seq
FRAME_FIELDS = struct.Struct("<IHHQ")  # the part of the frame header the crc covers
V1_FRAME = struct.Struct("<II")  # payload length, crc
MAX_RECORD = 1 << 30

# Record kind letter (state.py) -> (type number on disk, name). Numbers are never reused.
RECORD_TYPES = {
    "s": (1, "snapshot"),
    "q": (2, "request"),
    "p": (3, "response"),
    "x": (4, "pending_settled"),
    "i": (5, "ingest"),
    "f": (6, "feedback"),
    "c": (7, "window_closed"),
    "d": (8, "window_checked"),
}
TYPE_NUMBERS = {kind: number for kind, (number, _) in RECORD_TYPES.items()}
KINDS = {number: kind for kind, (number, _) in RECORD_TYPES.items()}


class LogFormatError(Exception):
    """The log cannot be read into a state it can prove; the message names the file."""


_pack_fields = FRAME_FIELDS.pack  # bound once: encode runs for every record on the event loop
_pack_crc = struct.Struct("<I").pack
_crc32 = zlib.crc32


def encode(record: list, seq: int) -> bytes:
    """One format-2 frame; record is [kind letter, *fields]."""
    payload = orjson.dumps(record[1:])
    fields = _pack_fields(len(payload), TYPE_NUMBERS[record[0]], 0, seq)
    return MARKER + _pack_crc(_crc32(payload, _crc32(fields))) + fields + payload


def segment_header(base_seq: int, snapshot: bool) -> bytes:
    head = SEGMENT_HEADER.pack(MAGIC, VERSION, SNAPSHOT if snapshot else 0, base_seq, 0)[:-4]
    return head + struct.pack("<I", zlib.crc32(head))


@dataclass
class Header:
    version: int  # 1: the old format, no header at all
    ok: bool  # False: the magic is there but the header fails its crc
    snapshot: bool = False
    base_seq: int | None = None
    size: int = 0  # where the first frame starts


def read_header(data: bytes, name: str) -> Header:
    if not data.startswith(MAGIC):
        return Header(version=1, ok=True)
    if len(data) < SEGMENT_HEADER.size:
        return Header(version=VERSION, ok=False, size=len(data))
    _, version, flags, base_seq, crc = SEGMENT_HEADER.unpack_from(data)
    if zlib.crc32(data[: SEGMENT_HEADER.size - 4]) != crc:
        return Header(version=VERSION, ok=False, size=SEGMENT_HEADER.size)
    if version > VERSION:
        raise LogFormatError(
            f"write-ahead log {name}: format version {version} is newer than this detector reads "
            f"({VERSION}); run a detector at least as new as the one that wrote it"
        )
    return Header(version, True, bool(flags & SNAPSHOT), base_seq, SEGMENT_HEADER.size)


@dataclass(slots=True)
class Frame:
    start: int
    end: int
    seq: int | None  # None in format 1
    record: list


@dataclass(slots=True)
class Damage:
    """Bytes [start, end) that hold no readable frame, with a readable frame right after them."""

    start: int
    end: int


class SegmentReader:
    """Yields the frames of one segment in order and a Damage before every frame found by resync.

    After iteration `end` is the end of the last readable frame: what follows it (when not all zero)
    had no readable frame after it, which is what a write cut short by a crash leaves."""

    def __init__(self, data: bytes, header: Header):
        self.data = data
        self.view = memoryview(data)
        self.start = self.end = header.size
        self.read = self._read_v1 if header.version == 1 else self._read_v2
        self._find = self._find_v1 if header.version == 1 else self._find_v2

    def __iter__(self) -> Iterator[Frame | Damage]:
        pos = self.start
        while True:
            frame = self.read(pos)
            if frame is None:
                frame = self._find(pos + 1)
                if frame is None:
                    return
                yield Damage(pos, frame.start)
            yield frame
            pos = self.end = frame.end

    def _read_v2(self, pos: int, decode: bool = True) -> Frame | None:
        if pos + FRAME.size > len(self.data):
            return None
        marker, crc, length, number, _, seq = FRAME.unpack_from(self.data, pos)
        end = pos + FRAME.size + length
        if marker != MARKER or end > len(self.data) or zlib.crc32(self.view[pos + 8 : end]) != crc:
            return None
        kind = KINDS.get(number)
        if kind is None:  # intact, but written by a newer detector
            raise LogFormatError(f"record type {number} at byte {pos} is unknown to this detector")
        if not decode:  # checked, type and number known: enough to choose where replay starts
            return Frame(pos, end, seq, [kind])
        fields = _loads(self.view[pos + FRAME.size : end])
        return None if fields is None else Frame(pos, end, seq, [kind, *fields])

    def _find_v2(self, pos: int) -> Frame | None:
        pos = self.data.find(MARKER, pos)
        while pos != -1:
            frame = self._read_v2(pos)
            if frame is not None:
                return frame
            pos = self.data.find(MARKER, pos + 1)
        return None

    def _read_v1(self, pos: int) -> Frame | None:
        if pos + V1_FRAME.size > len(self.data):
            return None
        length, crc = V1_FRAME.unpack_from(self.data, pos)
        end = pos + V1_FRAME.size + length
        if length == 0 or length > MAX_RECORD or end > len(self.data):
            return None
        payload = self.view[pos + V1_FRAME.size : end]
        if zlib.crc32(payload) != crc:
            return None
        record = _loads(payload)
        return Frame(pos, end, None, record) if record else None

    def _find_v1(self, pos: int) -> Frame | None:
        # Every format-1 payload is a JSON list: candidates are the offsets 8 bytes before a "[".
        at = self.data.find(b"[", pos + V1_FRAME.size)
        while at != -1:
            frame = self._read_v1(at - V1_FRAME.size)
            if frame is not None:
                return frame
            at = self.data.find(b"[", at + 1)
        return None


def first_frame(data: bytes, header: Header) -> Frame | None:
    """The segment's first frame if it is readable where it should start (format 2: not decoded)."""
    reader = SegmentReader(data, header)
    try:
        return reader.read(header.size) if header.version == 1 else reader._read_v2(header.size, decode=False)
    except LogFormatError:
        return None


def _loads(payload: memoryview) -> list | None:
    """A payload that passed its crc is JSON unless a resync candidate matched a crc by chance."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def is_snapshot(frame: Frame | None) -> bool:
    return frame is not None and frame.record[0] == "s"
