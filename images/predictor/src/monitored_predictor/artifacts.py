"""Loading the model directory: `model.joblib` plus an optional `schema.json` (docs/contracts.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

MODEL_FILE = "model.joblib"
SCHEMA_FILE = "schema.json"
FEATURE_TYPES = ("numeric", "categorical")
OUTPUT_KINDS = ("probability", "regression")


class ModelLoadError(Exception):
    """The model directory cannot be served; the message is the one-line reason."""


@dataclass(frozen=True)
class ModelArtifacts:
    """Everything the server needs to know about the loaded model."""

    estimator: Any
    feature_names: tuple[str, ...]
    feature_types: tuple[str, ...]
    output_kind: str
    classes: tuple[Any, ...]
    positive_index: int
    # Pass a DataFrame (not an ndarray) when the estimator was fitted on named columns or needs strings.
    needs_frame: bool

    @property
    def numeric_mask(self) -> np.ndarray:
        return np.array([t == "numeric" for t in self.feature_types], dtype=bool)

    @property
    def all_numeric(self) -> bool:
        return all(t == "numeric" for t in self.feature_types)


def load_artifacts(model_dir: str | Path) -> ModelArtifacts:
    """Load and cross-check the estimator and its schema; raise ModelLoadError with a one-line reason."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    model_path = model_dir / MODEL_FILE
    if not model_path.is_file():
        raise ModelLoadError(f"{model_path} not found")
    try:
        estimator = joblib.load(model_path)
    except Exception as exc:  # joblib raises anything from pickle, EOFError to ModuleNotFoundError
        raise ModelLoadError(f"cannot load {model_path}: {type(exc).__name__}: {exc}") from exc
    if not hasattr(estimator, "predict"):
        raise ModelLoadError(f"{model_path} holds a {type(estimator).__name__}, which has no predict()")

    schema = _read_schema(model_dir / SCHEMA_FILE)
    names, types = _features(estimator, schema)
    kind = _output_kind(estimator, schema)
    classes, positive_index = _classes(estimator, schema, kind)
    needs_frame = hasattr(estimator, "feature_names_in_") or "categorical" in types
    return ModelArtifacts(estimator, names, types, kind, classes, positive_index, needs_frame)


def _read_schema(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        schema = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if not isinstance(schema, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return schema


def _features(estimator: Any, schema: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    fitted_names = getattr(estimator, "feature_names_in_", None)
    n_in = getattr(estimator, "n_features_in_", None)
    if "features" in schema:
        entries = schema["features"]
        if not isinstance(entries, list) or not entries:
            raise ModelLoadError("schema.json: 'features' must be a non-empty list")
        try:
            names = tuple(str(e["name"]) for e in entries)
            types = tuple(str(e.get("type", "numeric")) for e in entries)
        except (TypeError, KeyError) as exc:
            raise ModelLoadError("schema.json: every feature needs a 'name'") from exc
        bad = sorted({t for t in types if t not in FEATURE_TYPES})
        if bad:
            raise ModelLoadError(f"schema.json: unknown feature type(s) {bad}, expected {FEATURE_TYPES}")
        if len(set(names)) != len(names):
            raise ModelLoadError("schema.json: feature names must be unique")
        if fitted_names is not None and tuple(map(str, fitted_names)) != names:
            raise ModelLoadError("schema.json: features differ from the estimator's feature_names_in_")
        if n_in is not None and int(n_in) != len(names):
            raise ModelLoadError(f"schema.json names {len(names)} features but the estimator expects {n_in}")
        return names, types
    if fitted_names is not None:
        names = tuple(map(str, fitted_names))
    elif n_in is not None:
        names = tuple(f"f{i}" for i in range(int(n_in)))
    else:
        raise ModelLoadError("no schema.json, and the estimator has no feature_names_in_ or n_features_in_")
    return names, ("numeric",) * len(names)


def _output_kind(estimator: Any, schema: dict) -> str:
    output = schema.get("output", {})
    if not isinstance(output, dict):
        raise ModelLoadError("schema.json: 'output' must be an object")
    kind = output.get("kind") or ("probability" if hasattr(estimator, "predict_proba") else "regression")
    if kind not in OUTPUT_KINDS:
        raise ModelLoadError(f"schema.json: output.kind {kind!r} is not one of {OUTPUT_KINDS}")
    if kind == "probability" and not hasattr(estimator, "predict_proba"):
        raise ModelLoadError(
            "schema.json: output.kind 'probability' but the estimator has no predict_proba()"
        )
    return kind


def _classes(estimator: Any, schema: dict, kind: str) -> tuple[tuple[Any, ...], int]:
    if kind != "probability":
        return (), 0
    fitted = getattr(estimator, "classes_", None)
    if fitted is None:
        raise ModelLoadError("the classifier has no classes_: is it fitted?")
    classes = tuple(c.item() if hasattr(c, "item") else c for c in fitted)
    positive = schema.get("output", {}).get("positive_class", classes[-1])
    if positive not in classes:
        raise ModelLoadError(f"schema.json: positive_class {positive!r} is not one of the classes {classes}")
    return classes, classes.index(positive)
