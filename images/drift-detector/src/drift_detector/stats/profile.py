"""A reference profile: all reference statistics computed once, then checked against windows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .columns import CategoricalReference, NumericReference, drop_missing
from .errors import DriftInputError
from .result import ColumnDrift, DriftResult
from .spec import CATEGORICAL, NUMERIC, ColumnSpec
from .stattests import KS, SMALL_REFERENCE_MAX_ROWS, StatTest, default_stattest, resolve_stattest

DEFAULT_DRIFT_SHARE = 0.5


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str
    stattest: StatTest | None  # None: Evidently's default choice, made per check
    threshold: float | None  # None: the chosen test's default
    reference: NumericReference | CategoricalReference


class ReferenceProfile:
    """Reference statistics for a set of columns; ``check`` tests a window against them."""

    def __init__(self, columns: list[_Column], n_reference: int, drift_share: float) -> None:
        self._columns = columns
        self.n_reference = n_reference
        self.drift_share = drift_share

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self._columns]

    @property
    def kinds(self) -> dict[str, str]:
        return {c.name: c.kind for c in self._columns}

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the reference statistics."""
        return sum(c.reference.nbytes for c in self._columns)

    @classmethod
    def build(
        cls,
        reference: pd.DataFrame,
        specs: Mapping[str, ColumnSpec],
        *,
        drift_share: float = DEFAULT_DRIFT_SHARE,
        num_stattest: str | None = None,
        cat_stattest: str | None = None,
        num_threshold: float | None = None,
        cat_threshold: float | None = None,
    ) -> ReferenceProfile:
        """Precompute every column's reference statistics.

        Precedence as in Evidently: the column's spec, then the per-kind default
        (``num_*``/``cat_*``), then Evidently's default test and that test's own threshold.
        """
        if not isinstance(reference, pd.DataFrame):
            raise DriftInputError(f"reference must be a pandas DataFrame, got {type(reference).__name__}")
        if not specs:
            raise DriftInputError("no columns to check: the column specs are empty")
        if not 0 <= drift_share <= 1:
            raise DriftInputError(f"drift_share must be within [0, 1], got {drift_share!r}")
        missing = [name for name in specs if name not in reference.columns]
        if missing:
            raise DriftInputError(f"columns missing from the reference: {missing}")
        _require_unique_columns(reference, "reference")
        kind_stattest = {NUMERIC: num_stattest, CATEGORICAL: cat_stattest}
        kind_threshold = {NUMERIC: num_threshold, CATEGORICAL: cat_threshold}
        columns = []
        for name, spec in specs.items():
            stattest_name = spec.stattest or kind_stattest[spec.kind]
            stattest = resolve_stattest(stattest_name, spec.kind, name) if stattest_name else None
            threshold = spec.threshold if spec.threshold is not None else kind_threshold[spec.kind]
            statistics = _reference_statistics(name, spec.kind, reference[name], stattest)
            columns.append(_Column(name, spec.kind, stattest, threshold, statistics))
        return cls(columns, len(reference), drift_share)

    def check(self, current: pd.DataFrame, *, skip_empty_columns: bool = False) -> DriftResult:
        """Test a window. Missing values are dropped per column, never whole rows.

        A column left with no value fails the check, as in Evidently, unless
        ``skip_empty_columns``: then it is listed in ``DriftResult.skipped`` and left out of the
        dataset share.
        """
        if not isinstance(current, pd.DataFrame):
            raise DriftInputError(f"current data must be a pandas DataFrame, got {type(current).__name__}")
        if len(current) == 0:
            raise DriftInputError("the current window is empty")
        missing = [c.name for c in self._columns if c.name not in current.columns]
        if missing:
            raise DriftInputError(f"columns missing from the current data: {missing}")
        _require_unique_columns(current, "current data")
        results, skipped = [], {}
        for column in self._columns:
            result = self._check_column(column, current[column.name], raise_if_empty=not skip_empty_columns)
            if result is None:
                skipped[column.name] = "no values in the current window"
            else:
                results.append(result)
        if not results:
            raise DriftInputError(f"no column has values in the current window: {list(skipped)}")
        n_drifted = sum(r.drifted for r in results)
        share = n_drifted / len(results)
        return DriftResult(
            columns=results,
            drift_share=share,
            n_drifted=n_drifted,
            dataset_drift=bool(share >= self.drift_share),
            drift_share_threshold=self.drift_share,
            n_reference=self.n_reference,
            n_current=len(current),
            skipped=skipped,
        )

    def _check_column(self, column: _Column, values: pd.Series, raise_if_empty: bool) -> ColumnDrift | None:
        ref = column.reference
        current = ref.current_values(values)
        n_current = int(current.size) if isinstance(current, np.ndarray) else sum(current.values())
        if n_current == 0:
            if not raise_if_empty:
                return None
            raise DriftInputError(
                f"column {column.name!r} has no values in the current window (all missing)",
                column=column.name,
            )
        test = column.stattest or default_stattest(column.kind, ref.n, ref.n_unique_with(current))
        if isinstance(ref, NumericReference):
            score = ref.score(test, current, pd.api.types.is_integer_dtype(values))
        else:
            score = ref.score(test, current)
        threshold = test.default_threshold if column.threshold is None else column.threshold
        return ColumnDrift(
            name=column.name,
            kind=column.kind,
            stattest=test.name,
            stattest_display=test.display_name,
            score=score,
            threshold=threshold,
            drifted=test.drifted(score, threshold),
            n_current=n_current,
        )


def _reference_statistics(
    name: str, kind: str, column: pd.Series, stattest: StatTest | None
) -> NumericReference | CategoricalReference:
    clean = drop_missing(column)
    if clean.empty:
        raise DriftInputError(
            f"column {name!r} has no values in the reference (empty or all missing)", column=name
        )
    if kind == CATEGORICAL:
        return CategoricalReference(name, clean)
    if not pd.api.types.is_numeric_dtype(clean):
        raise DriftInputError(
            f"column {name!r} in the reference should contain numerical values only", column=name
        )
    may_use_ks = stattest is KS or (stattest is None and len(clean) <= SMALL_REFERENCE_MAX_ROWS)
    return NumericReference(name, clean, may_use_ks)


def _require_unique_columns(frame: pd.DataFrame, where: str) -> None:
    if not frame.columns.is_unique:
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise DriftInputError(f"duplicate column names in the {where}: {duplicated}")
