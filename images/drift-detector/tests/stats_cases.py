"""Seeded reference/window pairs that exercise every branch of Evidently's legacy drift tests.

Each case is (id, reference, current, options); options are the DataDriftPreset keyword
arguments, which map one-to-one onto ReferenceProfile.build and ColumnSpec overrides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Case:
    id: str
    reference: pd.DataFrame
    current: pd.DataFrame
    options: dict[str, Any] = field(default_factory=dict)
    categorical: list[str] = field(default_factory=list)  # numeric columns declared categorical


def _with_nans(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    out = values.astype(float)
    out[rng.random(out.size) < share] = np.nan
    return out


def mixed_frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    """Numeric and categorical columns of every shape the default tests distinguish."""
    letters = np.array(list("abcdefgh"))
    cat_p = np.array([0.3, 0.25, 0.2, 0.1, 0.05, 0.04, 0.03, 0.03])
    cat_p = np.roll(cat_p, int(shift * 3))
    return pd.DataFrame(
        {
            "normal": rng.normal(shift, 1.0, n),
            "skewed": rng.lognormal(0.2 * shift, 0.8, n),
            "int_wide": rng.integers(0, 60, n) + round(shift * 5),
            "int_mid": rng.integers(0, 12, n),
            "int_three": rng.choice([1, 2, 3], n, p=[0.5, 0.3, 0.2] if shift == 0 else [0.3, 0.3, 0.4]),
            "int_binary": (rng.random(n) < 0.3 + 0.1 * shift).astype(np.int64),
            "with_nan": _with_nans(rng, rng.normal(shift, 2.0, n), 0.15),
            "with_nan_few": _with_nans(rng, rng.integers(0, 3, n), 0.1),
            "constant_num": np.full(n, 7.5),
            "cat_many": letters[rng.choice(8, n, p=cat_p / cat_p.sum())],
            "cat_binary": np.where(rng.random(n) < 0.4 + 0.1 * shift, "yes", "no"),
            "cat_constant": np.full(n, "same", dtype=object),
            "cat_with_none": np.where(rng.random(n) < 0.1, None, letters[rng.integers(0, 4, n)]).astype(
                object
            ),
            "flag": rng.random(n) < 0.5,
        }
    )


def _pair(seed: int, n_ref: int, n_cur: int, shift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return mixed_frame(rng, n_ref, 0.0), mixed_frame(rng, n_cur, shift)


def default_cases() -> Iterator[Case]:
    """Unconfigured preset runs: small and large references, shifted and unshifted windows."""
    sizes = [(120, 100), (500, 500), (1000, 300), (1001, 400), (3000, 1000), (6000, 2000)]
    for i, (n_ref, n_cur) in enumerate(sizes):
        for shift in (0.0, 0.4):
            ref, cur = _pair(100 + i * 10 + int(shift * 10), n_ref, n_cur, shift)
            yield Case(f"default-ref{n_ref}-cur{n_cur}-shift{shift}", ref, cur)


def boundary_cases() -> Iterator[Case]:
    """Unique-count boundaries that depend on the window, unseen and vanished categories."""
    rng = np.random.default_rng(7)
    for n_ref in (400, 2000):
        ref = pd.DataFrame(
            {
                "five": rng.integers(0, 5, n_ref),  # window adds a sixth value: ks / wasserstein
                "two": rng.integers(0, 2, n_ref),  # window adds a third value: chisquare
                "two_cat": rng.choice(["u", "v"], n_ref),
                "one_cat": np.full(n_ref, "k", dtype=object),  # window brings a second category
                "one_num": np.zeros(n_ref),
                "gone": rng.choice(["p", "q", "r"], n_ref),  # window loses a category
            }
        )
        cur = pd.DataFrame(
            {
                "five": rng.integers(0, 6, 300),
                "two": rng.integers(0, 3, 300),
                "two_cat": rng.choice(["u", "v", "w"], 300),
                "one_cat": rng.choice(["k", "m"], 300),
                "one_num": np.ones(300),
                "gone": rng.choice(["p", "q"], 300),
            }
        )
        yield Case(f"boundaries-ref{n_ref}", ref, cur)


def override_cases() -> Iterator[Case]:
    """Per-kind and per-column tests and thresholds, the histogram Jensen-Shannon, asymptotic KS."""
    ref, cur = _pair(201, 3000, 800, 0.2)
    yield Case("num-jensenshannon-histogram", ref, cur, {"num_stattest": "jensenshannon"})
    ref_int = ref.copy()
    ref_int["int_wide"] = np.random.default_rng(3).integers(0, 22, len(ref))
    yield Case("num-jensenshannon-int-bins", ref_int, cur, {"num_stattest": "jensenshannon"})
    cur_float = cur.copy()
    cur_float["int_wide"] = cur_float["int_wide"].astype(float)
    yield Case("num-jensenshannon-int-vs-float", ref_int, cur_float, {"num_stattest": "jensenshannon"})
    rng = np.random.default_rng(4)
    edges = {"unique20": 20, "unique21": 21}  # Evidently bins numeric columns above 20 unique values
    ref_edge = pd.DataFrame({k: rng.integers(0, v, 2500) * 0.37 for k, v in edges.items()})
    cur_edge = pd.DataFrame({k: rng.integers(0, v, 700) * 0.37 + 0.2 for k, v in edges.items()})
    yield Case("num-jensenshannon-unique-boundary", ref_edge, cur_edge, {"num_stattest": "jensenshannon"})
    # Integer data whose Sturges width falls below 1 gets width 1 (numpy), unless the window is float.
    ref_wide = pd.DataFrame({"ints": rng.integers(0, 21, 600_000)})
    for dtype in (np.int64, np.float64):
        cur_wide = pd.DataFrame({"ints": rng.integers(2, 21, 1000).astype(dtype)})
        yield Case(
            f"num-jensenshannon-width-floor-{np.dtype(dtype).name}",
            ref_wide,
            cur_wide,
            {"num_stattest": "jensenshannon"},
        )
    yield Case("num-ks-large", ref, cur, {"num_stattest": "ks", "cat_stattest": "chisquare"})
    ref_big, cur_big = _pair(202, 12000, 700, 0.1)  # n > 10000: scipy switches KS to asymptotic
    yield Case("num-ks-asymptotic", ref_big, cur_big, {"num_stattest": "ks"})
    ref_small, cur_small = _pair(203, 600, 600, 0.3)
    yield Case(
        "per-column-small",
        ref_small,
        cur_small,
        {
            "per_column_stattest": {
                "normal": "wasserstein",
                "cat_many": "jensenshannon",
                "cat_binary": "chisquare",
            },
            "per_column_stattest_threshold": {"normal": 0.2, "skewed": 0.2, "cat_many": 0.05},
            "num_stattest_threshold": 0.01,
        },
    )
    yield Case(
        "thresholds-drift-share",
        ref_small,
        cur_small,
        {"stattest_threshold": 0.2, "cat_stattest_threshold": 0.3, "drift_share": 0.25},
    )
    yield Case("cat-z-override", ref_small, cur_small, {"cat_stattest": "z"})
    # Evidently's column mapping lists every categorical column, the string ones too.
    strings = ["cat_many", "cat_binary", "cat_constant", "cat_with_none", "flag"]
    declared = ["int_mid", "int_three", "int_binary", "with_nan_few", "constant_num", *strings]
    yield Case("declared-categorical-small", ref_small, cur_small, categorical=declared)
    yield Case("declared-categorical-large", ref, cur, categorical=declared)


def dtype_cases() -> Iterator[Case]:
    """pandas dtypes a reference file can bring: Categorical with unused levels, string, float32."""
    rng = np.random.default_rng(13)
    for n_ref in (600, 2500):

        def frame(n: int, shift: float) -> pd.DataFrame:
            levels = ["lo", "mid", "hi", "unused"]
            picks = rng.choice(3, n, p=[0.5 - shift, 0.3, 0.2 + shift])
            return pd.DataFrame(
                {
                    "category": pd.Categorical(np.array(levels)[picks], categories=levels),
                    "binary_category": pd.Categorical(np.where(picks == 0, "lo", "hi"), categories=levels),
                    "string": pd.array(
                        np.where(rng.random(n) < 0.05, None, np.array(levels)[picks]), dtype="string"
                    ),
                    "float32": rng.normal(shift, 1, n).astype(np.float32),
                    "int8": rng.integers(-5, 5, n).astype(np.int8),
                }
            )

        for shift in (0.0, 0.2):
            yield Case(f"dtypes-ref{n_ref}-shift{shift}", frame(n_ref, 0.0), frame(400, shift))


def prediction_cases() -> Iterator[Case]:
    """Target and prediction under Evidently's default names, as the prediction profile sees them."""
    rng = np.random.default_rng(11)
    for n_ref, shift in ((800, 0.0), (800, 0.15), (4000, 0.0), (4000, 0.15)):
        n_cur = 500
        ref = pd.DataFrame(
            {
                "target": rng.integers(0, 2, n_ref),
                "prediction": rng.beta(2, 3, n_ref),
                "x": rng.normal(0, 1, n_ref),
            }
        )
        cur = pd.DataFrame(
            {
                "target": rng.integers(0, 2, n_cur),
                "prediction": np.clip(rng.beta(2, 3, n_cur) + shift, 0, 1),
                "x": rng.normal(shift, 1, n_cur),
            }
        )
        yield Case(f"prediction-proba-ref{n_ref}-shift{shift}", ref, cur)
        labels = ref.assign(prediction=(ref["prediction"] > 0.5).astype(np.int64))
        labels_cur = cur.assign(prediction=(cur["prediction"] > 0.5).astype(np.int64))
        yield Case(f"prediction-labels-ref{n_ref}-shift{shift}", labels, labels_cur)
        regression = ref.assign(target=rng.normal(10, 3, n_ref), prediction=rng.normal(10, 3, n_ref))
        regression_cur = cur.assign(
            target=rng.normal(10 + shift * 5, 3, n_cur), prediction=rng.normal(10, 3, n_cur)
        )
        yield Case(f"prediction-regression-ref{n_ref}-shift{shift}", regression, regression_cur)


