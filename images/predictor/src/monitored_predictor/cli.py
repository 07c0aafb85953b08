"""Command line: KServe's own model-server flags plus our settings table.

KServe's flags (--model_name, --http_port, --enable_grpc, ...) keep KServe's meaning and defaults. Each
of ours has a flag in KServe's style (--max_batch_size), an environment variable (MAX_BATCH_SIZE) and a
key in the YAML file given by --config or PREDICTOR_CONFIG; flag > environment > file > default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from kmm_settings import Boolean, Integer, ListOf, Number, Setting, SettingError, Table, Text
from kserve import model_server

from .http_hooks import DEFAULT_MAX_BODY_BYTES
from .model import ServingSettings

DEFAULT_MODEL_DIR = "/mnt/models"

TABLE = Table(
    [
        Setting(
            "model_dir",
            Text(non_empty=True),
            DEFAULT_MODEL_DIR,
            "Directory holding model.joblib and schema.json.",
        ),
        Setting("http_host", Text(non_empty=True), "0.0.0.0", "Address the HTTP server binds."),
        Setting("max_batch_size", Integer(min=1), 1000, "Most instances accepted in one request."),
        Setting(
            "max_body_bytes",
            Integer(min=1),
            DEFAULT_MAX_BODY_BYTES,
            "Largest request body in bytes; a larger one is refused with 413 before it is read in full.",
        ),
        Setting(
            "allow_non_finite",
            Boolean(),
            False,
            "Pass NaN, inf and null (as NaN) to the model instead of rejecting them with 400.",
        ),
        Setting(
            "return_all_scores",
            Boolean(),
            False,
            "Classifiers: return every class score per instance instead of the positive-class score.",
        ),
        Setting(
            "feature_mean_half_life",
            Number(above=0),
            1000.0,
            "Half-life, in instances, of the exponentially weighted model_feature_mean.",
        ),
        Setting(
            "prediction_buckets",
            ListOf(Number()),
            [],
            "Distinct bucket bounds of model_prediction_distribution; "
            "empty: 0.05..1.0 in steps of 0.05 for probabilities, signed decades for regression.",
        ),
    ],
    env_prefix="",  # the environment variables predate the table: MODEL_DIR, MAX_BATCH_SIZE, ...
    config_env="PREDICTOR_CONFIG",
    flag_style="snake",
    switches=False,  # like KServe's own boolean flags: --allow_non_finite true
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitored_predictor",
        description="KServe predictor serving a scikit-learn model with Prometheus model monitoring.",
        parents=[model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
        epilog="KServe's own flags above keep their KServe meaning and defaults. "
        "Metrics are served at /metrics on --http_port.",
    )
    TABLE.add_flags(
        parser.add_argument_group("monitored predictor (flag > environment > config file > default)")
    )
    return parser


def parse_args(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> argparse.Namespace:
    """KServe's flags and our settings on one namespace; raises SettingError naming a bad setting."""
    parser = build_parser()
    args, loaded = TABLE.parse(parser, argv, os.environ if environ is None else environ)
    if args.workers != 1:
        parser.error("--workers must be 1: metrics live in the process; scale with replicas instead")
    buckets = loaded.values["prediction_buckets"]
    if len(set(buckets)) != len(buckets):
        raise loaded.error("prediction_buckets", f"bucket bounds must be distinct, got {buckets}")
    vars(args).update(loaded.values, prediction_buckets=tuple(sorted(buckets)))
    return args


def serving_settings(args: argparse.Namespace) -> ServingSettings:
    return ServingSettings(
        max_batch_size=args.max_batch_size,
        allow_non_finite=args.allow_non_finite,
        return_all_scores=args.return_all_scores,
        feature_mean_half_life=args.feature_mean_half_life,
        prediction_buckets=args.prediction_buckets or None,
    )


__all__ = ["TABLE", "SettingError", "build_parser", "parse_args", "serving_settings"]
