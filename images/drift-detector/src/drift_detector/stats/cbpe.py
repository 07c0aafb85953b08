"""Performance estimation without labels: NannyML's confidence-based performance estimation (CBPE),
binary classification, fitted once on the reference.

A calibrated score is the chance that the row belongs to the positive class, so each row's expected
contribution to the confusion matrix is known before its label is: a row predicted positive adds
``p`` to the true positives and ``1 - p`` to the false positives, one predicted negative adds ``p``
to the false negatives and ``1 - p`` to the true negatives. Per NannyML 0.13.1 (read in its source):

- calibration: isotonic regression (increasing, clipped out of bounds) of the target on the score,
  fitted on the whole reference, but only when it helps: not when the reference has one class or a
  ROC AUC above 0.999; otherwise ten stratified shuffle splits (10% test, seed 42) fit it on 90% and
  calibrate the rest, and calibration is used when the expected calibration error over the pooled
  test rows (ten equal-count bins of the sorted scores) falls;
- estimates from the expected confusion matrix: accuracy ``(TP + TN) / n``, precision, recall and
  f1 ``TP / (TP + (FP + FN) / 2)`` (0 where a denominator is 0); roc_auc from the curve of the
  cumulated calibrated scores in descending order of the raw score, counts rounded to 5 decimals,
  trapezoid area;
- thresholds: the realized metric (true labels, raw scores) on reference chunks of ``chunk_size``
  rows in file order (a last, shorter chunk kept), mean +/- 3 population stds ignoring chunks where
  the metric is undefined (one class only), clipped to [0, 1]; a window alerts when its estimate is
  below the lower or above the upper threshold.

The detector has no separate predicted-label column: the predicted label is ``score >= threshold``
(the detector's ``classification_threshold``). scikit-learn (a dependency of Evidently, so in the
image already) supplies the isotonic regression and the stratified split, so the calibration and its
decision are the same as NannyML's.

The rule not to break: the estimator is read-only after ``fit``, so ``estimate`` may run on any thread.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DriftInputError

METHOD = "cbpe"
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
DEFAULT_STD_MULTIPLIER = 3.0
_AUC_NO_CALIBRATION = 0.999  # NannyML: scores this good are not calibrated
_CALIBRATION_SPLITS = 10
_CALIBRATION_BINS = 10


@dataclass(frozen=True)
class MetricEstimate:
    """One metric's estimate for a window, its reference thresholds and the verdict."""

    value: float | None  # None: undefined on this window (no scored row)
    lower_threshold: float
    upper_threshold: float
    alert: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "lower_threshold": self.lower_threshold,
            "upper_threshold": self.upper_threshold,
            "alert": self.alert,
        }


class PerformanceEstimator:
    """The fitted calibrator (or none), the decision threshold and the per-metric alert thresholds."""

    def __init__(
        self, calibrator: Any | None, decision_threshold: float, thresholds: dict, chunk_values: dict
    ):
        self._calibrator = calibrator
        self.decision_threshold = decision_threshold
        self.thresholds = thresholds  # metric -> (lower, upper)
        self.reference_chunk_values = chunk_values  # metric -> realized values per reference chunk

    @property
    def calibrated(self) -> bool:
        return self._calibrator is not None

    @classmethod
    def fit(
        cls,
        scores: np.ndarray,
        y_true: np.ndarray,
        chunk_size: int,
        *,
        decision_threshold: float = 0.5,
        std_multiplier: float = DEFAULT_STD_MULTIPLIER,
    ) -> PerformanceEstimator:
        """``scores``: the reference's positive-class scores; ``y_true``: whether each row is positive."""
        scores = np.asarray(scores, dtype=np.float64)
        y_true = np.asarray(y_true, dtype=bool)
        _validate_fit(scores, y_true, chunk_size, std_multiplier)
        y_pred = scores >= decision_threshold
        chunks = [slice(s, s + chunk_size) for s in range(0, len(scores), chunk_size)]
        chunk_values = {
            name: np.array([_realized(name, y_true[c], y_pred[c], scores[c]) for c in chunks])
            for name in METRICS
        }
        thresholds = {name: _thresholds(values, std_multiplier) for name, values in chunk_values.items()}
        calibrator = _fit_calibrator(scores, y_true) if _needs_calibration(scores, y_true) else None
        return cls(calibrator, decision_threshold, thresholds, chunk_values)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        return scores if self._calibrator is None else self._calibrator.predict(scores)

    def estimate(self, scores: np.ndarray) -> dict[str, MetricEstimate]:
        """Estimates for a window's scores (rows without a score are left out)."""
        raw = np.asarray(scores, dtype=np.float64)
        raw = raw[~np.isnan(raw)]
        values = dict.fromkeys(METRICS) if len(raw) == 0 else _estimates(raw, self.calibrate(raw), self)
        out = {}
        for name in METRICS:
            lower, upper = self.thresholds[name]
            value = values[name]
            alert = value is not None and (value < lower or value > upper)
            out[name] = MetricEstimate(value, lower, upper, bool(alert))
        return out