def randomized_cases(count: int, seed: int = 5) -> Iterator[Case]:
    """Random sizes, shifts and missing shares over the mixed frame."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        n_ref = int(rng.choice([int(rng.integers(30, 1001)), int(rng.integers(1001, 8000))]))
        n_cur = int(rng.integers(20, 3000))
        shift = float(rng.choice([0.0, 0.05, 0.2, 1.0]))
        ref, cur = _pair(1000 + i, n_ref, n_cur, shift)
        for frame in (ref, cur):
            hole = rng.random(len(frame)) < rng.uniform(0, 0.3)
            frame.loc[hole, "skewed"] = np.nan
        if rng.random() < 0.3:
            cur.loc[cur.index[:3], "with_nan"] = np.inf  # dropped with the NaNs
        yield Case(f"random-{i}-ref{n_ref}-cur{n_cur}-shift{shift}", ref, cur)


def tiny_cases(count: int, seed: int = 9) -> Iterator[Case]:
    """References and windows of a handful of rows: ties everywhere, unique counts at their edges."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        n_ref, n_cur = int(rng.integers(5, 60)), int(rng.integers(3, 40))
        shift = float(rng.choice([0.0, 0.5]))
        yield Case(
            f"tiny-{i}-ref{n_ref}-cur{n_cur}", mixed_frame(rng, n_ref, 0.0), mixed_frame(rng, n_cur, shift)
        )


ALL_CASE_GROUPS: dict[str, Callable[[], Iterator[Case]]] = {
    "default": default_cases,
    "boundary": boundary_cases,
    "override": override_cases,
    "dtypes": dtype_cases,
    "prediction": prediction_cases,
    "random": lambda: randomized_cases(60),
    "tiny": lambda: tiny_cases(10),
}


def all_cases() -> list[Case]:
    return [case for group in ALL_CASE_GROUPS.values() for case in group()]
