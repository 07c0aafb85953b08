"""Prometheus series of the metric contract (DESIGN.md). Every series carries model_name, none a namespace."""

from __future__ import annotations

import threading

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily

# *_created series double the counters for no use on a dashboard.
disable_created_metrics()

M = ["model_name"]


class Metrics:
    def __init__(self, model_name: str, registry: CollectorRegistry | None = None):
        self.model_name = model_name
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.drift_score = Gauge(
            "model_drift_score", "Share of drifted features in the last checked window (0..1).", M, registry=r
        )
        self.drift_detected = Gauge(
            "model_drift_detected", "1 when the last checked window showed dataset drift.", M, registry=r
        )
        self.feature_score = Gauge(
            "model_feature_drift_score",
            "Per-feature drift score of the last window: p-value (ks, chisquare, z) or distance (wasserstein, jensenshannon).",  # noqa: E501
            [*M, "feature_name", "stattest"],
            registry=r,
        )
        self.feature_detected = Gauge(
            "model_feature_drift_detected",
            "1 when the feature drifted in the last window.",
            [*M, "feature_name"],
            registry=r,
        )
        self.prediction_score = Gauge(
            "model_prediction_drift_score",
            "Drift score of the model output column in the last window.",
            M,
            registry=r,
        )
        self.prediction_detected = Gauge(
            "model_prediction_drift_detected",
            "1 when the model output drifted in the last window.",
            M,
            registry=r,
        )
        self.multivariate_error = Gauge(
            "model_multivariate_drift_reconstruction_error",
            "Mean PCA reconstruction error of the last window's rows (standardised feature space).",
            M,
            registry=r,
        )
        self.multivariate_lower = Gauge(
            "model_multivariate_drift_lower_threshold",
            "Lower bound of the reconstruction error band, from reference chunks (0: no lower bound).",
            M,
            registry=r,
        )
        self.multivariate_upper = Gauge(
            "model_multivariate_drift_upper_threshold",
            "Upper bound of the reconstruction error band, from reference chunks.",
            M,
            registry=r,
        )
        self.multivariate_detected = Gauge(
            "model_multivariate_drift_detected",
            "1 when the last window's reconstruction error left the reference band.",
            M,
            registry=r,
        )
        self.segment_share = Gauge(
            "model_segment_drift_share",
            "Share of drifted features inside one segment in the last window (NaN: too few rows to check).",
            [*M, "segment_column", "segment_value"],
            registry=r,
        )
        self.segment_detected = Gauge(
            "model_segment_drift_detected",
            "1 when the segment showed dataset drift in the last window (NaN: not checked).",
            [*M, "segment_column", "segment_value"],
            registry=r,
        )
        self.performance = Gauge(
            "model_performance",
            "Model quality on labelled predictions (feedback).",
            [*M, "metric"],
            registry=r,
        )
        self.estimated_performance = Gauge(
            "model_estimated_performance",
            "Model quality estimated without labels (CBPE) on the last window (NaN: no scored row).",
            [*M, "metric"],
            registry=r,
        )
        self.estimated_lower = Gauge(
            "model_estimated_performance_lower_threshold",
            "Lower alert threshold of the estimate, from the realized metric on reference chunks.",
            [*M, "metric"],
            registry=r,
        )
        self.estimated_upper = Gauge(
            "model_estimated_performance_upper_threshold",
            "Upper alert threshold of the estimate, from the realized metric on reference chunks.",
            [*M, "metric"],
            registry=r,
        )
        self.estimated_alert = Gauge(
            "model_estimated_performance_alert",
            "1 when the last window's estimate left its reference thresholds.",
            [*M, "metric"],
            registry=r,
        )
        self.window_samples = Gauge(
            "drift_detector_window_samples", "Rows in the open window.", M, registry=r
        )
        self.events = EventCounts(model_name, registry=r)
        self.violations = Counter(
            "drift_detector_data_quality_violations",
            "Data quality violations against the reference schema.",
            [*M, "feature_name", "kind"],
            registry=r,
        )
        self.checks = Counter("drift_detector_checks", "Drift checks run.", M, registry=r)
        self.check_duration = Histogram(
            "drift_detector_check_duration_seconds",
            "Time to check one window (all drift tests, prediction drift, performance).",
            M,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.last_check = Gauge(
            "drift_detector_last_check_timestamp_seconds",
            "Unix time of the last finished check.",
            M,
            registry=r,
        )
        self.pending_bytes = Gauge(
            "drift_detector_pending_bytes",
            "Size (as JSON) of the rows and predictions waiting in the pending table for their other half.",
            M,
            registry=r,
        ).labels(model_name)  # the service sets its function
        self.storage_ok = Gauge(
            "drift_detector_storage_ok",
            "1 while the write-ahead log takes writes and has room for its next chunk, else 0 (see /readyz).",
            M,
            registry=r,
        ).labels(model_name)  # the service sets its function
        self.storage_errors = Counter(
            "drift_detector_storage_errors",
            "Write-ahead log failures by kind: write, fsync, rotate (retried later), no_room (next chunk).",
            [*M, "kind"],
            registry=r,
        )
        self.refused_records = Counter(
            "drift_detector_storage_refused_records",
            "Log records dropped unwritten because the write-ahead log failed (their requests got 503).",
            M,
            registry=r,
        ).labels(model_name)
        self.wal_corrupt_records = Counter(
            "drift_detector_wal_corrupt_records",
            "Write-ahead log records lost to damage found by the replay at start (skipped, not applied).",
            M,
            registry=r,
        )
        self.wal_corrupt_bytes = Counter(
            "drift_detector_wal_corrupt_bytes",
            "Write-ahead log bytes skipped by the replay at start because no record in them could be read.",
            M,
            registry=r,
        )
        self.wal_degraded = Gauge(
            "drift_detector_wal_replay_degraded",
            "1 when the replay at start skipped damaged log records or fell back to an older snapshot.",
            M,
            registry=r,
        )
        self._feature_stattest: dict[str, str] = {}
        self._lock = threading.Lock()
        self.window_rows = self.window_samples.labels(model_name)  # the service sets its function
        self.checks.labels(model_name)
        for series in (self.wal_corrupt_records, self.wal_corrupt_bytes, self.wal_degraded):
            series.labels(model_name)  # 0 from the first scrape: alerts see the series before damage

    def record_replay(self, report) -> None:
        m = self.model_name
        self.wal_corrupt_records.labels(m).inc(report.corrupt_records)
        self.wal_corrupt_bytes.labels(m).inc(report.corrupt_bytes)
        self.wal_degraded.labels(m).set(1 if report.degraded else 0)

    def storage_error(self, kind: str, refused_records: int) -> None:
        self.storage_errors.labels(self.model_name, kind).inc()
        self.refused_records.inc(refused_records)

    def event(self, type_: str, outcome: str, n: int = 1) -> None:
        self.events.add(type_, outcome, n)

    def quality(self, counts: dict[tuple[str, str], int]) -> None:
        for (feature, kind), n in counts.items():
            self.violations.labels(self.model_name, feature, kind).inc(n)

    def record_check(self, result: dict, duration: float, timestamp: float) -> None:
        m = self.model_name
        with self._lock:
            self.drift_score.labels(m).set(result["drift_share"])
            self.drift_detected.labels(m).set(1 if result["dataset_drift"] else 0)
            for col in result["columns"]:
                name, stattest = col["name"], col["stattest"]
                old = self._feature_stattest.get(name)
                if old is not None and old != stattest:
                    self.feature_score.remove(m, name, old)
                self._feature_stattest[name] = stattest
                self.feature_score.labels(m, name, stattest).set(_number(col["score"]))
                self.feature_detected.labels(m, name).set(1 if col["drifted"] else 0)
            prediction = result.get("prediction_drift")
            if prediction is not None:
                self.prediction_score.labels(m).set(_number(prediction["score"]))
                self.prediction_detected.labels(m).set(1 if prediction["drifted"] else 0)
            self._record_multivariate(result.get("multivariate"))
            self._record_segments(result.get("segments") or [])
            self._record_estimated(result.get("estimated_performance"))
            self.record_performance(result.get("performance") or {})
            self.checks.labels(m).inc()
            self.check_duration.labels(m).observe(duration)
            self.last_check.labels(m).set(timestamp)

    def _record_multivariate(self, multivariate: dict | None) -> None:
        if multivariate is None:  # switched off or not fitted: no series at all
            return
        m = self.model_name
        self.multivariate_error.labels(m).set(multivariate["value"])
        self.multivariate_lower.labels(m).set(multivariate["lower_threshold"])
        self.multivariate_upper.labels(m).set(multivariate["upper_threshold"])
        self.multivariate_detected.labels(m).set(1 if multivariate["drift_detected"] else 0)

    def _record_segments(self, segments: list[dict]) -> None:
        # Labels come from the configuration (top values + _other_), never from traffic: bounded.
        m = self.model_name
        for seg in segments:
            labels = (m, seg["column"], seg["value"])
            detected = seg["dataset_drift"]
            self.segment_share.labels(*labels).set(_number(seg["drift_share"]))
            self.segment_detected.labels(*labels).set(float("nan") if detected is None else int(detected))

    def _record_estimated(self, estimated: dict | None) -> None:
        if estimated is None:  # switched off or not applicable: no series at all
            return
        m = self.model_name
        for metric, est in estimated["metrics"].items():
            self.estimated_performance.labels(m, metric).set(_number(est["value"]))
            self.estimated_lower.labels(m, metric).set(est["lower_threshold"])
            self.estimated_upper.labels(m, metric).set(est["upper_threshold"])
            self.estimated_alert.labels(m, metric).set(1 if est["alert"] else 0)

    def record_performance(self, performance: dict) -> None:
        for metric, value in performance.items():
            if isinstance(value, float | int) and metric != "samples":
                self.performance.labels(self.model_name, metric).set(value)


class EventCounts:
    """drift_detector_events_total{type, outcome}, counted in a plain dict and read at scrape time.

    Three counts per logged event: prometheus_client's Counter takes a lock and a few Python calls
    per increment, a dict update costs a tenth of that. Safe without a lock because each
    (type, outcome) is only ever counted from one thread (the event loop; `check_failed` only from
    the checker thread), and the GIL makes each dict operation atomic."""

    def __init__(self, model_name: str, registry: CollectorRegistry):
        self.model_name = model_name
        self.counts: dict[tuple[str, str], float] = {}
        registry.register(self)

    def add(self, type_: str, outcome: str, n: float = 1) -> None:
        key = (type_, outcome)
        self.counts[key] = self.counts.get(key, 0) + n

    def collect(self):
        family = CounterMetricFamily(
            "drift_detector_events", "Events received, by type and outcome.", labels=[*M, "type", "outcome"]
        )
        for (type_, outcome), value in list(self.counts.items()):
            family.add_metric([self.model_name, type_, outcome], value)
        yield family


def _number(value: float | None) -> float:
    return float("nan") if value is None else value
