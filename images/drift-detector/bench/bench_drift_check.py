"""Benchmark: one drift check, our precomputed-reference engine vs Evidently's legacy DataDriftPreset.

Reference 50,000 rows x 32 columns (30 numeric, 2 categorical), window 5,000 rows, the same
data for both engines. Prints a markdown table: median milliseconds per check, the speedup,
profile build time, and whether every column's test, verdict and the dataset verdict agree.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd
from drift_detector.stats import ReferenceProfile, infer_column_specs

N_NUMERIC = 30
CATEGORIES = {"segment": list("abcde"), "region": [f"r{i:02d}" for i in range(20)]}


def parse_args() -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--reference-rows",
        type=int,
        default=int(env("BENCH_REFERENCE_ROWS", "50000")),
        help="reference rows (env BENCH_REFERENCE_ROWS, default 50000)",
    )
    parser.add_argument(
        "--window-rows",
        type=int,
        default=int(env("BENCH_WINDOW_ROWS", "5000")),
        help="window rows (env BENCH_WINDOW_ROWS, default 5000)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=int(env("BENCH_REPEATS", "40")),
        help="checks timed for our engine, spread over the rounds (env BENCH_REPEATS, default 40)",
    )
    parser.add_argument(
        "--evidently-repeats",
        type=int,
        default=int(env("BENCH_EVIDENTLY_REPEATS", "4")),
        help="Evidently reports timed, one per round (env BENCH_EVIDENTLY_REPEATS, default 4)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(env("BENCH_SEED", "42")),
        help="data seed (env BENCH_SEED, default 42)",
    )
    return parser.parse_args()


def make_frame(rng: np.random.Generator, rows: int, drifted: bool) -> pd.DataFrame:
    """30 numeric features of assorted shapes (a third shifted in the drifted window), 2 categorical."""
    columns: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        shift = 0.3 * (i % 3 == 0) if drifted else 0.0
        if i % 5 == 0:
            values = rng.lognormal(shift, 0.6, rows)
        elif i % 5 == 1:
            values = rng.integers(0, 40, rows) + (4 if shift else 0)
        elif i % 5 == 2:
            values = rng.normal(shift, 1.0, rows)
            values[rng.random(rows) < 0.02] = np.nan  # sparse missing values
        else:
            values = rng.gamma(2.0, 1.0 + shift, rows)
        columns[f"feature_{i:02d}"] = values
    for name, levels in CATEGORIES.items():
        weights = np.linspace(1.0, 2.0, len(levels))
        if drifted and name == "segment":
            weights = weights[::-1]
        columns[name] = rng.choice(levels, rows, p=weights / weights.sum())
    return pd.DataFrame(columns)


def timed(fn, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall and CPU seconds per call; CPU time is the steadier one on a shared node."""
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu, result


def main() -> int:
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    reference = make_frame(rng, args.reference_rows, drifted=False)
    window = make_frame(rng, args.window_rows, drifted=True)
    print(
        f"bench: reference {reference.shape}, window {window.shape}; importing Evidently (a few seconds)",
        file=sys.stderr,
    )

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently.legacy.metric_preset import DataDriftPreset
        from evidently.legacy.report import Report
    import_seconds = time.perf_counter() - start

    build_times, _, profile = timed(
        lambda: ReferenceProfile.build(reference, infer_column_specs(reference)), 3
    )

    def evidently_check():
        report = Report(metrics=[DataDriftPreset()])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report.run(reference_data=reference, current_data=window)
            return report.as_dict()["metrics"]

    # Rounds interleave both engines so that both see the same load on a shared machine.
    ours_wall, ours_cpu, theirs_wall, theirs_cpu = [], [], [], []
    per_round = max(1, math.ceil(args.repeats / args.evidently_repeats))
    for i in range(args.evidently_repeats):
        wall, cpu, ours = timed(lambda: profile.check(window), per_round)
        ours_wall += wall
        ours_cpu += cpu
        wall, cpu, theirs = timed(evidently_check, 1)
        theirs_wall += wall
        theirs_cpu += cpu
        print(
            f"bench: round {i + 1}/{args.evidently_repeats}: "
            f"ours {statistics.median(ours_wall) * 1e3:.1f} ms, Evidently {wall[0]:.2f} s",
            file=sys.stderr,
        )

    by_column = theirs[1]["result"]["drift_by_columns"]
    dataset = theirs[0]["result"]
    same = set(by_column) == {c.name for c in ours.columns} and ours.dataset_drift == dataset["dataset_drift"]
    worst = 0.0
    for c in ours.columns:
        e = by_column.get(c.name, {})
        same = same and e.get("drift_detected") == c.drifted and e.get("stattest_name") == c.stattest_display
        if e and e["drift_score"] != c.score:
            worst = max(worst, abs(c.score - e["drift_score"]) / max(abs(e["drift_score"]), 1e-300))

    ours_ms, theirs_ms = statistics.median(ours_wall) * 1e3, statistics.median(theirs_wall) * 1e3
    ours_cpu_ms, theirs_cpu_ms = statistics.median(ours_cpu) * 1e3, statistics.median(theirs_cpu) * 1e3
    speedup = theirs_ms / ours_ms
    tests = sorted({c.stattest for c in ours.columns})
    print(
        f"\nDrift check: reference {args.reference_rows:,} x {reference.shape[1]} "
        f"({N_NUMERIC} numeric, {len(CATEGORIES)} categorical), window {args.window_rows:,} rows; "
        f"tests used: {', '.join(tests)}\n"
    )
    print(
        "| engine | median ms / check (wall) | median ms / check (CPU) | runs "
        "| speedup (wall) | speedup (CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| Evidently legacy DataDriftPreset (baseline) | {theirs_ms:.1f} | {theirs_cpu_ms:.1f} "
        f"| {len(theirs_wall)} | 1.0x | 1.0x |"
    )
    print(
        f"| drift_detector.stats (ours) | {ours_ms:.2f} | {ours_cpu_ms:.2f} | {len(ours_wall)} "
        f"| {speedup:.0f}x | {theirs_cpu_ms / ours_cpu_ms:.0f}x |"
    )
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| our profile build, once at start (median ms) | {statistics.median(build_times) * 1e3:.0f} |")
    print(f"| our profile memory (MB) | {profile.nbytes / 2**20:.1f} |")
    print(f"| Evidently import (s) | {import_seconds:.1f} |")
    print(f"| speedup target | >= 50x: {'met' if speedup >= 50 else 'NOT met'} |")
    print(
        f"| columns drifted (ours / Evidently) | {ours.n_drifted} / {dataset['number_of_drifted_columns']} |"
    )
    print(f"| dataset drift (ours / Evidently) | {ours.dataset_drift} / {dataset['dataset_drift']} |")
    print(f"| max relative score difference | {worst:.1e} |")
    print(f"| verdicts identical | {'yes' if same and math.isfinite(worst) else 'no'} |")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
