"""Performance estimation against NannyML itself: the same reference and windows through NannyML 0.13.1's
CBPE (in its own pinned venv, build/nannyml-venv, as the multivariate parity test) and through ours give
the same calibration decision, reference chunk values, thresholds and estimates (within 1e-9) and the
same alerts, for accuracy, precision, recall, f1 and roc_auc.

Two references: the demo's (scikit-learn's breast-cancer data scored by the demo model; NannyML
calibrates it), and an overconfident synthetic model whose scores calibration clearly improves. Each
has a window of clean traffic, one whose rows are harder (the scores crowd the decision threshold, so
the estimated accuracy falls and alerts) and a short window.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_REFERENCE
from drift_detector.stats.cbpe import METRICS, PerformanceEstimator
from test_multivariate_parity import nannyml_python  # noqa: F401  (the pinned NannyML venv fixture)

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "nannyml" / "run_cbpe.py"
TOLERANCE = 1e-9
THRESHOLD = 0.5


def run_nannyml(
    python: Path, tmp: Path, reference: pd.DataFrame, windows: list[np.ndarray], chunk: int
) -> dict:
    reference.to_parquet(tmp / "reference.parquet")
    paths = []
    for i, scores in enumerate(windows):
        paths.append(str(tmp / f"window{i}.parquet"))
        pd.DataFrame({"score": scores}).to_parquet(paths[-1])
    spec = {
        "reference": str(tmp / "reference.parquet"),
        "windows": paths,
        "chunk_size": chunk,
        "threshold": THRESHOLD,
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run([str(python), str(RUNNER), str(tmp / "spec.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def compare(nannyml: dict, ours: PerformanceEstimator, windows: list[np.ndarray]) -> list[dict[str, bool]]:
    """Assert equal numbers and alerts; return our alerts per window."""
    assert ours.calibrated == nannyml["needs_calibration"]
    for name in METRICS:
        theirs = nannyml["metrics"][name]
        np.testing.assert_allclose(
            ours.reference_chunk_values[name], theirs["reference_chunk_values"], rtol=TOLERANCE
        )
        lower, upper = ours.thresholds[name]
        assert lower == pytest.approx(theirs["lower_threshold"], rel=TOLERANCE, abs=1e-12), name
        assert upper == pytest.approx(theirs["upper_threshold"], rel=TOLERANCE, abs=1e-12), name
    alerts = []
    for scores, theirs in zip(windows, nannyml["windows"], strict=True):
        mine = ours.estimate(scores)
        for name in METRICS:
            assert mine[name].value == pytest.approx(theirs[name]["value"], rel=TOLERANCE, abs=1e-12), name
            assert mine[name].alert == theirs[name]["alert"], name
        alerts.append({name: mine[name].alert for name in METRICS})
    return alerts


def crowd(scores: np.ndarray, factor: float) -> np.ndarray:
    """Scores pulled towards the decision threshold: the same ranking, less certainty."""
    return THRESHOLD + (scores - THRESHOLD) * factor


def test_demo_reference_matches_nannyml(nannyml_python, tmp_path):  # noqa: F811
    reference = pd.read_parquet(DEMO_REFERENCE)
    holdout = pd.read_parquet(DEMO_REFERENCE.with_name("holdout.parquet"))
    model = joblib.load(DEMO_REFERENCE.parent / "model" / "model.joblib")
    features = [c for c in reference.columns if c not in ("prediction", "target")]
    holdout_scores = model.predict_proba(holdout[features].to_numpy())[:, 1]
    chunk = 100  # 426 reference rows: four chunks of 100 and one of 26
    windows = [holdout_scores[:chunk], crowd(holdout_scores[:chunk], 0.1), holdout_scores[chunk:]]
    frame = pd.DataFrame({"score": reference["prediction"], "target": reference["target"].astype(int)})

    ours = PerformanceEstimator.fit(frame["score"], frame["target"] == 1, chunk, decision_threshold=THRESHOLD)
    alerts = compare(run_nannyml(nannyml_python, tmp_path, frame, windows, chunk), ours, windows)

    assert ours.calibrated  # NannyML judges the demo model's scores worth calibrating
    assert not any(alerts[0].values())
    assert alerts[1]["accuracy"]


def overconfident(n: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """True positive rate sigmoid(x); the model says sigmoid(3x): right ranking, overconfident scores."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0 * spread, n)
    target = rng.uniform(size=n) < 1 / (1 + np.exp(-x))
    return 1 / (1 + np.exp(-3 * x)), target


def test_overconfident_model_is_calibrated_like_nannyml(nannyml_python, tmp_path):  # noqa: F811
    scores, target = overconfident(5000, seed=0)
    chunk = 500
    clean, _ = overconfident(chunk, seed=1)
    harder, _ = overconfident(chunk, seed=2, spread=0.3)  # more rows near x = 0: more mistakes
    short, _ = overconfident(137, seed=3)
    windows = [clean, harder, short]
    frame = pd.DataFrame({"score": scores, "target": target.astype(int)})

    ours = PerformanceEstimator.fit(scores, target, chunk, decision_threshold=THRESHOLD)
    alerts = compare(run_nannyml(nannyml_python, tmp_path, frame, windows, chunk), ours, windows)

    assert ours.calibrated
    # Calibration matters: raw scores would promise more accuracy than the labels give.
    raw = PerformanceEstimator(None, THRESHOLD, ours.thresholds, ours.reference_chunk_values)
    assert raw.estimate(clean)["accuracy"].value > ours.estimate(clean)["accuracy"].value + 0.05
    assert not alerts[0]["accuracy"] and alerts[1]["accuracy"]
