"""Benchmark: what performance estimation (CBPE) adds to a window check, and its speed against NannyML's.

The 50,000 x 32 reference of bench_drift_check.py (30 numeric, 2 categorical) with a classifier's score
and target (an overconfident logistic score of feature_02, so the reference is calibrated), a drifted
window of 1,000 rows (the default window size). Baseline: the per-feature check, measured in the same run;
then the multivariate check and our CBPE estimate on the window's scores (the issue's target: both
together add at most 25% to the per-feature check's time), and NannyML
0.13.1's ``CBPE.estimate`` on the same scores when build/nannyml-venv exists (the parity tests create it).
Prints a markdown table of median milliseconds per window.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks' helpers
from bench_drift_check import make_frame
from bench_multivariate import median_ms, nannyml_times, parse_args
from drift_detector.stats import ReferenceProfile, infer_column_specs
from drift_detector.stats.cbpe import METRICS, PerformanceEstimator
from drift_detector.stats.multivariate import ReconstructionModel

# Timed inside NannyML's venv: fit once, then estimate() on the window, repeats times.
NANNYML_TIMER = """
import json, os, sys, time
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
import warnings; warnings.simplefilter("ignore")
import pandas as pd
from nannyml import CBPE
ref, win, repeats = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2]), int(sys.argv[3])
for frame in (ref, win):
    frame["y_pred"] = (frame["score"] >= 0.5).astype(int)
est = CBPE(y_pred_proba="score", y_pred="y_pred", y_true="target", problem_type="classification_binary",
           metrics=["accuracy", "precision", "recall", "f1", "roc_auc"], chunk_size=len(win))
start = time.perf_counter(); est.fit(ref); fit = time.perf_counter() - start
times = []
for _ in range(repeats):
    start = time.perf_counter(); est.estimate(win); times.append(time.perf_counter() - start)
result = est.estimate(win).filter(period="analysis").to_df()
print(json.dumps({"fit": fit, "times": times, "accuracy": float(result[("accuracy", "value")].iloc[0])}))
"""


def scored(frame: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A positive rate of sigmoid(x) and a model that says sigmoid(3x): calibration is needed."""
    x = np.nan_to_num(frame["feature_02"].to_numpy(dtype=np.float64))
    return 1 / (1 + np.exp(-3 * x)), rng.uniform(size=len(x)) < 1 / (1 + np.exp(-x))


def main() -> int:
    args = parse_args(__doc__)
    rng = np.random.default_rng(args.seed)
    reference = make_frame(rng, args.reference_rows, drifted=False)
    window = make_frame(rng, args.window_rows, drifted=True)
    ref_scores, ref_target = scored(reference, rng)
    win_scores, _ = scored(window, rng)
    specs = infer_column_specs(reference)
    print(f"bench: reference {reference.shape}, window {window.shape}", file=sys.stderr)
    profile = ReferenceProfile.build(reference, specs)
    model = ReconstructionModel.fit(reference, {n: s.kind for n, s in specs.items()}, args.window_rows)
    start = time.perf_counter()
    estimator = PerformanceEstimator.fit(ref_scores, ref_target, args.window_rows)
    fit_ms = (time.perf_counter() - start) * 1e3

    base_wall, base_cpu = median_ms(lambda: profile.check(window), args.repeats)
    mv_wall, mv_cpu = median_ms(lambda: model.check(window), args.repeats)
    cbpe_wall, cbpe_cpu = median_ms(lambda: estimator.estimate(win_scores), args.repeats)
    theirs = nannyml_times(
        pd.DataFrame({"score": ref_scores, "target": ref_target.astype(int)}),
        pd.DataFrame({"score": win_scores}),
        max(3, args.repeats // 3),
        NANNYML_TIMER,
        "NannyML's CBPE",
    )

    print(
        f"\nCBPE: reference {args.reference_rows:,} rows, window {args.window_rows:,} rows, metrics "
        f"{', '.join(METRICS)}, calibrated: {estimator.calibrated}\n"
    )
    print("| step | median ms / window (wall) | median ms / window (CPU) | vs per-feature check (CPU) |")
    print("|---|---:|---:|---:|")
    print(f"| per-feature drift check (baseline) | {base_wall:.2f} | {base_cpu:.2f} | 1.00x |")
    print(f"| + multivariate check | {mv_wall:.2f} | {mv_cpu:.2f} | +{mv_cpu / base_cpu:.1%} |")
    print(f"| + CBPE estimate (ours) | {cbpe_wall:.2f} | {cbpe_cpu:.2f} | +{cbpe_cpu / base_cpu:.1%} |")
    added = (mv_cpu + cbpe_cpu) / base_cpu
    print(f"| multivariate + CBPE together | - | {mv_cpu + cbpe_cpu:.2f} | +{added:.1%} |")
    if theirs is not None:
        nml_ms = statistics.median(theirs["times"]) * 1e3
        print(
            f"| NannyML CBPE estimate() on the same window | {nml_ms:.1f} | - "
            f"| {nml_ms / cbpe_wall:.0f}x our CBPE (wall) |"
        )
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| our fit, once at start (ms) | {fit_ms:.0f} |")
    if theirs is not None:
        print(f"| NannyML fit (ms) | {theirs['fit'] * 1e3:.0f} |")
        ours = estimator.estimate(win_scores)["accuracy"].value
        diff = abs(ours - theirs["accuracy"]) / theirs["accuracy"]
        print(f"| estimated accuracy, relative difference to NannyML | {diff:.1e} |")
    print(f"| added cost target (<= 25% of the check) | {'met' if added <= 0.25 else 'NOT met'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
