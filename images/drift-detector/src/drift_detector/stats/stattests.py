"""The drift tests of Evidently's legacy registry, their names, defaults and verdict directions."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DriftInputError
from .spec import CATEGORICAL, NUMERIC


@dataclass(frozen=True)
class StatTest:
    name: str
    display_name: str  # Evidently's ``stattest_name`` in its reports
    kinds: tuple[str, ...]  # kinds a user may assign it to explicitly
    default_threshold: float
    # p-value tests flag drift below the threshold, distances at or above it.
    is_p_value: bool
    inclusive: bool  # p-value tests only: ks uses p <= threshold, the others p < threshold

    def drifted(self, score: float, threshold: float) -> bool:
        if self.is_p_value:
            return bool(score <= threshold) if self.inclusive else bool(score < threshold)
        return bool(score >= threshold)


KS = StatTest("ks", "K-S p_value", (NUMERIC,), 0.05, is_p_value=True, inclusive=True)
CHISQUARE = StatTest(
    "chisquare", "chi-square p_value", (CATEGORICAL,), 0.05, is_p_value=True, inclusive=False
)
Z = StatTest("z", "Z-test p_value", (CATEGORICAL,), 0.05, is_p_value=True, inclusive=False)
WASSERSTEIN = StatTest(
    "wasserstein", "Wasserstein distance (normed)", (NUMERIC,), 0.1, is_p_value=False, inclusive=True
)
JENSENSHANNON = StatTest(
    "jensenshannon", "Jensen-Shannon distance", (NUMERIC, CATEGORICAL), 0.1, is_p_value=False, inclusive=True
)

STATTESTS: dict[str, StatTest] = {t.name: t for t in (KS, CHISQUARE, Z, WASSERSTEIN, JENSENSHANNON)}

# Evidently's default choice: small references (<= this many rows) use p-value tests.
SMALL_REFERENCE_MAX_ROWS = 1000
# ... and numeric columns with at most this many unique values (reference + current) are
# tested like categories.
FEW_UNIQUE_MAX = 5
# Categorical columns with at most this many unique values use the two-proportion z-test.
BINARY_MAX_UNIQUE = 2


def resolve_stattest(name: str, kind: str, column: str) -> StatTest:
    """The registered test ``name``, if it may be assigned to a column of ``kind``."""
    test = STATTESTS.get(name)
    if test is None:
        raise DriftInputError(
            f"column {column!r}: unknown stattest {name!r}; available: {sorted(STATTESTS)}", column=column
        )
    if kind not in test.kinds:
        raise DriftInputError(
            f"column {column!r}: stattest {name!r} does not apply to {kind} columns "
            f"(it applies to: {', '.join(test.kinds)})",
            column=column,
        )
    return test


def default_stattest(kind: str, n_reference: int, n_unique: int) -> StatTest:
    """Evidently's default test for a column (``n_unique`` over reference + current)."""
    if n_reference <= SMALL_REFERENCE_MAX_ROWS:
        if kind == NUMERIC and n_unique > FEW_UNIQUE_MAX:
            return KS
        return CHISQUARE if n_unique > BINARY_MAX_UNIQUE else Z
    if kind == NUMERIC and n_unique > FEW_UNIQUE_MAX:
        return WASSERSTEIN
    return JENSENSHANNON
