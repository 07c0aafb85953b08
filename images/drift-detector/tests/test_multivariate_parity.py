"""Multivariate drift against NannyML itself: the same reference and windows through NannyML 0.13.1's
DataReconstructionDriftCalculator (in its own pinned venv, build/nannyml-venv) and through ours give the
same reference chunk values, thresholds and window values (within 1e-9) and the same verdicts.

Two datasets: the demo reference (scikit-learn's bundled breast-cancer data, 30 correlated numeric
features) and a mixed one with a categorical column and missing values. Each has a window whose
columns keep their distributions while the relations between them are broken: the univariate tests
say no drift, the reconstruction error says drift, and NannyML agrees.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_REFERENCE, REPO
from drift_detector.stats import ReferenceProfile, infer_column_specs
from drift_detector.stats.multivariate import ReconstructionModel

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "nannyml" / "requirements.txt"
RUNNER = HERE / "nannyml" / "run_reconstruction.py"
VENV = REPO / "build" / "nannyml-venv"
TOLERANCE = 1e-9


@pytest.fixture(scope="session")
def nannyml_python() -> Path:
    """build/nannyml-venv with the pinned requirements, created on first use (needs PyPI once)."""
    python = VENV / "bin" / "python"
    stamp = VENV / "requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"creating {VENV} with NannyML's pinned requirements (one-off, minutes)", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", str(VENV)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",  # a complete freeze, see the requirements file
            "-r",
            str(REQUIREMENTS),
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(
                f"cannot install NannyML for the parity run ({' '.join(step[:3])}): {done.stderr[-500:]}"
            )
    stamp.write_text(wanted)
    return python


def run_nannyml(
    python: Path, tmp: Path, reference: pd.DataFrame, windows: list[pd.DataFrame], kinds: dict, chunk: int
) -> dict:
    reference.to_parquet(tmp / "reference.parquet")
    paths = []
    for i, window in enumerate(windows):
        paths.append(str(tmp / f"window{i}.parquet"))
        window.to_parquet(paths[-1])
    spec = {
        "reference": str(tmp / "reference.parquet"),
        "windows": paths,
        "columns": list(kinds),
        "categorical": [c for c, k in kinds.items() if k == "categorical"],
        "chunk_size": chunk,
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run([str(python), str(RUNNER), str(tmp / "spec.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def compare(nannyml: dict, ours: ReconstructionModel, windows: list[pd.DataFrame]) -> list[bool]:
    """Assert equal numbers and verdicts; return the verdicts."""
    np.testing.assert_allclose(ours.reference_chunk_values, nannyml["reference_chunk_values"], rtol=TOLERANCE)
    assert ours.upper_threshold == pytest.approx(nannyml["upper_threshold"], rel=TOLERANCE)
    if nannyml["lower_threshold"] is None:  # NannyML drops a lower bound <= 0; ours reads 0 and is off
        assert ours.lower_threshold == 0.0 and not ours.lower_active
    else:
        assert ours.lower_threshold == pytest.approx(nannyml["lower_threshold"], rel=TOLERANCE)
    verdicts = []
    for window, theirs in zip(windows, nannyml["windows"], strict=True):
        mine = ours.check(window)
        assert mine.value == pytest.approx(theirs["value"], rel=TOLERANCE)
        assert mine.drift_detected == theirs["alert"]
        verdicts.append(mine.drift_detected)
    return verdicts


def shuffle_columns(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every column permuted on its own: the same values per column, the relations between them gone."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})


def univariate_drift(reference: pd.DataFrame, window: pd.DataFrame, columns: list[str]) -> bool:
    specs = infer_column_specs(reference[columns])
    return ReferenceProfile.build(reference, specs).check(window[columns]).dataset_drift


def test_breast_cancer_reference_matches_nannyml(nannyml_python, tmp_path):
    reference = pd.read_parquet(DEMO_REFERENCE)
    holdout = pd.read_parquet(DEMO_REFERENCE.with_name("holdout.parquet"))
    features = [c for c in reference.columns if c not in ("prediction", "target")]
    kinds = dict.fromkeys(features, "numeric")
    chunk = 100  # 426 reference rows: four full chunks and one of 26, kept as NannyML keeps it
    clean = holdout[features].iloc[:chunk].reset_index(drop=True)
    broken = shuffle_columns(clean, seed=1)
    scaled = clean * 1.3
    short = holdout[features].iloc[chunk:].reset_index(drop=True)  # a window closed by age: 43 rows
    windows = [clean, broken, scaled, short]

    ours = ReconstructionModel.fit(reference, kinds, chunk)
    verdicts = compare(
        run_nannyml(nannyml_python, tmp_path, reference[features], windows, kinds, chunk), ours, windows
    )

    assert len(ours.reference_chunk_values) == 5
    assert verdicts[0] is False and verdicts[1] is True
    # The broken window keeps every column's values: univariate drift cannot see it.
    assert not univariate_drift(reference, broken, features)
    assert ours.check(broken).value > ours.upper_threshold


def mixed_frame(n: int, seed: int, missing: float = 0.03) -> pd.DataFrame:
    """Correlated numeric columns, a category that follows x1, and missing values in both kinds."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0.0, 1.0, n)
    x2 = 0.9 * x1 + rng.normal(0.0, 0.3, n)
    x3 = rng.uniform(0.0, 10.0, n)
    color = np.where(x1 > 0.5, "red", np.where(x1 < -0.5, "green", "blue")).astype(object)
    flip = rng.uniform(size=n) < 0.1
    color[flip] = rng.choice(["red", "green", "blue"], flip.sum())
    frame = pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "color": color})
    frame.loc[rng.uniform(size=n) < missing, "x2"] = np.nan
    frame.loc[rng.uniform(size=n) < missing, "color"] = np.nan
    return frame


def test_categorical_and_missing_values_match_nannyml(nannyml_python, tmp_path):
    reference = mixed_frame(3000, seed=0)
    kinds = {"x1": "numeric", "x2": "numeric", "x3": "numeric", "color": "categorical"}
    chunk = 500
    clean = mixed_frame(chunk, seed=1)
    broken = shuffle_columns(mixed_frame(chunk, seed=2), seed=3)
    unseen = mixed_frame(chunk, seed=4)
    unseen.loc[unseen.index[:100], "color"] = "purple"  # a category the reference never had: encoded 0
    no_x2 = mixed_frame(chunk, seed=5)
    no_x2["x2"] = np.nan  # a column without values: imputed with the reference mean
    windows = [clean, broken, unseen, no_x2]

    ours = ReconstructionModel.fit(reference, kinds, chunk)
    verdicts = compare(run_nannyml(nannyml_python, tmp_path, reference, windows, kinds, chunk), ours, windows)

    assert verdicts[0] is False and verdicts[1] is True
    assert not univariate_drift(reference, broken, list(kinds))
