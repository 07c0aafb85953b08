"""Everything the service must not lose, as a deterministic state machine over log records.

The live path decides what happens (which record to write), appends the record to the write-ahead
log and applies it here; replay after a restart applies the same records in the same order and ends
in the same state. Records (JSON lists, first item the kind; the name is the record type on disk,
wal_format.RECORD_TYPES):

  ["q", key, rid, ts, rows]     request: feature rows wait in the pending table for the response
  ["p", key, rid, ts, preds]    response: predictions (joins with the request by key = Ce-Id)
  ["x", key]                    pending_settled: expired or evicted, its rows enter the window unjoined
  ["i", rows, preds, ids, ts]   ingest: rows posted to /v1/ingest (preds and ids may be null)
  ["f", [[rid, label], ...]]    feedback: labels joined with stored predictions
  ["c", seq, ts]                window_closed: the open window closes and waits for its check
  ["d", seq]                    window_checked: that window's check finished (or was skipped)
  ["s", snapshot]               snapshot: the whole state (first record of a compacted segment)

Replay after log damage may miss records (wal_replay.py counts them): applying stays total.

The pending table is also measured in bytes (`pending_bytes`), so the live path can bound it by size
as well as by count: the live path passes each entry's size as received (the event body), replay leaves
it to be measured as JSON when first asked, only for the entries still pending.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from drift_detector.wal_format import RECORD_TYPES


@dataclass
class Window:
    seq: int
    rows: list[list[Any]] = field(default_factory=list)
    preds: list[Any] = field(default_factory=list)
    opened_at: float | None = None
    closed_at: float | None = None

    def add(self, rows: list[list[Any]], preds: list[Any] | None, ts: float) -> None:
        if not rows:
            return
        if self.opened_at is None:
            self.opened_at = ts
        self.rows.extend(rows)
        self.preds.extend(preds if preds is not None else [None] * len(rows))

    def dump(self) -> list:
        return [self.seq, self.rows, self.preds, self.opened_at, self.closed_at]

    @classmethod
    def load(cls, data: list) -> Window:
        return cls(*data)


class State:
    def __init__(self, store_size: int, performance_window: int):
        self.store_size = store_size
        self.window = Window(seq=1)
        self.closed: OrderedDict[int, Window] = OrderedDict()  # closed, check not finished
        # key -> [rid, ts, rows | None, preds | None]
        self.pending: OrderedDict[str, list] = OrderedDict()
        self.pending_sizes: dict[str, int | None] = {}  # key -> bytes of its rows or predictions
        self._sized_bytes = 0  # sum of the known sizes
        self._unsized = 0  # entries whose size is None (replayed): measured on the next pending_bytes
        self._size_hint: int | None = None  # the size of the entry the record being applied adds
        self.store: OrderedDict[str, tuple] = OrderedDict()  # rid -> predictions awaiting labels
        self.labelled: deque = deque(maxlen=performance_window)  # [prediction, label] pairs
        self.labelled_total = 0  # pairs ever joined
        self.rows_total = 0  # rows ever added to a window

    # --- apply ------------------------------------------------------------------------------
    def apply(self, rec: list, size: int | None = None) -> None:
        """Apply one record; size: what a q/p record's payload weighs (None: measured when needed)."""
        self._size_hint = size
        APPLY[rec[0]](self, *rec[1:])

    def _add(self, rows: list, preds: list | None, ts: float) -> None:
        self.window.add(rows, preds, ts)
        self.rows_total += len(rows)

    def _apply_q(self, key: str, rid: str, ts: float, rows: list) -> None:
        entry = self.pending.get(key)
        if entry is not None and entry[3] is not None and entry[2] is None:
            self._pop_pending(key)
            self._joined(rid, ts, rows, entry[3])
        else:
            self._set_pending(key, [rid, ts, rows, None])

    def _apply_p(self, key: str, rid: str, ts: float, preds: list) -> None:
        entry = self.pending.get(key)
        if entry is not None and entry[2] is not None and entry[3] is None:
            self._pop_pending(key)
            self._joined(entry[0], ts, entry[2], preds)
        else:
            self._set_pending(key, [rid, ts, None, preds])

    def _apply_x(self, key: str) -> None:
        entry = self._pop_pending(key)
        if entry is None:
            return
        rid, ts, rows, preds = entry
        if rows is not None:  # a request without response still counts as input data
            self._add(rows, None, ts)
        elif preds is not None:  # a response without request can still be labelled
            self._store(rid, preds)

    def _apply_i(self, rows: list, preds: list | None, ids: list | None, ts: float) -> None:
        self._add(rows, preds, ts)
        if ids and preds:
            for rid, pred in zip(ids, preds, strict=True):
                if rid is not None and pred is not None:
                    self._store(str(rid), [pred])

    def _apply_f(self, pairs: list) -> None:
        for rid, label in pairs:
            preds = self.store.pop(rid, None)
            if preds is None:
                continue
            labels = label if isinstance(label, list) else [label]
            for pred, lab in zip(preds, labels, strict=False):
                if pred is not None and lab is not None:
                    self.labelled.append([pred, lab])
                    self.labelled_total += 1

    def _apply_c(self, seq: int, ts: float) -> None:
        if seq < self.window.seq:
            return
        # A later number: the close of an earlier window was lost to log damage, its rows are in this one.
        self.window.seq = seq
        self.window.closed_at = ts
        self.closed[seq] = self.window
        self.window = Window(seq=seq + 1)

    def _apply_d(self, seq: int) -> None:
        self.closed.pop(seq, None)

    def _apply_s(self, snap: dict) -> None:
        self.window = Window.load(snap["window"])
        self.closed = OrderedDict((w[0], Window.load(w)) for w in snap["closed"])
        self.pending = OrderedDict()
        self.pending_sizes, self._sized_bytes, self._unsized, self._size_hint = {}, 0, 0, None
        for key, *entry in snap["pending"]:
            self._set_pending(key, entry)
        self.store = OrderedDict((e[0], tuple(e[1])) for e in snap["store"])
        self.labelled.clear()
        self.labelled.extend(snap["labelled"])
        self.labelled_total = snap["labelled_total"]
        self.rows_total = snap["rows_total"]

    # --- helpers ----------------------------------------------------------------------------
    def _joined(self, rid: str, ts: float, rows: list, preds: list) -> None:
        if len(preds) != len(rows):  # checked on the live path; keep replay total
            preds = None
        self._add(rows, preds, ts)
        if preds is not None:
            self._store(rid, preds)

    @property
    def pending_bytes(self) -> int:
        """Bytes of the rows and predictions in the pending table (measures the unsized ones once)."""
        if self._unsized:
            for key, entry in self.pending.items():
                if self.pending_sizes[key] is None:
                    self._size(key, payload_bytes(entry[2] if entry[2] is not None else entry[3]))
        return self._sized_bytes

    def _set_pending(self, key: str, entry: list) -> None:
        self.pending[key] = entry
        self._size(key, self._size_hint)

    def _pop_pending(self, key: str) -> list | None:
        self._unsize(key)
        self.pending_sizes.pop(key, None)
        return self.pending.pop(key, None)

    def _size(self, key: str, size: int | None) -> None:
        """Record the key's size (None: unknown, measured on the next pending_bytes)."""
        self._unsize(key)
        self.pending_sizes[key] = size
        if size is None:
            self._unsized += 1
        else:
            self._sized_bytes += size

    def _unsize(self, key: str) -> None:
        """Take the key's current size out of the totals."""
        if key not in self.pending_sizes:
            return
        old = self.pending_sizes[key]
        if old is None:
            self._unsized -= 1
        else:
            self._sized_bytes -= old
        self.pending_sizes[key] = 0

    def _store(self, rid: str, preds: list) -> None:
        # A tuple of numbers or labels: the garbage collector stops tracking it, so a full store (up to
        # prediction_store_size entries) adds nothing to a full collection's walk. A list would.
        self.store[rid] = tuple(preds)
        self.store.move_to_end(rid)
        while len(self.store) > self.store_size:
            self.store.popitem(last=False)

    def snapshot(self) -> dict:
        return {
            "window": self.window.dump(),
            "closed": [w.dump() for w in self.closed.values()],
            "pending": [[k, *v] for k, v in self.pending.items()],
            "store": [[k, v] for k, v in self.store.items()],
            "labelled": list(self.labelled),
            "labelled_total": self.labelled_total,
            "rows_total": self.rows_total,
        }

    # --- questions the live path asks before it writes a record ------------------------------
    def expired(self, now: float, ttl: float) -> list[str]:
        out = []
        for key, entry in self.pending.items():  # insertion order == arrival order
            if now - entry[1] < ttl:
                break
            out.append(key)
        return out

    def pending_full(self, size: int, max_entries: int, max_bytes: int) -> bool:
        """Whether a new pending entry of this size needs room: the table is full by count or by bytes."""
        if not self.pending:
            return False
        return len(self.pending) >= max_entries or self.pending_bytes + size > max_bytes

    def open_window(self) -> dict:
        """The open window and the pending joins (the service's /readyz, the batch job's summary)."""
        w = self.window
        return {
            "seq": w.seq,
            "rows": len(w.rows),
            "opened_at": w.opened_at,
            "pending_joins": len(self.pending),
            "pending_bytes": self.pending_bytes,
        }

    def window_aged(self, now: float, max_age: float, min_samples: int) -> bool:
        """The open window is due to close by age: max_age old with min_samples rows (max_age 0: never)."""
        w = self.window
        if max_age <= 0 or w.opened_at is None:
            return False
        return now - w.opened_at >= max_age and len(w.rows) >= min_samples


# record kind -> State._apply_<kind>, looked up once: apply runs for every event the service logs.
# The kinds are the log format's: a record type without its _apply_ fails here, at import.
APPLY = {kind: getattr(State, "_apply_" + kind) for kind in RECORD_TYPES}


def payload_bytes(payload: Any) -> int:
    """What rows or predictions weigh when no received size is known: their size as JSON."""
    return len(orjson.dumps(payload))
