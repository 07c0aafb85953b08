"""Model quality from labelled predictions: classification or regression metrics, numpy only."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata


def infer_task(target: Any) -> str:
    """classification for few distinct labels (or non-numeric), regression otherwise."""
    import pandas as pd

    series = pd.Series(target).dropna()
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return "classification"
    return "regression" if series.nunique() >= 5 else "classification"


def classification(pairs: list[list[Any]], positive_label: Any, threshold: float) -> dict[str, float]:
    """pairs: [score or predicted label, true label]. Scores >= threshold predict the positive class."""
    positive = str(positive_label)
    y_true = np.array([str(_label(lab)) == positive for _, lab in pairs])
    scores = np.array([_score(pred, positive) for pred, _ in pairs], dtype=np.float64)
    y_pred = scores >= threshold
    tp = int(np.sum(y_pred & y_true))
    fp = int(np.sum(y_pred & ~y_true))
    fn = int(np.sum(~y_pred & y_true))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    out = {
        "accuracy": float(np.mean(y_pred == y_true)),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }
    auc = roc_auc(y_true, scores)
    if auc is not None:
        out["roc_auc"] = auc
    return out


def regression(pairs: list[list[Any]]) -> dict[str, float]:
    pred = np.array([float(p) for p, _ in pairs], dtype=np.float64)
    true = np.array([float(t) for _, t in pairs], dtype=np.float64)
    err = pred - true
    out = {"mae": float(np.mean(np.abs(err))), "rmse": float(math.sqrt(np.mean(err**2)))}
    total = float(np.sum((true - true.mean()) ** 2))
    if total > 0:
        out["r2"] = 1.0 - float(np.sum(err**2)) / total
    return out


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Mann-Whitney form with average ranks for ties; undefined when one class is absent."""
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def compute(pairs: list[list[Any]], task: str, positive_label: Any, threshold: float) -> dict[str, float]:
    if task == "regression":
        return regression(pairs)
    return classification(pairs, positive_label, threshold)


def label_key(value: Any) -> str:
    """How labels are compared: 1, 1.0 and "1" name the same class."""
    return str(_label(value))


def _label(value: Any) -> Any:
    # 1.0 and 1 name the same class; "1" too.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _score(pred: Any, positive: str) -> float:
    if isinstance(pred, int | float) and not isinstance(pred, bool):
        return float(pred)
    return 1.0 if str(_label(pred)) == positive else 0.0
