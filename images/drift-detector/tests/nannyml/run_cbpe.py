"""NannyML's own CBPE (binary classification) on a reference and windows: the parity oracle.

Runs inside build/nannyml-venv (NannyML's pins differ from the detector's), never in the service.
Usage: run_cbpe.py SPEC.json, where the spec names the reference parquet (columns ``score`` and
``target``, 0/1), the window parquets (column ``score``), the decision threshold and the chunk size.
The predicted label is ``score >= threshold``, as the detector derives it. Prints JSON: whether NannyML
calibrates, per metric the reference chunk values and thresholds, and per window per metric NannyML's
estimate and alert.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no usage analytics from a test run

import pandas as pd
from nannyml import CBPE

METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc"]


def with_label(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    out = frame.copy()
    out["y_pred"] = (out["score"] >= threshold).astype(int)
    return out


def main(spec_path: str) -> int:
    with open(spec_path) as fh:
        spec = json.load(fh)
    threshold = spec["threshold"]
    reference = with_label(pd.read_parquet(spec["reference"]), threshold)
    estimator = CBPE(
        y_pred_proba="score",
        y_pred="y_pred",
        y_true="target",
        problem_type="classification_binary",
        metrics=METRICS,
        chunk_size=spec["chunk_size"],
    )
    estimator.fit(reference)
    ref = estimator.result.filter(period="reference").to_df()
    out = {"needs_calibration": bool(estimator.needs_calibration), "metrics": {}, "windows": []}
    for metric in estimator.metrics:
        out["metrics"][metric.column_name] = {
            "reference_chunk_values": ref[(metric.column_name, "realized")].tolist(),
            "lower_threshold": metric.lower_threshold_value,
            "upper_threshold": metric.upper_threshold_value,
        }
    for path in spec["windows"]:
        window = with_label(pd.read_parquet(path), threshold)
        estimator.chunker.chunk_size = len(window)  # one chunk per window: the window's own size
        result = estimator.estimate(window).filter(period="analysis").to_df()
        out["windows"].append(
            {
                m: {
                    "value": float(result[(m, "value")].iloc[0]),
                    "alert": bool(result[(m, "alert")].iloc[0]),
                }
                for m in METRICS
            }
        )
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