def _validate_fit(scores: np.ndarray, y_true: np.ndarray, chunk_size: int, multiplier: float) -> None:
    if len(scores) != len(y_true):
        raise DriftInputError("scores and targets differ in length")
    if np.isnan(scores).any():
        raise DriftInputError("the reference has rows without a prediction score")
    if not (math.isfinite(multiplier) and multiplier > 0):
        raise DriftInputError(f"threshold std multiplier must be positive, got {multiplier!r}")
    if chunk_size < 1 or len(scores) < 2 * chunk_size:
        raise DriftInputError(
            f"thresholds need at least two reference chunks of {chunk_size} rows; "
            f"the reference has {len(scores)}"
        )


def _estimates(raw: np.ndarray, p: np.ndarray, model: PerformanceEstimator) -> dict[str, float]:
    predicted = raw >= model.decision_threshold
    tp = float(np.sum(np.where(predicted, p, 0.0)))
    fp = float(np.sum(np.where(predicted, 1.0 - p, 0.0)))
    fn = float(np.sum(np.where(predicted, 0.0, p)))
    tn = float(np.sum(np.where(predicted, 0.0, 1.0 - p)))
    return {
        "accuracy": (tp + tn) / len(raw),
        "precision": tp / (tp + fp) if tp + fp != 0 else 0.0,
        "recall": tp / (tp + fn) if tp + fn != 0 else 0.0,
        "f1": tp / (tp + 0.5 * (fp + fn)) if tp + 0.5 * (fp + fn) != 0 else 0.0,
        "roc_auc": _estimated_roc_auc(p, raw),
    }


def _estimated_roc_auc(calibrated: np.ndarray, raw: np.ndarray) -> float | None:
    order = np.argsort(raw)[::-1]  # the same (unstable) sort as NannyML: ties keep its order
    tps = np.r_[0.0, np.cumsum(calibrated[order])]
    fps = np.r_[0.0, 1 + np.arange(len(raw)) - tps[1:]]
    tps, fps = np.round(tps, 5), np.round(fps, 5)
    if tps[-1] == 0 or fps[-1] == 0:
        return None  # the calibrated scores expect one class only: no curve
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def _realized(name: str, y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> float:
    """The metric with the true labels, NaN where NannyML leaves it undefined (one class only)."""
    from drift_detector.performance import roc_auc

    one_true_class = y_true.all() or not y_true.any()
    if name == "accuracy":
        return float(np.mean(y_true == y_pred))
    if name == "roc_auc":
        return math.nan if one_true_class else roc_auc(y_true, scores)
    if one_true_class or y_pred.all() or not y_pred.any():
        return math.nan
    tp = float(np.sum(y_pred & y_true))
    fp = float(np.sum(y_pred & ~y_true))
    fn = float(np.sum(~y_pred & y_true))
    if name == "precision":
        return tp / (tp + fp)
    if name == "recall":
        return tp / (tp + fn)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _thresholds(values: np.ndarray, multiplier: float) -> tuple[float, float]:
    if np.isnan(values).all():
        return 0.0, 1.0  # never defined on a reference chunk: nothing to compare with
    mean, spread = float(np.nanmean(values)), float(np.nanstd(values)) * multiplier
    return max(mean - spread, 0.0), min(mean + spread, 1.0)


def _needs_calibration(scores: np.ndarray, y_true: np.ndarray) -> bool:
    from sklearn.model_selection import StratifiedShuffleSplit

    from drift_detector.performance import roc_auc

    if y_true.all() or not y_true.any() or roc_auc(y_true, scores) > _AUC_NO_CALIBRATION:
        return False
    splits = StratifiedShuffleSplit(n_splits=_CALIBRATION_SPLITS, test_size=0.1, random_state=42)
    truth, raw, calibrated = [], [], []
    for train, test in splits.split(scores, y_true):
        truth.append(y_true[test])
        raw.append(scores[test])
        calibrated.append(_fit_calibrator(scores[train], y_true[train]).predict(scores[test]))
    truth_all = np.concatenate(truth).astype(np.float64)
    before = _calibration_error(truth_all, np.concatenate(raw))
    after = _calibration_error(truth_all, np.concatenate(calibrated))
    return bool(before > after)


def _fit_calibrator(scores: np.ndarray, y_true: np.ndarray) -> Any:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, y_true.astype(np.float64))


def _calibration_error(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Expected calibration error over equal-count bins of the sorted scores (NannyML's binning: ten
    bins of n // 10 rows, the last one taking the remainder; fewer bins for fewer than 21 rows)."""
    n = len(scores)
    bins = _CALIBRATION_BINS if n > 2 * _CALIBRATION_BINS else n // 2
    if bins < 2:
        raise DriftInputError(f"cannot judge calibration on {n} rows")
    edges = np.arange(0, n + 1, n // bins)
    edges[-1] = n
    order = scores.argsort()
    scores, y_true = scores[order], y_true[order]
    terms = [
        (right - left) / n * abs(np.mean(scores[left:right]) - np.mean(y_true[left:right]))
        for left, right in itertools.pairwise(edges)
    ]
    return float(np.sum(terms))
