"""Per-column reference statistics, computed once, and the drift tests run against them.

Every formula follows what Evidently's legacy stattests compute through scipy/numpy, with the
reference half precomputed: sorted values (KS, Wasserstein, histograms), value counts
(chi-square, z, Jensen-Shannon), the reference std (normed Wasserstein), unique counts.
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from scipy.spatial import distance
from scipy.stats import chisquare, distributions
from scipy.stats._stats_py import _attempt_exact_2kssamp  # scipy's exact KS p-value (pinned scipy)

from .errors import DriftInputError
from .stattests import CHISQUARE, FEW_UNIQUE_MAX, JENSENSHANNON, KS, WASSERSTEIN, StatTest, Z

# scipy ks_2samp(method="auto") is exact up to this sample size, asymptotic above.
_KS_MAX_EXACT_N = 10000
# Evidently's Jensen-Shannon bins numeric columns with more unique reference values than this.
_JS_HISTOGRAM_MIN_UNIQUE = 20
# Evidently floors the reference std used to norm the Wasserstein distance.
_WASSERSTEIN_MIN_NORM = 0.001


def drop_missing(series: pd.Series) -> pd.Series:
    """Evidently drops NaN (and then also +-inf) only from a column that has a NaN."""
    if series.isna().any():
        return series.replace([-np.inf, np.inf], np.nan).dropna()
    return series


class NumericReference:
    """Reference statistics of one numeric column."""

    def __init__(self, name: str, column: pd.Series, may_use_ks: bool) -> None:
        self.name = name
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        self.is_integer = pd.api.types.is_integer_dtype(column)
        self.sorted = np.sort(values)
        self.n = int(self.sorted.size)
        # ECDF of the reference at its own points, kept only where KS can be chosen.
        self.right_counts = np.searchsorted(self.sorted, self.sorted, side="right") if may_use_ks else None
        unique, counts = np.unique(self.sorted, return_counts=True)
        self.n_unique = int(unique.size)
        # Value counts serve the few-unique tests only (chi-square, z, binless Jensen-Shannon).
        few = self.n_unique <= _JS_HISTOGRAM_MIN_UNIQUE
        self.unique, self.unique_counts = (unique, counts) if few else (None, None)
        # np.std of the pandas Series, as Evidently calls it (pandas' own ddof=0 std).
        self.std_norm = max(float(np.std(column)), _WASSERSTEIN_MIN_NORM)
        self.min = self.sorted[0]
        self.max = self.sorted[-1]

    @property
    def nbytes(self) -> int:
        arrays = (self.sorted, self.right_counts, self.unique, self.unique_counts)
        return sum(a.nbytes for a in arrays if a is not None)

    def current_values(self, column: pd.Series) -> np.ndarray:
        if not pd.api.types.is_numeric_dtype(column):
            raise DriftInputError(
                f"column {self.name!r} in the current data should contain numerical values only",
                column=self.name,
            )
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(values).any():
            values = values[np.isfinite(values)]
        return np.sort(values)

    def n_unique_with(self, current: np.ndarray) -> int:
        if self.n_unique > FEW_UNIQUE_MAX:  # already above every unique-count rule
            return self.n_unique
        return int(np.union1d(self.unique, current).size)

    def score(self, test: StatTest, current: np.ndarray, current_is_integer: bool) -> float:
        if test is KS:
            return self._ks(current)
        if test is WASSERSTEIN:
            return self._wasserstein(current)
        if test is JENSENSHANNON:
            if self.n_unique > _JS_HISTOGRAM_MIN_UNIQUE:
                return self._js_histogram(current, current_is_integer)
            return _js(*self._aligned_percents(current))
        if test is CHISQUARE:
            ref_counts, cur_counts = self._aligned_counts(current)
            return _chisquare(ref_counts, cur_counts, self.n, current.size)
        if test is Z:
            return self._z(current)
        raise AssertionError(f"unhandled stattest {test.name}")

    def _ks(self, current: np.ndarray) -> float:
        # ks_2samp(reference, current): ECDF differences at every point of both samples.
        n1, n2 = self.n, int(current.size)
        if self.right_counts is None:
            raise AssertionError(f"column {self.name!r}: KS statistics were not precomputed")
        diff_at_ref = self.right_counts / n1 - np.searchsorted(current, self.sorted, side="right") / n2
        diff_at_cur = (
            np.searchsorted(self.sorted, current, side="right") / n1
            - np.searchsorted(current, current, side="right") / n2
        )
        max_s = max(diff_at_ref.max(), diff_at_cur.max())
        min_s = np.clip(-min(diff_at_ref.min(), diff_at_cur.min()), 0, 1)
        d = min_s if min_s > max_s else max_s
        return _ks_p_value(n1, n2, d)

    def _wasserstein(self, current: np.ndarray) -> float:
        # Merge the presorted reference with the sorted window; at the last point of any run of
        # equal values the running counts are the ECDFs, and earlier points span zero width.
        n_ref, n_cur = self.n, int(current.size)
        total = n_ref + n_cur
        cur_pos = np.searchsorted(self.sorted, current, side="left") + np.arange(n_cur)
        from_current = np.zeros(total, dtype=bool)
        from_current[cur_pos] = True
        merged = np.empty(total, dtype=np.float64)
        merged[cur_pos] = current
        merged[~from_current] = self.sorted
        cur_counts = np.cumsum(from_current[:-1])
        ref_counts = np.arange(1, total) - cur_counts
        cdf_gap = np.abs(ref_counts / n_ref - cur_counts / n_cur)
        # A plain pairwise sum: BLAS dot products spin threads and stall on a busy node.
        return float(np.sum(cdf_gap * np.diff(merged))) / self.std_norm

    def _js_histogram(self, current: np.ndarray, current_is_integer: bool) -> float:
        # np.histogram_bin_edges(reference + current, bins="sturges"), then counts per bin.
        first = min(self.min, current[0])
        last = max(self.max, current[-1])
        if not (np.isfinite(first) and np.isfinite(last)):
            raise DriftInputError(
                f"column {self.name!r}: autodetected range of [{first}, {last}] is not finite",
                column=self.name,
            )
        total = self.n + int(current.size)
        width = (last - first) / (np.log2(total) + 1.0)
        if self.is_integer and current_is_integer and width < 1:
            width = 1
        edges = np.linspace(first, last, int(np.ceil((last - first) / width)) + 1, endpoint=True)
        ref_percents = np.diff(_histogram_cumulative(self.sorted, edges)) / self.n
        cur_percents = np.diff(_histogram_cumulative(current, edges)) / current.size
        return _js(ref_percents, cur_percents)

    def _aligned_counts(self, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cur_unique, cur_counts = np.unique(current, return_counts=True)
        keys = np.union1d(self.unique, cur_unique)
        return _spread(keys, self.unique, self.unique_counts), _spread(keys, cur_unique, cur_counts)

    def _aligned_percents(self, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ref_counts, cur_counts = self._aligned_counts(current)
        return ref_counts / self.n, cur_counts / current.size

    def _z(self, current: np.ndarray) -> float:
        cur_unique = np.unique(current)
        if self.n_unique == 1 and cur_unique.size == 1 and self.unique[0] == cur_unique[0]:
            return 1.0
        first_key = min(self.unique[0], cur_unique[0])
        ref_others = self.n - int(self.unique_counts[0]) if self.unique[0] == first_key else self.n
        cur_others = int(current.size - np.count_nonzero(current == first_key))
        return _z_p_value(ref_others, self.n, cur_others, int(current.size))


class CategoricalReference:
    """Reference statistics of one categorical column."""

    def __init__(self, name: str, column: pd.Series) -> None:
        self.name = name
        self.n = len(column)
        self.counts = _observed_counts(name, column, "reference")
        self.n_unique = len(self.counts)

    @property
    def nbytes(self) -> int:
        return sys.getsizeof(self.counts) + sum(sys.getsizeof(k) + 28 for k in self.counts)

    def current_values(self, column: pd.Series) -> dict[Any, int]:
        return _observed_counts(self.name, drop_missing(column), "current data")

    def n_unique_with(self, current: dict[Any, int]) -> int:
        if self.n_unique > FEW_UNIQUE_MAX:
            return self.n_unique
        return len(self.counts.keys() | current.keys())

    def score(self, test: StatTest, current: dict[Any, int]) -> float:
        n_cur = sum(current.values())
        if test is Z:
            return self._z(current, n_cur)
        keys = list(self.counts.keys() | current.keys())
        ref_counts = np.array([self.counts.get(k, 0) for k in keys], dtype=np.int64)
        cur_counts = np.array([current.get(k, 0) for k in keys], dtype=np.int64)
        if test is CHISQUARE:
            return _chisquare(ref_counts, cur_counts, self.n, n_cur)
        if test is JENSENSHANNON:
            return _js(ref_counts / self.n, cur_counts / n_cur)
        raise AssertionError(f"unhandled stattest {test.name}")

    def _z(self, current: dict[Any, int], n_cur: int) -> float:
        if self.n_unique == 1 and len(current) == 1 and next(iter(self.counts)) == next(iter(current)):
            return 1.0
        try:
            first_key = sorted(self.counts.keys() | current.keys())[0]
        except TypeError as err:
            raise DriftInputError(
                f"column {self.name!r}: z-test needs comparable categories ({err})", column=self.name
            ) from err
        ref_others = self.n - self.counts.get(first_key, 0)
        cur_others = n_cur - current.get(first_key, 0)
        return _z_p_value(ref_others, self.n, cur_others, n_cur)


def _observed_counts(name: str, column: pd.Series, where: str) -> dict[Any, int]:
    try:
        # A pandas Categorical also lists its unused categories, with count 0: Evidently's keys don't.
        return {k: int(v) for k, v in column.value_counts().items() if v > 0}
    except TypeError as err:  # unhashable values such as lists
        raise DriftInputError(
            f"column {name!r} in the {where} holds values that are not categories: {err}", column=name
        ) from err


def _histogram_cumulative(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # np.histogram with explicit edges: half-open bins, the last one closed.
    return np.concatenate(
        (
            np.searchsorted(sorted_values, edges[:-1], side="left"),
            np.searchsorted(sorted_values, edges[-1:], side="right"),
        )
    )


def _spread(keys: np.ndarray, unique: np.ndarray, counts: np.ndarray) -> np.ndarray:
    out = np.zeros(keys.size, dtype=np.int64)
    out[np.searchsorted(keys, unique)] = counts
    return out


def _js(ref_percents: np.ndarray, cur_percents: np.ndarray) -> float:
    return float(distance.jensenshannon(ref_percents, cur_percents, None))


def _chisquare(ref_counts: np.ndarray, cur_counts: np.ndarray, n_ref: int, n_cur: int) -> float:
    expected = ref_counts * (n_cur / n_ref)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a category unseen in the reference
        return float(chisquare(cur_counts, expected)[1])


def _z_p_value(ref_others: int, n_ref: int, cur_others: int, n_cur: int) -> float:
    # Two-proportion z-test on "not the smallest category", two-sided, as Evidently computes it.
    p1 = float(ref_others) / n_ref
    p2 = float(cur_others) / n_cur
    pooled = float(p1 * n_ref + p2 * n_cur) / (n_ref + n_cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    return float(2 * (1 - special.ndtr(np.abs(z))))


def _ks_p_value(n1: int, n2: int, d: float) -> float:
    # scipy.stats.ks_2samp(method="auto", alternative="two-sided") from the statistic.
    exact = max(n1, n2) <= _KS_MAX_EXACT_N
    prob = np.nan
    if exact:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # Like scipy, fall back to the asymptotic p-value with d rounded to the lattice.
            exact, d, prob = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")
    if not exact:
        m, n = sorted([float(n1), float(n2)], reverse=True)
        prob = distributions.kstwo.sf(d, np.round(m * n / (m + n)))
    return float(np.clip(prob, 0, 1))
