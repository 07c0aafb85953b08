"""Command line: KServe's own model-server flags plus ours; each of ours has an environment twin."""

from __future__ import annotations

import argparse
import os

from kserve import model_server
from kserve.utils.utils import strtobool

from .http_hooks import DEFAULT_MAX_BODY_BYTES
from .model import ServingSettings

DEFAULT_MODEL_DIR = "/mnt/models"


def _bool(text: str) -> bool:
    try:
        return bool(strtobool(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}") from None


def _buckets(text: str) -> tuple[float, ...]:
    if not text.strip():
        return ()
    try:
        values = tuple(sorted(float(v) for v in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError("bucket bounds must be distinct")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


# (flag, environment variable, default as text, type, help). argparse converts a string default with
# `type`, so a bad environment value fails exactly like a bad flag.
OWN_FLAGS = (
    ("--model_dir", "MODEL_DIR", DEFAULT_MODEL_DIR, str, "Directory holding model.joblib and schema.json."),
    ("--http_host", "HTTP_HOST", "0.0.0.0", str, "Address the HTTP server binds."),
    ("--max_batch_size", "MAX_BATCH_SIZE", "1000", _positive_int, "Most instances accepted in one request."),
    (
        "--max_body_bytes",
        "MAX_BODY_BYTES",
        str(DEFAULT_MAX_BODY_BYTES),
        _positive_int,
        "Largest request body in bytes; a larger one is refused with 413 before it is read in full.",
    ),
    (
        "--allow_non_finite",
        "ALLOW_NON_FINITE",
        "false",
        _bool,
        "Pass NaN, inf and null (as NaN) to the model instead of rejecting them with 400.",
    ),
    (
        "--return_all_scores",
        "RETURN_ALL_SCORES",
        "false",
        _bool,
        "Classifiers: return every class score per instance instead of the positive-class score.",
    ),
    (
        "--feature_mean_half_life",
        "FEATURE_MEAN_HALF_LIFE",
        "1000",
        _positive_float,
        "Half-life, in instances, of the exponentially weighted model_feature_mean.",
    ),
    (
        "--prediction_buckets",
        "PREDICTION_BUCKETS",
        "",
        _buckets,
        "Comma-separated bucket bounds of model_prediction_distribution; "
        "empty: 0.05..1.0 in steps of 0.05 for probabilities, signed decades for regression.",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitored_predictor",
        description="KServe predictor serving a scikit-learn model with Prometheus model monitoring.",
        parents=[model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="KServe's own flags above keep their KServe meaning and defaults. "
        "Metrics are served at /metrics on --http_port.",
    )
    ours = parser.add_argument_group("monitored predictor (flag overrides environment variable)")
    for flag, env, default, kind, text in OWN_FLAGS:
        ours.add_argument(flag, default=os.environ.get(env, default), type=kind, help=f"{text} [env {env}]")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers != 1:
        parser.error("--workers must be 1: metrics live in the process; scale with replicas instead")
    return args


def serving_settings(args: argparse.Namespace) -> ServingSettings:
    return ServingSettings(
        max_batch_size=args.max_batch_size,
        allow_non_finite=args.allow_non_finite,
        return_all_scores=args.return_all_scores,
        feature_mean_half_life=args.feature_mean_half_life,
        prediction_buckets=args.prediction_buckets or None,
    )
