"""Column specifications and Evidently-compatible column type inference."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)

# Evidently legacy: a target with at least this many unique numeric values means regression.
_REGRESSION_MIN_UNIQUE = 5
# Evidently legacy: a numeric prediction with more unique values than this is treated as numeric.
_NUMERIC_PREDICTION_MIN_UNIQUE = 5


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is tested: its kind and, optionally, a fixed stattest and threshold.

    ``stattest=None`` picks Evidently's default test per check; ``threshold=None`` uses the
    profile's per-kind default, else the test's own default.
    """

    kind: str
    stattest: str | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column kind must be one of {KINDS}, got {self.kind!r}")
        if self.threshold is not None and not np.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number, got {self.threshold!r}")


def infer_column_specs(
    reference: pd.DataFrame,
    overrides: Mapping[str, ColumnSpec] | None = None,
    exclude: Iterable[str] = (),
    *,
    target_column: str | None = "target",
    prediction_column: str | None = "prediction",
) -> dict[str, ColumnSpec]:
    """Infer numeric vs categorical per column the way Evidently's legacy DataDriftPreset does.

    Features (no column mapping): numeric dtypes (bool excluded) are numeric, datetime columns are
    skipped, everything else is categorical. ``target_column`` and ``prediction_column`` (Evidently's
    default names) follow Evidently's utility-column rules; the task is guessed from the target.
    Evidently looks at reference+current for the prediction's unique count; kinds here are fixed
    from the reference alone, so a profile never changes kind between windows.
    """
    overrides = dict(overrides or {})
    excluded = set(exclude)
    unknown = sorted(set(overrides) - set(reference.columns))
    if unknown:
        raise ValueError(f"overrides name columns missing from the reference: {unknown}")

    numeric = set(reference.select_dtypes([np.number]).columns)
    datetime = set(reference.select_dtypes(["datetime"]).columns)
    task = _guess_task(reference, target_column)

    specs: dict[str, ColumnSpec] = {}
    for name in reference.columns:
        if name in excluded:
            continue
        if name in overrides:
            specs[name] = overrides[name]
        elif name == target_column:
            specs[name] = ColumnSpec(kind=NUMERIC if task == "regression" else CATEGORICAL)
        elif name == prediction_column:
            specs[name] = ColumnSpec(kind=_prediction_kind(reference[name], task))
        elif name in numeric:
            specs[name] = ColumnSpec(kind=NUMERIC)
        elif name not in datetime:
            specs[name] = ColumnSpec(kind=CATEGORICAL)
    return specs


def _guess_task(reference: pd.DataFrame, target_column: str | None) -> str | None:
    if target_column is None or target_column not in reference.columns:
        return None
    target = reference[target_column]
    if pd.api.types.is_numeric_dtype(target) and target.nunique() >= _REGRESSION_MIN_UNIQUE:
        return "regression"
    return "classification"


def _prediction_kind(column: pd.Series, task: str | None) -> str:
    numeric = pd.api.types.is_numeric_dtype(column)
    if task == "regression" or (
        numeric and task != "classification" and column.nunique() > _NUMERIC_PREDICTION_MIN_UNIQUE
    ):
        return NUMERIC
    # A float column in [0, 1] is read as a probability score.
    if numeric and not pd.api.types.is_integer_dtype(column) and column.max() <= 1 and column.min() >= 0:
        return NUMERIC
    return CATEGORICAL
