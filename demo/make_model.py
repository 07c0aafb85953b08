"""Train the demo classifier and write the model directory plus reference and holdout data.

Usage: python demo/make_model.py --out build/demo

Writes (docs/contracts.md, "Demo data"):
  <out>/model/model.joblib      StandardScaler + LogisticRegression pipeline
  <out>/model/schema.json       30 numeric snake_case features, probability output, positive class 1
  <out>/reference.parquet       training rows: features, `prediction` (positive-class score), `target`
  <out>/holdout.parquet         held-out rows: features, `target`
Deterministic: the same seed gives byte-identical model scores on every run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SEED = 42
HOLDOUT_SHARE = 0.25


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/demo", help="output directory (default: build/demo)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"split and solver seed (default: {SEED})")
    args = parser.parse_args(argv)
    out = Path(args.out)

    data = load_breast_cancer()  # bundled with scikit-learn: no download
    names = [snake_case(n) for n in data.feature_names]
    x_train, x_hold, y_train, y_hold = train_test_split(
        data.data, data.target, test_size=HOLDOUT_SHARE, random_state=args.seed, stratify=data.target
    )
    # Fitted on a plain array: the schema names the features, and the server passes arrays straight in.
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=args.seed))
    model.fit(x_train, y_train)
    positive = int(model.classes_[-1])
    positive_index = list(model.classes_).index(positive)
    accuracy = float((model.predict(x_hold) == y_hold).mean())

    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    schema = {
        "features": [{"name": n, "type": "numeric"} for n in names],
        "output": {
            "kind": "probability",
            "classes": [int(c) for c in model.classes_],
            "positive_class": positive,
        },
    }
    (model_dir / "schema.json").write_text(json.dumps(schema, indent=2) + "\n")

    reference = pd.DataFrame(x_train, columns=names)
    reference["prediction"] = model.predict_proba(x_train)[:, positive_index]
    reference["target"] = y_train.astype(np.int64)
    reference.to_parquet(out / "reference.parquet", index=False)
    holdout = pd.DataFrame(x_hold, columns=names)
    holdout["target"] = y_hold.astype(np.int64)
    holdout.to_parquet(out / "holdout.parquet", index=False)

    print(f"make_model: {model_dir / 'model.joblib'} (scaler + logistic regression, accuracy {accuracy:.3f})")
    print(f"make_model: {model_dir / 'schema.json'} ({len(names)} numeric features, positive {positive})")
    print(f"make_model: {out / 'reference.parquet'} ({len(reference)} rows: features, prediction, target)")
    print(f"make_model: {out / 'holdout.parquet'} ({len(holdout)} rows: features, target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
