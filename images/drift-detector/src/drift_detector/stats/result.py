"""Results of one drift check."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict.

    ``stattest`` is the registry name (``ks``, ``chisquare``, ``z``, ``wasserstein``,
    ``jensenshannon``), ``stattest_display`` Evidently's report label for it. ``n_current`` counts
    the values tested after dropping missing ones.
    """

    name: str
    kind: str
    stattest: str
    stattest_display: str
    score: float
    threshold: float
    drifted: bool
    n_current: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "stattest": self.stattest,
            "stattest_display": self.stattest_display,
            "score": _json_number(self.score),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "n_current": self.n_current,
        }


@dataclass(frozen=True)
class DriftResult:
    """All columns' verdicts and the dataset verdict (``drift_share >= drift_share_threshold``).

    ``skipped`` maps columns left out of this check (``check(skip_empty_columns=True)``) to why.
    """

    columns: list[ColumnDrift]
    drift_share: float
    n_drifted: int
    dataset_drift: bool
    drift_share_threshold: float
    n_reference: int
    n_current: int
    skipped: dict[str, str] = field(default_factory=dict)
    _by_name: dict[str, ColumnDrift] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    def column(self, name: str) -> ColumnDrift:
        return self._by_name[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "drift_share": self.drift_share,
            "n_drifted": self.n_drifted,
            "dataset_drift": self.dataset_drift,
            "drift_share_threshold": self.drift_share_threshold,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "skipped": dict(self.skipped),
        }
