"""The ingestion core. Runs on the event loop: decodes, validates, logs, applies, acknowledges.

Every accepted input becomes a write-ahead-log record before its 200 (see state.py for the records);
drift checks and reports happen on other threads and processes.
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
from drift_detector.state import State
from drift_detector.wal import WriteAheadLog

LOG = logging.getLogger(__name__)
TIMER_SECONDS = 1.0
# Outcome of a logged call that is no inference (a metadata or readiness GET): neither data nor an error.
IGNORED = "ignored"


class NotReady(Exception):
    pass


class Service:
    def __init__(self, settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics(settings.model_name)
        self.state = State(settings.prediction_store_size, settings.performance_window)
        self.metrics.window_rows.set_function(lambda: len(self.state.window.rows))  # read at scrape time
        self.wal = WriteAheadLog(settings.data_dir / "wal", settings.fsync, settings.fsync_interval_ms)
        self.ready = False
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
            replayed = 0
            for rec in self.wal.replay():
                self.state.apply(rec)
                replayed += 1
            LOG.info("replayed %d log records in %.2fs", replayed, time.monotonic() - started)
            self.loop.call_soon_threadsafe(self._go_live)
        except Exception as exc:
            LOG.exception("startup failed")
            self.failed = f"{type(exc).__name__}: {exc}"

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
        for window in list(self.state.closed.values()):  # closed before the restart, never checked
            self._submit(window)
        self._timer = self.loop.create_task(self._tick())
        self.ready = True
        LOG.info("ready: open window %d has %d rows", self.state.window.seq, len(self.state.window.rows))

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.checker is not None:
            self.checker.stop()
        if self.reports is not None:
            self.reports.stop()
        self.wal.close()

    # --- the live path ----------------------------------------------------------------------------
    def _require_ready(self) -> None:
        if not self.ready:
            raise NotReady(self.failed or "reference loading or log replay in progress")

    def _log(self, rec: list) -> None:
        self.wal.append(rec)
        self.state.apply(rec)

    async def accept_events(self, events: list[Event]) -> dict:
        """CloudEvents (request or response). All are decoded before any is applied."""
        self._require_ready()
        decoded, ignored = [], []
        for ev in events:
            result = self._decode_event(ev)
            (ignored if result is None else decoded).append(result or ev)
        now = time.time()
        for ev, payload, dq in decoded:
            self._apply_event(ev, payload, now)
            self.metrics.quality(dq)
        if decoded:
            self._after_rows()
            await self.wal.commit()
        for ev, _, _ in decoded:
            self.metrics.event(_kind(ev), "accepted")
        for ev in ignored:
            self._ignore(ev)
        return {"accepted": len(decoded), IGNORED: len(ignored)}

    def _ignore(self, ev: Event) -> None:
        self.metrics.event(_kind(ev), IGNORED)
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

    def _apply_event(self, ev: Event, payload: list, now: float) -> None:
        pending = self.state.pending
        side = 2 if ev.type == REQUEST_TYPE else 3
        entry = pending.get(ev.id)
        if entry is not None and entry[side] is not None:  # the same Ce-Id twice: settle the first one
            self._expire(ev.id, "duplicate")
            entry = None
        if entry is None and len(pending) >= self.settings.pending_max_entries:
            self._expire(next(iter(pending)), "evicted")
        kind = "q" if ev.type == REQUEST_TYPE else "p"
        self._log([kind, ev.id, ev.request_id, now, payload])
        if entry is not None:
            self.metrics.event("join", "matched")

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
            self._after_rows()
            start = end
        self.metrics.quality(dq)
        await self.wal.commit()
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
            await self.wal.commit()
            self.checker.refresh_performance(list(self.state.labelled))
        self.metrics.event("feedback", "matched", len(matched))
        self.metrics.event("feedback", "unknown_id", unknown)
        return {"matched": len(matched), "unknown": unknown}

    # --- windows ----------------------------------------------------------------------------------
    def _after_rows(self) -> None:
        if len(self.state.window.rows) >= self.settings.window_size:
            self._close()

    def _close(self) -> None:
        window = self.state.window
        self._log(["c", window.seq, time.time()])
        self._submit(window)
        self._maybe_compact()

    def _submit(self, window) -> None:
        for seq in self.checker.submit(window, list(self.state.labelled)):
            LOG.warning("check queue full: window %d not checked", seq)
            self.metrics.event("window", "check_skipped")
            self._log(["d", seq])

    def _checked_from_thread(self, seq: int) -> None:
        self.loop.call_soon_threadsafe(self._checked, seq)

    def _checked(self, seq: int) -> None:
        if seq in self.state.closed:
            self._log(["d", seq])
            self.wal.commit()
            self._maybe_compact()

    def _maybe_compact(self) -> None:
        if self.wal.bytes_in_segment > max(self.settings.compact_bytes, 2 * self.wal.snapshot_bytes):
            self.wal.rotate(self.state.snapshot())

    async def _tick(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(TIMER_SECONDS)
            try:
                now = time.time()
                for key in self.state.expired(now, s.pending_ttl_seconds):
                    self._expire(key, "expired")
                self._after_rows()
                window = self.state.window
                if (
                    s.window_max_age_seconds > 0
                    and window.opened_at is not None
                    and now - window.opened_at >= s.window_max_age_seconds
                    and len(window.rows) >= s.min_samples
                ):
                    self._close()
                if self.wal.has_unwritten():
                    self.wal.commit()  # flush timer records; nobody waits on them
            except Exception:
                LOG.exception("timer failed")

    def open_window(self) -> dict:
        st, w = self.state, self.state.window
        return {
            "seq": w.seq,
            "rows": len(w.rows),
            "opened_at": w.opened_at,
            "pending_joins": len(st.pending),
            "pending_rows": sum(len(e[2]) for e in st.pending.values() if e[2] is not None),
            "closed_unchecked": len(st.closed),
            "rows_total": st.rows_total,
        }


def _kind(ev: Event) -> str:
    return "request" if ev.type == REQUEST_TYPE else "response"
