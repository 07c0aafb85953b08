"""NannyML's own DataReconstructionDriftCalculator on a reference and windows: the parity oracle.

Runs inside build/nannyml-venv (NannyML's pins differ from the detector's), never in the service.
Usage: run_reconstruction.py SPEC.json, where the spec names the reference parquet, the window
parquets, the feature columns, the categorical ones and the chunk size. Prints JSON: the reference
chunk values, the thresholds, and per window NannyML's value and alert.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no usage analytics from a test run

import numpy as np
import pandas as pd
from nannyml import DataReconstructionDriftCalculator


def as_nannyml_kinds(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """NannyML reads the kind from the dtype: object columns are categorical. Its imputer looks for NaN
    only; parquet reads a missing text as None, which NannyML would count as a category of its own."""
    out = frame.copy()
    for name in categorical:
        column = out[name].astype(object)
        out[name] = column.where(column.notna(), np.nan)
    return out


def main(spec_path: str) -> int:
    with open(spec_path) as fh:
        spec = json.load(fh)
    columns, categorical = spec["columns"], spec["categorical"]
    reference = as_nannyml_kinds(pd.read_parquet(spec["reference"]), categorical)
    calc = DataReconstructionDriftCalculator(column_names=columns, chunk_size=spec["chunk_size"])
    calc.fit(reference[columns])
    ref = calc.result.filter(period="reference").to_df()
    out = {
        "reference_chunk_values": ref[("reconstruction_error", "value")].tolist(),
        "lower_threshold": calc.lower_threshold_value,
        "upper_threshold": calc.upper_threshold_value,
        "windows": [],
    }
    for path in spec["windows"]:
        window = as_nannyml_kinds(pd.read_parquet(path), categorical)
        # One chunk per window: the window's own size.
        calc.chunker.chunk_size = len(window)
        result = calc.calculate(window[columns]).filter(period="analysis").to_df()
        out["windows"].append(
            {
                "value": float(result[("reconstruction_error", "value")].iloc[0]),
                "alert": bool(result[("reconstruction_error", "alert")].iloc[0]),
            }
        )
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
