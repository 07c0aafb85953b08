"""Off the request path: checks closed windows for drift and keeps the result history."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from drift_detector import performance
from drift_detector.metrics import Metrics
from drift_detector.performance import infer_task
from drift_detector.schema import Schema, build_schema, load_reference
from drift_detector.state import Window
from drift_detector.stats import NUMERIC, DriftInputError, ReferenceProfile
from drift_detector.stats.cbpe import METHOD as CBPE_METHOD
from drift_detector.stats.cbpe import PerformanceEstimator
from drift_detector.stats.multivariate import ReconstructionModel
from drift_detector.stats.segments import SegmentProfiles

LOG = logging.getLogger(__name__)


@dataclass
class Engine:
    """What a check needs, built once from the reference."""

    schema: Schema
    features: Any  # ReferenceProfile over the feature columns
    prediction: Any | None  # ReferenceProfile over the prediction column, if the reference has one
    prediction_column: str | None
    prediction_numeric: bool
    task: str
    reference: pd.DataFrame  # kept to profile a subset of columns when a window lacks some entirely
    drift_share: float
    multivariate: ReconstructionModel | None = None  # fitted by fit_multivariate, when enabled
    segments: SegmentProfiles | None = None  # built by build_segments, when segment columns are set
    estimator: PerformanceEstimator | None = None  # fitted by fit_performance_estimation, when enabled
    _partial: dict = field(default_factory=dict)

    def build_segments(self, settings) -> None:
        """Profiles per segment, once; a misconfigured segment column leaves segments off, logged."""
        if not settings.segment_columns or self.segments is not None:
            return
        try:
            self.segments = SegmentProfiles.build(
                self.reference,
                self.schema.specs,
                settings.segment_columns,
                top_values=settings.segment_top_values,
                min_rows=settings.segment_min_samples,
                drift_share=self.drift_share,
            )
        except DriftInputError as exc:
            LOG.warning("segment drift is off: %s", exc)
            return
        LOG.info("segment drift: %d segments", len(self.segments.labels))

    def fit_multivariate(self, settings) -> None:
        """Fit the reconstruction model once, on the feature columns; a reference it cannot be fitted
        on (fewer than two windows of rows, every feature constant) leaves it off, with the reason logged."""
        if not settings.multivariate_enabled or self.multivariate is not None:
            return
        kinds = {name: spec.kind for name, spec in self.schema.specs.items()}
        try:
            self.multivariate = ReconstructionModel.fit(
                self.reference,
                kinds,
                settings.window_size,
                explained_variance=settings.multivariate_explained_variance,
                std_multiplier=settings.multivariate_std_multiplier,
            )
        except DriftInputError as exc:
            LOG.warning("multivariate drift is off: %s", exc)
            return
        m = self.multivariate
        LOG.info(
            "multivariate drift: %d of %d components, thresholds %.4f..%.4f from %d reference chunks",
            m.n_components, len(m.columns), m.lower_threshold, m.upper_threshold,
            len(m.reference_chunk_values),
        )  # fmt: skip

    def fit_performance_estimation(self, settings) -> None:
        """Fit CBPE once on the reference's scores and targets; a model it does not apply to (regression,
        multiclass, labels instead of scores, no target) leaves it off, with the reason logged."""
        if not settings.performance_estimation_enabled or self.estimator is not None:
            return
        try:
            scores, y_true = self._scored_reference(settings)
            self.estimator = PerformanceEstimator.fit(
                scores, y_true, settings.window_size, decision_threshold=settings.classification_threshold
            )
        except DriftInputError as exc:
            LOG.warning("performance estimation is off: %s", exc)
            return
        e = self.estimator
        LOG.info(
            "performance estimation: cbpe, %s, accuracy thresholds %.4f..%.4f",
            "isotonic calibration" if e.calibrated else "scores used as they are", *e.thresholds["accuracy"],
        )  # fmt: skip

    def _scored_reference(self, settings) -> tuple[np.ndarray, np.ndarray]:
        """The reference's positive-class scores and whether each row's target is the positive label."""
        ref, score_col, target_col = self.reference, settings.prediction_column, settings.target_column
        if self.task != "classification":
            raise DriftInputError(f"the model is a {self.task} model; CBPE estimates classifiers")
        if score_col not in ref or target_col not in ref:
            raise DriftInputError(f"the reference needs the {score_col!r} and {target_col!r} columns")
        if not self.prediction_numeric or not pd.api.types.is_numeric_dtype(ref[score_col]):
            raise DriftInputError(f"{score_col!r} holds labels, not scores")
        scores = ref[score_col].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.nanmin(scores) < 0 or np.nanmax(scores) > 1 or len(np.unique(scores[~np.isnan(scores)])) <= 2:
            raise DriftInputError(f"{score_col!r} holds labels, not scores between 0 and 1")
        labels = {performance.label_key(v) for v in ref[target_col].dropna()}
        positive = performance.label_key(settings.positive_label)
        if len(labels) > 2:
            raise DriftInputError(
                f"the target has {len(labels)} classes; only binary classifiers are estimated"
            )
        if positive not in labels:
            raise DriftInputError(f"the positive label {settings.positive_label!r} is not in the target")
        known = ref[target_col].notna().to_numpy()
        y_true = np.array([performance.label_key(v) == positive for v in ref[target_col][known]])
        return scores[known], y_true

    def feature_profile(self, skip: tuple[str, ...]) -> Any:
        """The feature profile without the columns a window has no value for (built once per set)."""
        if not skip:
            return self.features
        if skip not in self._partial:
            specs = {n: sp for n, sp in self.schema.specs.items() if n not in skip}
            self._partial[skip] = ReferenceProfile.build(self.reference, specs, drift_share=self.drift_share)
        return self._partial[skip]


def build_engine(settings) -> tuple[Engine, dict[str, dict]]:
    """The engine from the reference file, and the checked columns' kind, stattest and threshold
    (features and prediction) for the reports. Shared by the service and the batch job."""
    s = settings
    reference = load_reference(s.reference)
    schema, prediction_spec = build_schema(reference, s)
    features = ReferenceProfile.build(reference, schema.specs, drift_share=s.drift_share)
    prediction = ReferenceProfile.build(reference, prediction_spec) if prediction_spec else None
    prediction_numeric = all(sp.kind == NUMERIC for sp in prediction_spec.values())
    task = s.task
    if task == "auto":
        task = infer_task(reference[s.target_column]) if s.target_column in reference else "classification"
    columns = {
        name: {"kind": sp.kind, "stattest": sp.stattest, "threshold": sp.threshold}
        for name, sp in {**schema.specs, **prediction_spec}.items()
    }
    LOG.info(
        "reference %s: %d rows, %d features, prediction column %s, task %s",
        s.reference, len(reference), len(schema.names), bool(prediction_spec), task,
    )  # fmt: skip
    engine = Engine(
        schema=schema,
        features=features,
        prediction=prediction,
        prediction_column=s.prediction_column if prediction_spec else None,
        prediction_numeric=prediction_numeric,
        task=task,
        reference=reference,
        drift_share=s.drift_share,
    )
    return engine, columns


@dataclass
class Job:
    window: Window | None  # None: only refresh model performance
    labelled: list[list[Any]]


class Evaluator:
    """The drift check of one closed window, free of threads, metrics and history: the service's
    checker and the batch job (drift_detector.batch) both compute results here."""

    def __init__(self, engine: Engine, settings):
        self.engine = engine
        self.settings = settings

    def prepare(self) -> None:
        """Fit what the reference gives once, before the first check. A failure leaves that part off
        and must not stop the checks: the per-feature checks still run."""
        steps = (
            self.engine.fit_multivariate,
            self.engine.build_segments,
            self.engine.fit_performance_estimation,
        )
        for step in steps:
            try:
                step(self.settings)
            except Exception:
                LOG.exception("%s failed: that part of the check stays off", step.__name__)

    def evaluate(self, window: Window, labelled: list[list[Any]]) -> tuple[dict[str, Any], pd.DataFrame]:
        """The result of one window (without checked_at and duration) and its feature frame."""
        frame = self.engine.schema.frame(window.rows)
        # A feature with no value in the whole window cannot be tested; the others still are.
        all_missing = frame.isna().all()
        skip = tuple(all_missing.index[all_missing])
        if len(skip) == len(frame.columns):
            raise DriftInputError("no feature has a value in this window")
        drift = self.engine.feature_profile(skip).check(frame.drop(columns=list(skip)))
        result: dict[str, Any] = {
            "model_name": self.settings.model_name,
            "window": {
                "seq": window.seq,
                "opened_at": window.opened_at,
                "closed_at": window.closed_at,
                "rows": len(window.rows),
                "predictions": sum(p is not None for p in window.preds),
            },
            **_drift_dict(drift),
            "unchecked_columns": list(skip),
            "multivariate": self._multivariate(frame),
            "segments": self._segments(frame),
            "prediction_drift": self._prediction_drift(window),
            "performance": self._performance(labelled),
        }
        result["estimated_performance"] = self._estimated_performance(window, result["performance"])
        return result, frame

    def _multivariate(self, frame: pd.DataFrame) -> dict | None:
        model = self.engine.multivariate
        return None if model is None else model.check(frame).to_dict()

    def _segments(self, frame: pd.DataFrame) -> list[dict]:
        segments = self.engine.segments
        return [] if segments is None else [s.to_dict() for s in segments.check(frame)]

    def _prediction_drift(self, window: Window) -> dict | None:
        eng = self.engine
        if eng.prediction is None:
            return None
        preds = [p for p in window.preds if p is not None]
        if len(preds) < max(1, self.settings.min_samples // 2):
            return None
        values = _prediction_series(preds, eng.prediction_numeric)
        drift = eng.prediction.check(pd.DataFrame({eng.prediction_column: values}))
        column = _drift_dict(drift)["columns"][0]
        return {**column, "n_current": len(preds)}

    def _performance(self, labelled: list[list[Any]]) -> dict | None:
        if len(labelled) < self.settings.performance_min_samples:
            return None
        s = self.settings
        out = performance.compute(labelled, self.engine.task, s.positive_label, s.classification_threshold)
        return {**out, "samples": len(labelled)}

    def _estimated_performance(self, window: Window, realized: dict | None) -> dict | None:
        """CBPE on the window's scores; the realized value (labelled feedback) beside each estimate."""
        estimator = self.engine.estimator
        if estimator is None:
            return None
        scores = _prediction_series(window.preds, numeric=True).to_numpy()
        metrics = {}
        for name, estimate in estimator.estimate(scores).items():
            metrics[name] = estimate.to_dict()
            if realized is not None and name in realized:
                metrics[name]["realized"] = realized[name]
        return {
            "method": CBPE_METHOD,
            "calibrated": estimator.calibrated,
            "n_scored": int(np.count_nonzero(~np.isnan(scores))),
            "metrics": metrics,
        }


