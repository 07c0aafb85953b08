"""The ingestion core. Runs on the event loop: decodes, validates, logs, applies, acknowledges.

Every accepted input becomes a write-ahead-log record before its 200 (see state.py for the records);
drift checks and reports happen on other threads and processes.

When the log cannot write, the state is rebuilt from what the log holds (nothing refused stays in
memory), requests are answered 503 and /readyz says why, and a probe write retried with backoff brings
the service back without a restart. A closed window goes to the checker only once its close is written.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from typing import Any

from drift_detector import decode
from drift_detector.checker import Checker, Engine, build_engine
from drift_detector.decode import REQUEST_TYPE, BadInput, Event, keyed_row
from drift_detector.metrics import Metrics
from drift_detector.reports import Reports
from drift_detector.state import State, payload_bytes
from drift_detector.wal import WriteAheadLog
from drift_detector.wal_format import LogFormatError

LOG = logging.getLogger(__name__)
TIMER_SECONDS = 1.0
# Outcome of a logged call that is no inference (a metadata or readiness GET): neither data nor an error.
IGNORED = "ignored"
PROBE_FIRST_SECONDS = 0.05  # storage probes back off from here...
PROBE_MAX_SECONDS = 5.0  # ...to here


class NotReady(Exception):
    pass


class StorageUnavailable(OSError):
    """The write-ahead log failed and no probe write has succeeded since: nothing can be accepted."""


class Service:
    def __init__(self, settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics(settings.model_name)
        self.state = State(settings.prediction_store_size, settings.performance_window)
        self.metrics.window_rows.set_function(lambda: len(self.state.window.rows))  # read at scrape time
        self.metrics.pending_bytes.set_function(lambda: self.state.pending_bytes)
        self.metrics.storage_ok.set_function(lambda: 0 if self.storage_problem() else 1)
        self.wal = WriteAheadLog(
            settings.data_dir / "wal",
            settings.fsync,
            settings.fsync_interval_ms,
            mapped=settings.wal_write == "mmap",
        )
        self.wal.on_failure = self._storage_failed
        self._recovery: asyncio.Task | None = None  # rebuilds the state and probes until storage works
        self._failure: str | None = None  # why the log refuses writes
        self._submitted: set[int] = set()  # closed windows handed to the checker, not finished yet
        self._finished: set[int] = set()  # checked windows whose "d" record is not written yet
        self.ready = False
        self.stopping = False  # stop() began: the log is closing
        self.failed: str | None = None
        self.engine: Engine | None = None
        self.checker: Checker | None = None
        self.reports: Reports | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Task | None = None
        self._prediction_numeric = True
        # Ce-Ids of ignored (empty) requests, so their responses are ignored whatever they hold. Bounded
        # like the pending table; not persisted: after a restart the response's shape still tells.
        self._ignored_ids: OrderedDict[str, None] = OrderedDict()

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the reference and replay the log in a thread; the server answers /healthz meanwhile."""
        self.loop = asyncio.get_running_loop()
        threading.Thread(target=self._load, name="startup", daemon=True).start()

    def _load(self) -> None:
        try:
            started = time.monotonic()
            self.engine = self._build_engine()
            for rec in self.wal.replay():
                self.state.apply(rec)
            self._report_replay(time.monotonic() - started)
            self.loop.call_soon_threadsafe(self._go_live)
        except LogFormatError as exc:  # the message says what is wrong and how to recover
            LOG.error("startup refused: %s", exc)
            self.failed = str(exc)
        except Exception as exc:
            LOG.exception("startup failed")
            self.failed = f"{type(exc).__name__}: {exc}"

    def _report_replay(self, seconds: float) -> None:
        report = self.wal.replay_report
        self.metrics.record_replay(report)
        LOG.info("replayed %d log records in %.2fs", report.records, seconds)
        if report.degraded:
            LOG.error(
                "the write-ahead log was damaged: %d records lost, %d bytes skipped, snapshot fallback %s; "
                "copies of the damaged segments: %s",
                report.corrupt_records, report.corrupt_bytes, report.snapshot_fallback,
                ", ".join(report.preserved),
            )  # fmt: skip

    def _build_engine(self) -> Engine:
        s = self.settings
        engine, columns = build_engine(s)
        self._prediction_numeric = engine.prediction_numeric
        if s.reports_enabled:
            self.reports = Reports(s, {"columns": columns, "drift_share": s.drift_share})
        return engine

    def _go_live(self) -> None:
        self.checker = Checker(
            self.engine, self.settings, self.metrics, self._checked_from_thread, self.reports
        )
        self.checker.start()
        self.wal.start(self.loop)
        for window in list(self.state.closed.values()):  # closed before the restart, not logged checked
            if self.checker.has_result(window):  # checked, but stopped before the record was written
                self._done(window.seq)
            else:
                self._submit(window)
        self._timer = self.loop.create_task(self._tick())
        self.ready = True
        LOG.info("ready: open window %d has %d rows", self.state.window.seq, len(self.state.window.rows))

    async def stop(self) -> None:
        self.stopping = True
        for task in (self._timer, self._recovery):
            if task is not None:
                task.cancel()
        if self.checker is not None:
            self.checker.stop()
        if self.reports is not None:
            self.reports.stop()
        self.wal.close()

    # --- the live path ----------------------------------------------------------------------------
    def _require_ready(self) -> None:
        if not self.ready:
            raise NotReady(self.failed or "reference loading or log replay in progress")
        if self._recovery is not None:
            raise StorageUnavailable(f"storage unavailable: {self._failure}")

    def _log(self, rec: list, size: int | None = None) -> None:
        """Append a record and apply it; a window that is full now closes (so none outgrows a record).
        size: what a q/p record's payload weighed as received (for the pending table's byte bound)."""
        self.wal.append(rec)
        self.state.apply(rec, size)
        if len(self.state.window.rows) >= self.settings.window_size:
            self._close()

    def _commit(self, durable: bool = False) -> asyncio.Future:
        """Commit what was appended; compaction is checked on every commit, not only on window closes.
        durable: acknowledged after an fdatasync under the default policy too. For API callers, which
        retry a call that failed; KServe's agent never resends an event, so its events are acknowledged
        once written (see wal.py and the README's durability section)."""
        self._maybe_compact()
        return self.wal.commit(durable)

    # --- storage failures -------------------------------------------------------------------------
    def storage_problem(self) -> str | None:
        """Why storage keeps the service from being ready, or None."""
        if self._recovery is not None:
            return f"storage unavailable, refusing writes until a probe write succeeds: {self._failure}"
        return self.wal.no_room

    def _storage_failed(self, kind: str, error: BaseException, dropped: int) -> None:
        """Called by the log (on the event loop) for every failure it sees."""
        self.metrics.storage_error(kind, dropped)
        if kind in ("write", "fsync") and self._recovery is None:
            self._failure = f"write-ahead log {kind} failed: {error}"
            self._recovery = self.loop.create_task(self._recover())

    async def _recover(self) -> None:
        """Rebuild the state from the log (drops whatever was refused), then probe with backoff."""
        delay, rebuilt = PROBE_FIRST_SECONDS, False
        while True:
            try:
                if not rebuilt:
                    self.state = await asyncio.to_thread(self._replayed_state)
                    rebuilt = True
                await self.wal.probe()
                break
            except Exception as exc:  # any failure: say why, wait, try again
                self._failure = f"{'probe' if rebuilt else 'rebuilding the state from the log'}: {exc}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, PROBE_MAX_SECONDS)
        self._recovery = self._failure = None
        LOG.warning("storage recovered: open window %d has %d rows", self.state.window.seq,
                    len(self.state.window.rows))  # fmt: skip
        self._resume_checks()

    def _replayed_state(self) -> State:
        state = State(self.settings.prediction_store_size, self.settings.performance_window)
        for rec in WriteAheadLog(self.wal.dir).replay():
            state.apply(rec)
        return state

    def _resume_checks(self) -> None:
        """Checks that finished while the log refused, and closes written but never handed over."""
        for seq in sorted(self._finished):
            if seq in self.state.closed:
                self._log(["d", seq])
        self._finished.clear()
        for seq, window in list(self.state.closed.items()):
            if seq not in self._submitted:
                self._submit(window)
        self._commit_in_background()

    def _commit_in_background(self, on_error=None) -> None:
        """Commit records nobody waits for (timer, checker); a failure is handled by the recovery."""

        def done(future: asyncio.Future) -> None:
            if future.exception() is not None and on_error is not None:
                on_error()

        self._commit().add_done_callback(done)

    async def accept_events(self, events: list[Event]) -> dict:
        """CloudEvents (request or response). All are decoded before any is applied."""
        self._require_ready()
        decoded, ignored = [], []
        for ev in events:
            result = self._decode_event(ev)
            (ignored if result is None else decoded).append(result or ev)
        sizes = [self._within_bounds(ev, payload) for ev, payload, _ in decoded]
        now = time.time()
        for (ev, payload, _), size in zip(decoded, sizes, strict=True):
            self._apply_event(ev, payload, size, now)
        if decoded:
            await self._commit()
        for ev, _, dq in decoded:
            self.metrics.quality(dq)
            self.metrics.event(ev.kind, "accepted")
        for ev in ignored:
            self._ignore(ev)
        return {"accepted": len(decoded), IGNORED: len(ignored)}

    def _ignore(self, ev: Event) -> None:
        self.metrics.event(ev.kind, IGNORED)
        if ev.type == REQUEST_TYPE:
            self._ignored_ids[ev.id] = None
            while len(self._ignored_ids) > self.settings.pending_max_entries:
                self._ignored_ids.popitem(last=False)

    def _decode_event(self, ev: Event) -> tuple[Event, list, dict] | None:
        """The event's rows or predictions; None for a logged call that is no inference.

        KServe's agent logs every call but kubelet probes, so a metadata or readiness GET arrives as a
        request event with an empty body and a response event without predictions."""
        dq = defaultdict(int)  # counts like a Counter, at a third of the cost to build
        if decode.is_empty(ev.body) or (ev.type != REQUEST_TYPE and ev.id in self._ignored_ids):
            return None
        doc = decode.as_json(ev.body)
        if ev.type == REQUEST_TYPE:
            return ev, decode.decode_request(self.engine.schema, doc, dq), dq
        if not decode.is_inference_response(doc) and not self._awaits_predictions(ev.id):
            return None
        s = self.settings
        preds = [
            self._prediction(p)
            for p in decode.decode_response(doc, s.prediction_output, s.positive_class_index)
        ]
        entry = self.state.pending.get(ev.id)
        if entry is not None and entry[2] is not None and len(entry[2]) != len(preds):
            raise BadInput(
                "prediction_count_mismatch",
                f"response has {len(preds)} predictions, request had {len(entry[2])} rows",
            )
        return ev, preds, dq

    def _awaits_predictions(self, event_id: str) -> bool:
        entry = self.state.pending.get(event_id)
        return entry is not None and entry[2] is not None

    def _prediction(self, value: Any) -> Any:
        if self._prediction_numeric and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise BadInput("non_numeric", f"prediction {value[:40]!r} is not a number") from None
        return value

    def _within_bounds(self, ev: Event, payload: list) -> int:
        """The payload's size as received; refuses what no window or pending table should hold."""
        size = received_size(ev, payload)
        check_bounds(self.settings, ev.type == REQUEST_TYPE, len(payload), size)
        return size

    def _apply_event(self, ev: Event, payload: list, size: int, now: float) -> None:
        state = self.state
        side = 2 if ev.type == REQUEST_TYPE else 3
        entry = state.pending.get(ev.id)
        if entry is not None and entry[side] is not None:  # the same Ce-Id twice: settle the first one
            self._expire(ev.id, "duplicate")
            entry = None
        while entry is None and self._pending_full(size):  # the oldest go; their rows enter the window
            self._expire(next(iter(state.pending)), "evicted")
        kind = "q" if ev.type == REQUEST_TYPE else "p"
        self._log([kind, ev.id, ev.request_id, now, payload], size)
        if entry is not None:
            self.metrics.event("join", "matched")

    def _pending_full(self, size: int) -> bool:
        """Whether a new pending entry of this size needs room (by count or by bytes)."""
        s = self.settings
        return self.state.pending_full(size, s.pending_max_entries, s.pending_max_bytes)

    def _expire(self, key: str, outcome: str) -> None:
        entry = self.state.pending[key]
        self.metrics.event("join", f"{outcome}_{'request' if entry[2] is not None else 'response'}")
        self._log(["x", key])

    async def ingest(self, doc: Any) -> dict:
        """POST /v1/ingest: {"rows": [{feature: value, ..., "prediction": p, "id": i}]} or a bare list."""
        self._require_ready()
        rows_in = doc.get("rows") if isinstance(doc, dict) else doc
        if not isinstance(rows_in, list) or not rows_in:
            raise BadInput("invalid_body", "body must be a non-empty list of rows or {'rows': [...]}")
        s = self.settings
        schema = self.engine.schema
        ignore = (s.prediction_column, "id", s.target_column)
        dq: Counter = Counter()
        rows, preds, ids = [], [], []
        for i, row in enumerate(rows_in):
            if not isinstance(row, dict):
                raise BadInput("invalid_body", f"row {i} must be an object of feature name -> value")
            present = tuple(k for k in ignore if k in row)
            rows.append(keyed_row(schema, row, dq, present))
            preds.append(self._prediction(row.get(s.prediction_column)))
            rid = row.get("id")
            ids.append(None if rid is None else str(rid))
        has_preds = any(p is not None for p in preds)
        has_ids = any(i is not None for i in ids)
        now = time.time()
        start = 0
        while start < len(rows):  # fill the open window, close it, continue in the next one
            space = max(1, s.window_size - len(self.state.window.rows))
            end = min(len(rows), start + space)
            chunk_preds = preds[start:end] if has_preds else None
            chunk_ids = ids[start:end] if has_ids else None
            self._log(["i", rows[start:end], chunk_preds, chunk_ids, now])
            start = end
        await self._commit(durable=True)
        self.metrics.quality(dq)
        self.metrics.event("ingest", "accepted")
        return {"accepted": len(rows)}

    async def feedback(self, doc: Any) -> dict:
        """POST /v1/feedback: [{"id": ..., "label": ...}]; a list label labels a multi-instance request."""
        self._require_ready()
        items = doc.get("feedback") if isinstance(doc, dict) else doc
        if not isinstance(items, list) or not items:
            raise BadInput("invalid_body", "body must be a non-empty list of {'id': ..., 'label': ...}")
        matched, unknown = [], 0
        for i, item in enumerate(items):
            if not isinstance(item, dict) or item.get("id") is None or "label" not in item:
                raise BadInput("invalid_body", f"feedback item {i} needs 'id' and 'label'")
            label = item["label"]
            if isinstance(label, dict) or (
                isinstance(label, list) and any(isinstance(x, list | dict) for x in label)
            ):
                raise BadInput(
                    "invalid_body", f"feedback item {i}: label must be a value or a list of values"
                )
            rid = str(item["id"])
            preds = self.state.store.get(rid)
            if preds is None:
                unknown += 1
                continue
            n_labels = len(label) if isinstance(label, list) else 1
            if n_labels != len(preds):
                raise BadInput(
                    "label_count_mismatch", f"id {rid!r}: {n_labels} labels for {len(preds)} predictions"
                )
            matched.append([rid, label])
        if matched:
            self._log(["f", matched])
            await self._commit(durable=True)
            self.checker.refresh_performance(list(self.state.labelled))
        self.metrics.event("feedback", "matched", len(matched))
        self.metrics.event("feedback", "unknown_id", unknown)
        return {"matched": len(matched), "unknown": unknown}

    # --- windows ----------------------------------------------------------------------------------
    def _close(self) -> None:
        window = self.state.window
        self._log(["c", window.seq, time.time()])
        # Checked only once the close is written: a refused close leaves the rows in the open window.
        self.wal.commit().add_done_callback(lambda f: f.exception() is None and self._submit(window))

    def _submit(self, window) -> None:
        self._submitted.add(window.seq)
        for seq in self.checker.submit(window, list(self.state.labelled)):
            LOG.warning("check queue full: window %d not checked", seq)
            self.metrics.event("window", "check_skipped")
            self._done(seq)

    def _checked_from_thread(self, seq: int) -> None:
        self.loop.call_soon_threadsafe(self._checked, seq)

    def _checked(self, seq: int) -> None:
        self._submitted.discard(seq)
        if self.stopping:  # finished while stop() joined the checker: the next start logs it checked
            return
        if seq in self.state.closed:
            self._done(seq)
            self._commit_in_background(on_error=lambda: self._finished.add(seq))

    def _done(self, seq: int) -> None:
        """The window's check finished or was skipped: log it, or keep it for after a storage failure."""
        self._submitted.discard(seq)
        if self._recovery is not None:
            self._finished.add(seq)
        elif seq in self.state.closed:
            self._log(["d", seq])

    def _maybe_compact(self) -> None:
        """A new segment with a snapshot once the log outgrows compact_bytes, or sooner when the disk has
        no room for the next chunk and a snapshot would free space (the old segments go)."""
        wal = self.wal
        outgrown = max(self.settings.compact_bytes, 2 * wal.snapshot_bytes)
        if wal.no_room is not None:
            outgrown = 2 * wal.snapshot_bytes
        if wal.bytes_in_segment > outgrown and wal.can_rotate():
            wal.rotate(self.state.snapshot())

    async def _tick(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(TIMER_SECONDS)
            if self._recovery is not None:
                continue  # nothing may be logged until storage works again
            try:
                self.wal.retry_room()
                now = time.time()
                for key in self.state.expired(now, s.pending_ttl_seconds):
                    self._expire(key, "expired")
                if self.state.window_aged(now, s.window_max_age_seconds, s.min_samples):
                    self._close()
                if self.wal.has_unwritten():
                    self._commit_in_background()  # flush timer records; nobody waits on them
            except Exception:
                LOG.exception("timer failed")

    def open_window(self) -> dict:
        st = self.state
        return {
            **st.open_window(),
            "pending_rows": sum(len(e[2]) for e in st.pending.values() if e[2] is not None),
            "closed_unchecked": len(st.closed),
            "rows_total": st.rows_total,
        }


def received_size(ev: Event, payload: list) -> int:
    """What an event's payload weighs for the pending table: its body as received, or the decoded
    payload as JSON when the body came inline as JSON (structured mode)."""
    return len(ev.body) if isinstance(ev.body, bytes) else payload_bytes(payload)


def check_bounds(settings, request: bool, count: int, size: int) -> None:
    """Refuses (413) an event that no window or pending table should hold: more rows or predictions
    than window_size, or heavier than pending_max_bytes. Shared with the batch job's sequencer."""
    what = "request rows" if request else "response predictions"
    if count > settings.window_size:
        raise BadInput(
            "too_many_rows",
            f"{count} {what} exceed window_size {settings.window_size}: one window could not hold them",
            413,
        )
    if size > settings.pending_max_bytes:
        raise BadInput(
            "pending_too_large",
            f"{what} of {size} bytes exceed pending_max_bytes {settings.pending_max_bytes}",
            413,
        )
