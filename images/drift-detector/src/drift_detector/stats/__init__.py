"""Drift statistics: Evidently's legacy DataDriftPreset verdicts, with the reference precomputed.

Usage::

    from drift_detector.stats import ColumnSpec, ReferenceProfile, infer_column_specs

    specs = infer_column_specs(reference_df, overrides={"segment": ColumnSpec(kind="categorical")},
                               exclude=["target", "prediction"])
    profile = ReferenceProfile.build(reference_df, specs)   # once, at start
    result = profile.check(window_df)                        # per window
    result.dataset_drift, result.drift_share, result.column("age").score, result.to_dict()

Prediction drift is a second, one-column profile::

    pred_spec = infer_column_specs(reference_df)["prediction"]
    prediction_profile = ReferenceProfile.build(reference_df, {"prediction": pred_spec})

What matches Evidently 0.7 (``evidently.legacy``), per column: the default test (reference
<= 1000 rows: ``ks`` for numeric columns with > 5 unique values over reference + window, else
``chisquare`` (> 2 unique) or ``z``; larger references: normed ``wasserstein`` for numeric columns
with > 5 unique values, else ``jensenshannon``), the score, the threshold (0.05 for p-values,
0.1 for distances) and the verdict (``ks``: p <= t; ``chisquare``/``z``: p < t; distances:
score >= t). Dataset drift: share of drifted columns >= ``drift_share`` (0.5).

Overrides: ``ColumnSpec(kind, stattest, threshold)`` per column, ``num_stattest``,
``cat_stattest``, ``num_threshold``, ``cat_threshold`` per kind and ``drift_share`` for the
dataset in ``ReferenceProfile.build``.

Missing values: a column that holds a NaN loses its NaN and +-inf values, for that column only
(Evidently's rule); the rest of the row still counts for the other columns. A column with no
value left, a column missing from the window, an empty window, or non-numeric values in a
numeric column raise ``DriftInputError`` (a ``ValueError``) whose message names the problem.
``check(window, skip_empty_columns=True)`` instead leaves columns without values out of that
check (``DriftResult.skipped``) and computes the share over the others.

Beyond one column at a time: ``stats.multivariate.ReconstructionModel`` (NannyML's PCA data
reconstruction drift over all features) and ``stats.segments.SegmentProfiles`` (these verdicts inside
each value of a few categorical columns), both built once from the reference.

Kinds are fixed when the profile is built (Evidently re-reads dtypes on every run). A profile is
read-only after ``build``: ``check`` may run from any thread. It holds the sorted reference values
of each numeric column (8 bytes a row; ``nbytes`` tells the total), never the reference frame.
"""

from .errors import DriftInputError
from .profile import DEFAULT_DRIFT_SHARE, ReferenceProfile
from .result import ColumnDrift, DriftResult
from .spec import CATEGORICAL, NUMERIC, ColumnSpec, infer_column_specs
from .stattests import STATTESTS

__all__ = [
    "CATEGORICAL",
    "DEFAULT_DRIFT_SHARE",
    "NUMERIC",
    "STATTESTS",
    "ColumnDrift",
    "ColumnSpec",
    "DriftInputError",
    "DriftResult",
    "ReferenceProfile",
    "infer_column_specs",
]