class Checker(Evaluator):
    def __init__(
        self,
        engine: Engine,
        settings,
        metrics: Metrics,
        on_checked: Callable[[int], None],
        reports: Any | None = None,
    ):
        super().__init__(engine, settings)
        self.metrics = metrics
        self.on_checked = on_checked  # called from this thread; must hand over to the event loop
        self.reports = reports
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.history: deque[dict] = deque(maxlen=settings.history_size)
        self.history_path = Path(settings.data_dir) / "history.jsonl"
        self._lines_in_file = 0
        self._lock = threading.Lock()
        self._file_lock = threading.Lock()  # the checker thread and imports both append to history
        self._perf_queued = threading.Event()
        self._busy = False
        self._last_report = -float("inf")
        self._thread = threading.Thread(target=self._run, name="drift-checker", daemon=True)
        self._load_history()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def submit(self, window: Window, labelled: list[list[Any]]) -> list[int]:
        """Queue a closed window; returns the windows dropped because the queue was full."""
        dropped = []
        with self._cond:
            self._jobs.append(Job(window, labelled))
            waiting = [j for j in self._jobs if j.window is not None]
            for job in waiting[: max(0, len(waiting) - self.settings.check_queue_size)]:
                self._jobs.remove(job)
                dropped.append(job.window.seq)
            self._cond.notify()
        return dropped

    def refresh_performance(self, labelled: list[list[Any]]) -> None:
        """Labels arrived: recompute model quality, once per burst."""
        if not self._perf_queued.is_set():
            self._perf_queued.set()
            with self._cond:
                self._jobs.append(Job(None, labelled))
                self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._jobs and not self._busy

    def has_result(self, window: Window) -> bool:
        """Whether the history holds this window's result: a check that finished before a restart
        whose "checked" record never reached the log (stopped or killed in between)."""
        key = (window.seq, window.opened_at, window.closed_at, len(window.rows))
        with self._lock:
            return any(_window_key(r.get("window")) == key for r in self.history)

    def latest(self) -> dict | None:
        with self._lock:
            return self.history[-1] if self.history else None

    def add_result(self, result: dict) -> None:
        """A result checked elsewhere (the batch job, see imports.py): exported and kept as if checked
        here. Called from the event loop, so the history file is written under the checker's lock."""
        self.metrics.record_check(result, result.get("duration_seconds") or 0.0, result["checked_at"])
        self._remember(result)

    def recent(self, limit: int) -> list[dict]:
        with self._lock:
            items = list(self.history)
        return items[-limit:][::-1] if limit > 0 else []

    # --- worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        self.prepare()
        while True:
            with self._cond:
                while not self._jobs and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._jobs.popleft()
                self._busy = True
            try:
                if job.window is None:
                    self._perf_queued.clear()
                    self.metrics.record_performance(self._performance(job.labelled) or {})
                else:
                    self._check(job)
            except DriftInputError as exc:  # e.g. a column with no value in this window
                LOG.warning("window %d cannot be checked: %s", job.window.seq, exc)
                self.metrics.event("window", "check_failed")
                self.on_checked(job.window.seq)
            except Exception:  # a failed check must not stop the next one
                LOG.exception("drift check failed")
                self.metrics.event("window", "check_failed")
                if job.window is not None:
                    self.on_checked(job.window.seq)
            finally:
                self._busy = False

    def _check(self, job: Job) -> None:
        window = job.window
        started = time.perf_counter()
        result, frame = self.evaluate(window, job.labelled)
        duration = time.perf_counter() - started
        now = time.time()
        result["checked_at"] = now
        result["duration_seconds"] = duration
        if self.reports is not None and self._want_report(window.seq, result):
            try:
                checked = frame.drop(columns=result["unchecked_columns"])
                report_frame = self._report_frame(checked, window)
                result["report"] = self.reports.submit(window.seq, report_frame, result)
            # Reports are best effort; the check result stands. ValueError/TypeError: pyarrow cannot
            # store a column mixing types (say an unseen text value in a bool column) as parquet.
            except (OSError, ValueError, TypeError) as exc:
                LOG.warning("could not queue a report for window %d: %s", window.seq, exc)
        self.metrics.record_check(result, duration, now)
        self._remember(result)
        self.on_checked(window.seq)

    def _want_report(self, seq: int, result: dict) -> bool:
        """On drift and every Nth window, but not more often than reports_min_interval_seconds:
        under heavy traffic windows close every second and Evidently takes seconds per report."""
        every = self.settings.report_every_n_windows
        multivariate = bool((result.get("multivariate") or {}).get("drift_detected"))
        wanted = bool(result["dataset_drift"]) or multivariate or (every > 0 and seq % every == 0)
        now = time.monotonic()
        if not wanted or now - self._last_report < self.settings.reports_min_interval_seconds:
            return False
        self._last_report = now
        return True

    def _report_frame(self, frame: pd.DataFrame, window: Window) -> pd.DataFrame:
        eng = self.engine
        if eng.prediction_column is None or all(p is None for p in window.preds):
            return frame  # no predictions logged (request-only logger, plain rows): features only
        out = frame.copy()
        out[eng.prediction_column] = _prediction_series(window.preds, eng.prediction_numeric)
        return out

    # --- history ----------------------------------------------------------------------------------
    def _remember(self, result: dict) -> None:
        with self._file_lock:
            self._remember_locked(result)

    def _remember_locked(self, result: dict) -> None:
        with self._lock:
            self.history.append(result)
        try:
            if self._lines_in_file >= 2 * self.settings.history_size:
                tmp = self.history_path.with_suffix(".tmp")
                with self._lock:
                    lines = b"".join(orjson.dumps(r) + b"\n" for r in self.history)
                tmp.write_bytes(lines)
                tmp.replace(self.history_path)
                self._lines_in_file = len(self.history)
            else:
                with open(self.history_path, "ab") as fh:
                    fh.write(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
                self._lines_in_file += 1
        except OSError as exc:
            LOG.warning("could not persist check history: %s", exc)

    def _load_history(self) -> None:
        if not self.history_path.exists():
            return
        for line in self.history_path.read_bytes().splitlines():
            try:
                self.history.append(orjson.loads(line))
                self._lines_in_file += 1
            except orjson.JSONDecodeError:
                continue  # a torn last line after a crash


def _window_key(window: Any) -> tuple | None:
    """What tells one window's result from another's: its number, when it opened and closed, its rows
    (a result the batch job imported has its own times)."""
    if not isinstance(window, dict):
        return None
    return tuple(window.get(k) for k in ("seq", "opened_at", "closed_at", "rows"))


def _drift_dict(drift: Any) -> dict:
    d = drift.to_dict()
    return {
        "drift_share": float(d["drift_share"]),
        "drift_share_threshold": float(d["drift_share_threshold"]),
        "n_drifted": int(d["n_drifted"]),
        "dataset_drift": bool(d["dataset_drift"]),
        "n_reference": int(d["n_reference"]),
        "n_current": int(d["n_current"]),
        "columns": [
            {
                "name": c["name"],
                "kind": c["kind"],
                "stattest": c["stattest"],
                "score": c["score"],  # None when the statistic is undefined (NaN)
                "threshold": float(c["threshold"]),
                "drifted": bool(c["drifted"]),
            }
            for c in d["columns"]
        ],
    }


def _prediction_series(preds: list[Any], numeric: bool) -> pd.Series:
    if numeric:
        return pd.Series(
            np.array([np.nan if p is None or isinstance(p, str) else p for p in preds], dtype=np.float64)
        )
    return pd.Series([p for p in preds], dtype=object)
