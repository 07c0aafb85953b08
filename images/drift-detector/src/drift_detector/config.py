"""Settings: command-line flags (each with an environment twin) plus a YAML file for everything else."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FSYNC_POLICIES = ("always", "interval", "never")


@dataclass
class Settings:
    # Flags (also settable in the YAML file; a flag or its environment variable wins).
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
    fsync: str = "always"
    fsync_interval_ms: int = 50
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


# (flag, settings field, type, help). The environment twin is DRIFT_DETECTOR_<FIELD upper>.
FLAGS: list[tuple[str, str, type, str]] = [
    ("--reference", "reference", Path, "reference data (parquet or CSV)"),
    ("--model-name", "model_name", str, "model_name label on every series (the InferenceService name)"),
    ("--http-port", "http_port", int, "port for ingest, API, reports and /metrics"),
    ("--data-dir", "data_dir", Path, "write-ahead log and state (a persistent volume)"),
    ("--reports-dir", "reports_dir", Path, "Evidently HTML reports"),
    ("--window-size", "window_size", int, "rows per tumbling window"),
    ("--min-samples", "min_samples", int, "rows a window needs before it is checked"),
]


def env_name(field_name: str) -> str:
    return "DRIFT_DETECTOR_" + field_name.upper()


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m drift_detector",
        description="KServe payload-logger sink: windows model inputs and outputs and checks them for drift.",
    )
    for flag, name, _, text in FLAGS:
        default = getattr(Settings, name, None)
        parser.add_argument(
            flag, dest=name, default=None, help=f"{text} (env {env_name(name)}, default {default})"
        )
    parser.add_argument(
        "--config",
        dest="config",
        default=None,
        help=f"YAML file with every other setting, see README (env {env_name('config')})",
    )
    return parser


def _coerce(name: str, value: Any) -> Any:
    default = next(f for f in dataclasses.fields(Settings) if f.name == name)
    kind = default.type if isinstance(default.type, str) else str(default.type)
    try:
        if kind.startswith("Path"):
            return None if value in (None, "") else Path(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind == "str":
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r}: cannot use {value!r} ({exc})") from None
    return value


def load_settings(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    config_path = args.config or environ.get(env_name("config"))
    if config_path:
        values.update(_read_yaml(Path(config_path)))
    for _, name, _, _ in FLAGS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
        elif env_name(name) in environ:
            values[name] = environ[env_name(name)]
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) in config: {', '.join(unknown)}")
    settings = Settings(**{k: _coerce(k, v) for k, v in values.items()})
    validate(settings)
    return settings


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def validate(s: Settings) -> None:
    if s.reference is None:
        raise ConfigError(f"--reference (or {env_name('reference')}) is required")
    if s.window_size < 1 or s.min_samples < 1:
        raise ConfigError("window_size and min_samples must be positive")
    if s.min_samples > s.window_size:
        raise ConfigError(f"min_samples ({s.min_samples}) must not exceed window_size ({s.window_size})")
    if s.fsync not in FSYNC_POLICIES:
        raise ConfigError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, got {s.fsync!r}")
    if s.task not in ("auto", "classification", "regression"):
        raise ConfigError(f"task must be auto, classification or regression, got {s.task!r}")
    for name, kind in s.column_types.items():
        if kind not in ("numeric", "numerical", "categorical"):
            raise ConfigError(f"column_types[{name!r}] must be numeric or categorical, got {kind!r}")
    if not s.range_tolerance >= 0:
        raise ConfigError(f"range_tolerance must be a non-negative fraction, got {s.range_tolerance!r}")
    variance = s.multivariate_explained_variance
    if not 0 < variance < 1:
        raise ConfigError(f"multivariate_explained_variance must be within (0, 1), got {variance!r}")
    if not (math.isfinite(s.multivariate_std_multiplier) and s.multivariate_std_multiplier > 0):
        raise ConfigError(
            f"multivariate_std_multiplier must be positive, got {s.multivariate_std_multiplier!r}"
        )
    if s.segment_top_values < 1 or s.segment_min_samples < 1:
        raise ConfigError("segment_top_values and segment_min_samples must be positive")
    if not isinstance(s.segment_columns, list) or not all(isinstance(c, str) for c in s.segment_columns):
        raise ConfigError(f"segment_columns must be a list of column names, got {s.segment_columns!r}")
    if s.pending_max_entries < 1 or s.pending_ttl_seconds <= 0 or s.pending_max_bytes < 1:
        raise ConfigError("pending_max_entries, pending_max_bytes and pending_ttl_seconds must be positive")
    if s.compact_bytes < 1:
        raise ConfigError(f"compact_bytes must be positive, got {s.compact_bytes!r}")
