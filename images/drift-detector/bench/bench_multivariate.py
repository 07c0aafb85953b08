"""Benchmark: what multivariate drift adds to a window check, and its speed against NannyML's calculator.

The 50,000 x 32 reference of bench_drift_check.py (30 numeric, 2 categorical), a drifted window of
1,000 rows (the default window size). Baseline: today's check, the per-feature engine
(``ReferenceProfile.check``), measured in the same run. Then our reconstruction check on the same
window, and NannyML 0.13.1's ``DataReconstructionDriftCalculator.calculate`` when build/nannyml-venv
exists (the parity tests create it). Prints a markdown table of median milliseconds per window.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark's data maker
from bench_drift_check import make_frame
from drift_detector.stats import CATEGORICAL, ReferenceProfile, infer_column_specs
from drift_detector.stats.multivariate import ReconstructionModel

NANNYML_PYTHON = Path(__file__).resolve().parents[3] / "build" / "nannyml-venv" / "bin" / "python"
# Timed inside NannyML's venv: fit once, then calculate() on the window, repeats times.
NANNYML_TIMER = """
import json, os, sys, time
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
import warnings; warnings.simplefilter("ignore")
import pandas as pd
from nannyml import DataReconstructionDriftCalculator
ref, win, repeats = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2]), int(sys.argv[3])
calc = DataReconstructionDriftCalculator(column_names=list(ref.columns), chunk_size=len(win))
start = time.perf_counter(); calc.fit(ref); fit = time.perf_counter() - start
times = []
for _ in range(repeats):
    start = time.perf_counter(); calc.calculate(win); times.append(time.perf_counter() - start)
result = calc.calculate(win).filter(period="analysis").to_df()
value = float(result[("reconstruction_error", "value")].iloc[0])
print(json.dumps({"fit": fit, "times": times, "value": value}))
"""


def parse_args(description: str | None = __doc__) -> argparse.Namespace:
    """The flags every drift-engine bench of this image shares (its own docstring as the help)."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference-rows", type=int, default=int(env("BENCH_REFERENCE_ROWS", "50000")))
    parser.add_argument("--window-rows", type=int, default=int(env("BENCH_WINDOW_ROWS", "1000")))
    parser.add_argument("--repeats", type=int, default=int(env("BENCH_REPEATS", "30")))
    parser.add_argument("--seed", type=int, default=int(env("BENCH_SEED", "42")))
    return parser.parse_args()


def median_ms(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds per call (CPU is the steadier one on a shared node)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def nannyml_times(
    reference, window, repeats: int, timer: str = NANNYML_TIMER, what: str = "NannyML"
) -> dict | None:
    """`timer` (a script taking reference, window and repeats) run by build/nannyml-venv's Python: its
    JSON last line, or None (said on stderr) when that venv is missing or the run fails."""
    if not NANNYML_PYTHON.exists():
        print(
            "bench: no build/nannyml-venv (run the parity tests once): NannyML row skipped", file=sys.stderr
        )
        return None
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, win_path = Path(tmp) / "reference.parquet", Path(tmp) / "window.parquet"
        reference.to_parquet(ref_path)
        window.to_parquet(win_path)
        print(f"bench: timing {what} in its own venv (its import takes a while)", file=sys.stderr)
        done = subprocess.run(
            [str(NANNYML_PYTHON), "-c", timer, str(ref_path), str(win_path), str(repeats)],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        print(f"bench: NannyML run failed: {done.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    reference = make_frame(rng, args.reference_rows, drifted=False)
    window = make_frame(rng, args.window_rows, drifted=True)
    specs = infer_column_specs(reference)
    print(f"bench: reference {reference.shape}, window {window.shape}", file=sys.stderr)
    profile = ReferenceProfile.build(reference, specs)
    kinds = {name: spec.kind for name, spec in specs.items()}
    start = time.perf_counter()
    model = ReconstructionModel.fit(reference, kinds, args.window_rows)
    fit_ms = (time.perf_counter() - start) * 1e3
    base_wall, base_cpu = median_ms(lambda: profile.check(window), args.repeats)
    mv_wall, mv_cpu = median_ms(lambda: model.check(window), args.repeats)
    theirs = nannyml_times(reference, window, max(3, args.repeats // 3))

    n_cat = sum(k == CATEGORICAL for k in kinds.values())
    print(
        f"\nMultivariate drift: reference {args.reference_rows:,} x {len(kinds)} "
        f"({len(kinds) - n_cat} numeric, {n_cat} categorical), window {args.window_rows:,} rows, "
        f"{model.n_components} components\n"
    )
    print("| step | median ms / window (wall) | median ms / window (CPU) | vs per-feature check (CPU) |")
    print("|---|---:|---:|---:|")
    print(f"| per-feature drift check, today (baseline) | {base_wall:.2f} | {base_cpu:.2f} | 1.00x |")
    print(f"| + multivariate check (ours) | {mv_wall:.2f} | {mv_cpu:.2f} | +{mv_cpu / base_cpu:.0%} |")
    if theirs is not None:
        nml_ms = statistics.median(theirs["times"]) * 1e3
        ratio = nml_ms / mv_wall
        print(f"| NannyML calculate() on the same window | {nml_ms:.1f} | - | {ratio:.0f}x ours (wall) |")
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| our fit, once at start (ms) | {fit_ms:.0f} |")
    if theirs is not None:
        print(f"| NannyML fit (ms) | {theirs['fit'] * 1e3:.0f} |")
        diff = abs(model.check(window).value - theirs["value"]) / theirs["value"]
        print(f"| window value, relative difference to NannyML | {diff:.1e} |")
    verdict = "met" if mv_cpu <= 0.25 * base_cpu else "NOT met"
    print(f"| added cost target (<= 25% of the check) | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
