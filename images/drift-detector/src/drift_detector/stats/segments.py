"""Segment drift: the dataset drift verdict inside each value of a few categorical columns.

Drift that hits one part of the population (one region, one device type) can stay under the dataset
threshold when the whole window is tested. Each configured segment column is cut into its ``top_values``
most frequent reference values plus ``_other_`` (every other value, unseen ones included), so the number
of segments, and of metric series, is bounded by the configuration, never by the traffic. Each segment
gets its own ``ReferenceProfile`` over the reference rows of that segment (the segment column itself
left out: it is constant inside a segment), built once; a window's rows of that segment are checked
against it when there are at least ``min_rows`` of them.

The rule not to break: segment values are the reference's own values (the schema stores window values
that way), compared by equality; the profiles are read-only after ``build``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .errors import DriftInputError
from .profile import ReferenceProfile
from .spec import CATEGORICAL, ColumnSpec

LOG = logging.getLogger(__name__)
OTHER = "_other_"


@dataclass(frozen=True)
class SegmentDrift:
    """One segment's result in one window; the drift fields are None when it had too few rows."""

    column: str
    value: str  # the category as text, OTHER for the rest
    rows: int
    drift_share: float | None
    n_drifted: int | None
    dataset_drift: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "value": self.value,
            "rows": self.rows,
            "checked": self.drift_share is not None,
            "drift_share": self.drift_share,
            "n_drifted": self.n_drifted,
            "dataset_drift": self.dataset_drift,
        }


@dataclass(frozen=True)
class _Segment:
    column: str
    label: str
    values: tuple  # the reference values in this segment; empty for OTHER (= not one of the top ones)
    top: tuple  # the column's top values, to find OTHER rows
    profile: ReferenceProfile


class SegmentProfiles:
    def __init__(self, segments: list[_Segment], min_rows: int) -> None:
        self._segments = segments
        self.min_rows = min_rows

    @property
    def labels(self) -> list[tuple[str, str]]:
        return [(s.column, s.label) for s in self._segments]

    @classmethod
    def build(
        cls,
        reference: pd.DataFrame,
        specs: dict[str, ColumnSpec],
        columns: list[str],
        *,
        top_values: int,
        min_rows: int,
        drift_share: float,
    ) -> SegmentProfiles:
        """Profiles of every segment; a segment column must be a categorical feature of ``specs``."""
        wrong = [c for c in columns if c not in specs or specs[c].kind != CATEGORICAL]
        if wrong:
            raise DriftInputError(f"segment columns must be categorical feature columns: {wrong}")
        if top_values < 1 or min_rows < 1:
            raise DriftInputError("segment top values and minimum rows must be positive")
        segments = []
        for column in columns:
            segments += _column_segments(reference, specs, column, top_values, drift_share)
        return cls(segments, min_rows)

    def check(self, frame: pd.DataFrame) -> list[SegmentDrift]:
        out = []
        for segment in self._segments:
            values = frame[segment.column]
            if segment.values:
                rows = frame[values.isin(segment.values)]
            else:
                rows = frame[values.notna() & ~values.isin(segment.top)]
            out.append(self._check(segment, rows))
        return out

    def _check(self, segment: _Segment, rows: pd.DataFrame) -> SegmentDrift:
        if len(rows) < self.min_rows:
            return SegmentDrift(segment.column, segment.label, len(rows), None, None, None)
        try:
            drift = segment.profile.check(rows, skip_empty_columns=True)
        except DriftInputError as exc:  # e.g. every column empty in this segment's rows
            LOG.info("segment %s=%s not checked: %s", segment.column, segment.label, exc)
            return SegmentDrift(segment.column, segment.label, len(rows), None, None, None)
        return SegmentDrift(
            segment.column, segment.label, len(rows), drift.drift_share, drift.n_drifted, drift.dataset_drift
        )


def _column_segments(
    reference: pd.DataFrame, specs: dict[str, ColumnSpec], column: str, top_values: int, drift_share: float
) -> list[_Segment]:
    counts = reference[column].value_counts()  # most frequent first
    top = tuple(counts.index[:top_values])
    others = {name: spec for name, spec in specs.items() if name != column}
    if not others:
        raise DriftInputError(f"segment column {column!r} is the only feature: nothing to test inside it")
    groups = [(str(value), (value,)) for value in top]
    if len(counts) > top_values:
        groups.append((OTHER, ()))
    segments = []
    series = reference[column]
    for label, values in groups:
        in_segment = series.isin(values) if values else series.notna() & ~series.isin(top)
        try:
            profile = ReferenceProfile.build(reference[in_segment], others, drift_share=drift_share)
        except DriftInputError as exc:  # a column with no value among this segment's reference rows
            LOG.warning("segment %s=%s left out: %s", column, label, exc)
            continue
        segments.append(_Segment(column, label, values, top, profile))
    return segments
