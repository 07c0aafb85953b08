"""Settings: one table row per field of Settings; each has a flag, an environment variable and a config key.

Precedence: flag > environment variable (DRIFT_DETECTOR_<NAME>) > YAML config file > default (the
dataclass's). kmm_settings parses every value strictly and names the key and its source on failure.
A new setting is a field with its default plus one row in TABLE (a test checks they match).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmm_settings import (
    REQUIRED,
    Boolean,
    Choice,
    FilePath,
    Integer,
    ListOf,
    MappingOf,
    Number,
    Scalar,
    Setting,
    SettingError,
    Table,
    Text,
)

FSYNC_POLICIES = ("always", "interval", "never")
WAL_WRITES = ("mmap", "pwrite")


@dataclass
class Settings:
    # The settings the chart passes as flags (every field has a flag, an env variable and a key: TABLE).
    reference: Path | None = None
    model_name: str = "model"
    http_port: int = 8080
    http_host: str = "0.0.0.0"
    data_dir: Path = Path("/var/lib/drift-detector/data")
    reports_dir: Path = Path("/var/lib/drift-detector/reports")
    window_size: int = 1000
    min_samples: int = 100
    # Reference and schema.
    prediction_column: str = "prediction"
    target_column: str = "target"
    exclude_columns: list[str] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)  # name -> numeric | categorical
    stattests: dict[str, str] = field(default_factory=dict)  # name -> stattest (ks, wasserstein, ...)
    thresholds: dict[str, float] = field(default_factory=dict)  # name -> drift threshold
    drift_share: float = 0.5
    # Data quality: a numeric value is out_of_range outside [min - t * (max - min), max + t * (max - min)]
    # of the reference. A fresh draw lands outside the exact min..max of n reference rows with
    # probability about 2 / (n + 1) per feature, so exact bounds flag clean traffic.
    range_tolerance: float = 0.1
    # Multivariate drift (PCA reconstruction error, NannyML's method): fitted on the reference at start,
    # thresholds from reference chunks of window_size rows.
    multivariate_enabled: bool = True
    multivariate_explained_variance: float = 0.65  # PCA keeps the fewest components explaining more
    multivariate_std_multiplier: float = 3.0  # thresholds: mean +/- this many stds of the chunk errors
    # Segment drift: a dataset drift verdict inside each of the top_values most frequent reference values
    # of these categorical feature columns, plus `_other_`; segments with fewer window rows are not checked.
    segment_columns: list[str] = field(default_factory=list)
    segment_top_values: int = 10
    segment_min_samples: int = 30
    # Performance estimation without labels (CBPE, NannyML's method) for binary classifiers whose reference
    # has the prediction score and the target: thresholds from reference chunks of window_size rows.
    performance_estimation_enabled: bool = True
    # Windows.
    window_max_age_seconds: float = 0.0  # 0 disables closing by time
    check_queue_size: int = 4
    history_size: int = 100
    # Ingest.
    max_body_bytes: int = 8 * 1024 * 1024
    pending_max_entries: int = 10000
    # Pending entries also weigh at most this many bytes in total (their event bodies; in memory they take
    # 2-12x that): the oldest are evicted first, a single event heavier than this is a 413.
    pending_max_bytes: int = 16 * 1024 * 1024
    pending_ttl_seconds: float = 60.0
    prediction_output: str = "predictions"
    positive_class_index: int = -1
    accept_content_types: list[str] = field(
        # curl -d sends form-urlencoded; KServe's servers parse it as JSON anyway, so do we.
        default_factory=lambda: ["application/json", "application/x-www-form-urlencoded", ""]
    )
    # Write-ahead log.
    fsync: str = "interval"
    fsync_interval_ms: int = 200
    wal_write: str = "mmap"
    compact_bytes: int = 32 * 1024 * 1024  # log bytes since the last snapshot that start a new segment
    # Ground truth.
    task: str = "auto"  # classification | regression | auto (from the target column)
    positive_label: Any = 1
    classification_threshold: float = 0.5
    prediction_store_size: int = 100000
    performance_window: int = 1000
    performance_min_samples: int = 30
    # Reports.
    reports_enabled: bool = True
    report_every_n_windows: int = 10
    reports_max_count: int = 50
    reports_max_bytes: int = 200 * 1024 * 1024
    reports_min_interval_seconds: float = 60.0


ConfigError = SettingError  # the name the service's callers and tests know
_DEFAULTS = {
    f.name: f.default_factory() if callable(f.default_factory) else f.default
    for f in dataclasses.fields(Settings)
}


def _row(name: str, kind: Any, text: str) -> Setting:
    return Setting(name, kind, _DEFAULTS[name], text)


_COUNT = Integer(min=1)
TABLE = Table(
    [
        Setting("reference", FilePath(), REQUIRED, "reference data (parquet or CSV)"),
        _row(
            "model_name", Text(non_empty=True), "model_name label on every series (the InferenceService name)"
        ),
        _row("http_port", Integer(min=0, max=65535), "port for ingest, API, reports and /metrics"),
        _row("http_host", Text(non_empty=True), "address the HTTP server binds"),
        _row("data_dir", FilePath(), "write-ahead log and check history (a persistent volume)"),
        _row("reports_dir", FilePath(), "Evidently HTML reports"),
        _row("window_size", _COUNT, "rows per tumbling window"),
        _row("min_samples", _COUNT, "rows a window needs before it is checked (at most window_size)"),
        # Reference and schema.
        _row("prediction_column", Text(), "reference column holding the prediction (not a feature)"),
        _row("target_column", Text(), "reference column holding the target (not a feature)"),
        _row("exclude_columns", ListOf(Text()), "more reference columns to ignore"),
        _row(
            "column_types",
            MappingOf(Choice(("numeric", "numerical", "categorical"))),
            "column -> numeric or categorical, overrides the inferred kind",
        ),
        _row(
            "stattests",
            MappingOf(Text()),
            "column -> drift test (ks, chisquare, z, wasserstein, jensenshannon, ...)",
        ),
        _row("thresholds", MappingOf(Number()), "column -> drift threshold"),
        _row("drift_share", Number(min=0, max=1), "dataset drift when this share of features drifted"),
        _row(
            "range_tolerance",
            Number(min=0),
            "out_of_range only beyond the reference min..max widened by this share of (max - min); 0: exact",
        ),
        _row("multivariate_enabled", Boolean(), "multivariate drift per window (PCA reconstruction error)"),
        _row(
            "multivariate_explained_variance",
            Number(above=0, below=1),
            "PCA keeps the fewest components explaining more than this share of variance",
        ),
        _row(
            "multivariate_std_multiplier",
            Number(above=0),
            "band: mean +/- this many stds of the reference chunks' errors",
        ),
        _row(
            "segment_columns",
            ListOf(Text()),
            "categorical feature columns whose values get their own drift verdict",
        ),
        _row(
            "segment_top_values",
            _COUNT,
            "segments per column: the most frequent reference values, the rest _other_",
        ),
        _row("segment_min_samples", _COUNT, "fewest window rows to check a segment"),
        _row(
            "performance_estimation_enabled",
            Boolean(),
            "performance estimated without labels per window (CBPE)",
        ),
        # Windows.
        _row(
            "window_max_age_seconds",
            Number(min=0),
            "close a window by age once it has min_samples rows; 0: off",
        ),
        _row(
            "check_queue_size",
            _COUNT,
            "closed windows waiting for a check; older ones are skipped and counted",
        ),
        _row("history_size", _COUNT, "results kept for /api/v1/drift/history (persisted in the data dir)"),
        # Ingest.
        _row("max_body_bytes", _COUNT, "larger bodies get 413"),
        _row("pending_max_entries", _COUNT, "request/response join table: most entries"),
        _row(
            "pending_max_bytes",
            _COUNT,
            "join table: most bytes of the event bodies it holds (2-12x in memory); oldest evicted, a "
            "heavier single event is a 413",
        ),
        _row("pending_ttl_seconds", Number(above=0), "request/response join table: seconds an entry waits"),
        _row("prediction_output", Text(), "v2 output tensor that holds the prediction"),
        _row("positive_class_index", Integer(), "column taken when a prediction is a list of class scores"),
        _row("accept_content_types", ListOf(Text()), 'body media types accepted ("" included: no header)'),
        # Write-ahead log.
        _row(
            "fsync",
            Choice(FSYNC_POLICIES),
            "when an accepted record is acknowledged: interval (logger events once written, ingest and "
            "feedback once fdatasync'ed), always (every one once fdatasync'ed) or never (once written)",
        ),
        _row("fsync_interval_ms", _COUNT, "fsync=interval: most ms a written record waits for fdatasync"),
        _row(
            "wal_write",
            Choice(WAL_WRITES),
            "how records reach the log file: mmap (copied into a shared map of the space zero-filled "
            "ahead, no system call each) or pwrite (one system call per commit): choose pwrite on "
            "copy-on-write file systems (btrfs, ZFS), where a full disk stops mmap writes with SIGBUS",
        ),
        _row(
            "compact_bytes",
            _COUNT,
            "start a new log segment with a snapshot once the log since the last one is this large (and "
            "2x the last snapshot), windows closing or not",
        ),
        # Ground truth.
        _row("task", Choice(("auto", "classification", "regression")), "auto reads the target column"),
        _row("positive_label", Scalar(), "classification metrics: the positive label"),
        _row(
            "classification_threshold",
            Number(),
            "classification metrics: score >= this predicts the positive label",
        ),
        _row("prediction_store_size", _COUNT, "predictions kept for labels (oldest dropped)"),
        _row("performance_window", _COUNT, "labelled pairs the quality metrics use"),
        _row("performance_min_samples", _COUNT, "fewest labelled pairs for quality metrics"),
        # Reports.
        _row("reports_enabled", Boolean(), "Evidently reports at all"),
        _row("report_every_n_windows", Integer(min=0), "a report every Nth window (0: only on drift)"),
        _row("reports_max_count", _COUNT, "retention: most reports kept, oldest deleted first"),
        _row("reports_max_bytes", _COUNT, "retention: most bytes of reports kept"),
        _row("reports_min_interval_seconds", Number(min=0), "at most one report per interval"),
    ],
    env_prefix="DRIFT_DETECTOR_",
    config_env="DRIFT_DETECTOR_CONFIG",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m drift_detector",
        usage="%(prog)s --reference FILE [--config FILE] [--SETTING VALUE ...]",
        description="KServe payload-logger sink: windows model inputs and outputs and checks them for drift.",
        epilog="Precedence: flag > environment variable > config file > default. A boolean flag alone "
        "means true (--reports-enabled=false turns it off). A bad value exits 2 with one line naming it.",
        allow_abbrev=False,
    )
    TABLE.add_flags(parser.add_argument_group("settings"))
    return parser


def load_settings(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags, environment and config file; raises ConfigError naming the bad key."""
    _, loaded = TABLE.parse(build_parser(), argv, os.environ if environ is None else environ)
    settings = Settings(**loaded.values)
    if settings.min_samples > settings.window_size:
        raise loaded.error(
            "min_samples", f"must not exceed window_size ({settings.window_size}), got {settings.min_samples}"
        )
    return settings
