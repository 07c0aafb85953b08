"""Joins and windows decoded records in order, with the service's state machine (state.State).

This mirrors what Service.accept_events and Service._tick do per event: the same duplicate, eviction
and expiry rules, the same write-ahead-log records applied to the same State, a window closing once it
holds window_size rows. The service's bounds too, with its own rule functions: an event with more rows
or predictions than window_size, or a body over pending_max_bytes, is refused (413 too_many_rows,
pending_too_large) after the checks that depend on the join state, as the service checks it; and each
pending entry enters the State with the size of its body as received, so the pending table evicts by
bytes (pending_max_bytes) as well as by count exactly when the service's does. Time is the records'
time (the agent's occurrence time, or the object's): a pending entry expires once a later record is
pending_ttl_seconds newer, as the service's one-second timer would have expired it, and a window
closes by age the same way.

Rows and predictions enter the State as references (pos, index) into the decoded payloads, so the
sequencer runs on the driver over small metadata while the payloads stay where they were decoded.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator

from drift_detector.batch.events import IGNORED, OK, Decoded
from drift_detector.decode import BadInput
from drift_detector.service import check_bounds
from drift_detector.state import State, Window

# Refused by the HTTP handler before the service looks at the body or the join state.
ENVELOPE = frozenset({"missing_id", "unknown_type", "too_large", "unsupported_content_type"})


class Sequencer:
    def __init__(self, settings):
        self.settings = settings
        self.state = State(settings.prediction_store_size, settings.performance_window)
        self.outcomes: Counter = Counter()  # (kind, outcome) like drift_detector_events_total
        # (feature, kind) like drift_detector_data_quality_violations_total: counted for accepted events
        self.quality: Counter = Counter()
        self._ignored_ids: OrderedDict[str, None] = OrderedDict()
        self.accepted = False  # whether the last event entered the state
        self._closed: list[Window] = []  # closed by the current event, in order

    def run(self, events: Iterable[Decoded]) -> Iterator[Window]:
        for ev in events:
            self._tick(ev.ts)
            self._accept(ev)
            yield from self._closed
            self._closed.clear()

    # --- one event ----------------------------------------------------------------------------
    def _accept(self, ev: Decoded) -> None:
        kind = "request" if ev.request else "response"
        outcome = self._outcome(ev)
        self.outcomes[(kind, outcome)] += 1
        if outcome == IGNORED and ev.request:
            self._ignored_ids[ev.id] = None
            while len(self._ignored_ids) > self.settings.pending_max_entries:
                self._ignored_ids.popitem(last=False)
        self.accepted = outcome == "accepted"
        if self.accepted:
            self._apply(ev)
            self.quality.update(ev.quality or {})

    def _outcome(self, ev: Decoded) -> str:
        if ev.outcome in ENVELOPE:
            return ev.outcome
        if ev.outcome == IGNORED or (not ev.request and ev.id in self._ignored_ids):
            return IGNORED
        if not ev.request and ev.inference is False and not self._awaits_predictions(ev.id):
            return IGNORED
        if ev.outcome != OK:
            return ev.outcome
        entry = self.state.pending.get(ev.id)
        if not ev.request and entry is not None and entry[2] is not None and len(entry[2]) != ev.count:
            return "prediction_count_mismatch"
        try:
            check_bounds(self.settings, ev.request, ev.count, ev.size)
        except BadInput as exc:  # refused: neither applied nor remembered as ignored
            return exc.outcome
        return "accepted"

    def _awaits_predictions(self, event_id: str) -> bool:
        entry = self.state.pending.get(event_id)
        return entry is not None and entry[2] is not None

    def _apply(self, ev: Decoded) -> None:
        state, s = self.state, self.settings
        side = 2 if ev.request else 3
        entry = state.pending.get(ev.id)
        if entry is not None and entry[side] is not None:  # the same Ce-Id twice: settle the first one
            self._expire(ev.id, "duplicate", ev.ts)
            entry = None
        while entry is None and state.pending_full(ev.size, s.pending_max_entries, s.pending_max_bytes):
            self._expire(next(iter(state.pending)), "evicted", ev.ts)  # the oldest go, by count or bytes
        refs = [(ev.pos, i) for i in range(ev.count)]  # rows (or predictions) by reference
        # The body's size, not the references': pending_bytes sums what the service's would.
        self._log(["q" if ev.request else "p", ev.id, ev.request_id, ev.ts, refs], ev.ts, ev.size)
        if entry is not None:
            self.outcomes[("join", "matched")] += 1

    def _expire(self, key: str, outcome: str, now: float) -> None:
        entry = self.state.pending[key]
        self.outcomes[("join", f"{outcome}_{'request' if entry[2] is not None else 'response'}")] += 1
        self._log(["x", key], now)

    # --- windows ------------------------------------------------------------------------------
    def _log(self, record: list, now: float, size: int | None = None) -> None:
        """Apply a record; a window it fills closes at once, as Service._log closes it after every
        record (one event that evicts several joins can fill a window between two of them)."""
        self.state.apply(record, size)
        if len(self.state.window.rows) >= self.settings.window_size:
            self._closed.append(self._close(now))

    def _tick(self, now: float) -> None:
        s = self.settings
        for key in self.state.expired(now, s.pending_ttl_seconds):
            self._expire(key, "expired", now)
        if self.state.window_aged(now, s.window_max_age_seconds, s.min_samples):
            self._closed.append(self._close(now))

    def _close(self, now: float) -> Window:
        window = self.state.window
        self.state.apply(["c", window.seq, now])
        self.state.apply(["d", window.seq])  # handed to the engine: the sequencer keeps no copy
        return window

    def open_window(self) -> dict:
        return self.state.open_window()
