"""Unit tests of the drift statistics engine: kinds, test choice, edges and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from drift_detector.stats import (
    ColumnSpec,
    DriftInputError,
    ReferenceProfile,
    infer_column_specs,
)
from drift_detector.stats.stattests import CHISQUARE, JENSENSHANNON, KS, WASSERSTEIN, Z, default_stattest
from scipy import stats


def numeric_profile(values, **spec) -> ReferenceProfile:
    frame = pd.DataFrame({"x": values})
    return ReferenceProfile.build(frame, {"x": ColumnSpec(kind="numeric", **spec)})


def check_x(profile: ReferenceProfile, values):
    return profile.check(pd.DataFrame({"x": values})).column("x")


# --- column kinds ------------------------------------------------------------------------------


def test_kinds_follow_reference_dtypes() -> None:
    n = 50
    reference = pd.DataFrame(
        {
            "f": np.linspace(0, 1, n),
            "i": np.arange(n) % 3,  # few unique ints stay numeric, as in Evidently's drift table
            "s": ["a", "b"] * (n // 2),
            "b": [True, False] * (n // 2),
            "c": pd.Categorical(["x", "y"] * (n // 2)),
            "t": pd.date_range("2024-01-01", periods=n),
        }
    )
    specs = infer_column_specs(reference)
    assert {k: v.kind for k, v in specs.items()} == {
        "f": "numeric",
        "i": "numeric",
        "s": "categorical",
        "b": "categorical",
        "c": "categorical",
    }


def test_overrides_and_exclusions() -> None:
    reference = pd.DataFrame({"a": [1, 2, 3], "b": [1.0, 2.0, 3.0], "target": [0, 1, 0]})
    specs = infer_column_specs(
        reference, overrides={"a": ColumnSpec(kind="categorical", stattest="z")}, exclude=["target"]
    )
    assert specs == {"a": ColumnSpec(kind="categorical", stattest="z"), "b": ColumnSpec(kind="numeric")}
    with pytest.raises(ValueError, match=r"overrides name columns missing from the reference: \['nope'\]"):
        infer_column_specs(reference, overrides={"nope": ColumnSpec(kind="numeric")})


@pytest.mark.parametrize(
    ("target", "prediction", "target_kind", "prediction_kind"),
    [
        ([0, 1] * 10, np.linspace(0.05, 0.95, 20), "categorical", "numeric"),  # probability scores
        ([0, 1] * 10, [0, 1] * 10, "categorical", "categorical"),  # class labels
        (np.linspace(0, 9, 20), np.linspace(1, 10, 20), "numeric", "numeric"),  # regression
        (None, [0, 1, 2, 3] * 5, None, "categorical"),  # no target: few integer values
        (None, np.arange(20), None, "numeric"),  # no target: many values
    ],
)
def test_target_and_prediction_kinds(target, prediction, target_kind, prediction_kind) -> None:
    frame = pd.DataFrame({"prediction": prediction})
    if target is not None:
        frame["target"] = target
    specs = infer_column_specs(frame)
    assert specs["prediction"].kind == prediction_kind
    if target is not None:
        assert specs["target"].kind == target_kind


def test_column_spec_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="column kind must be one of"):
        ColumnSpec(kind="text")
    with pytest.raises(ValueError, match="finite"):
        ColumnSpec(kind="numeric", threshold=float("nan"))


# --- default test choice and verdict directions -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "n_reference", "n_unique", "expected"),
    [
        ("numeric", 1000, 6, KS),
        ("numeric", 1000, 5, CHISQUARE),
        ("numeric", 1000, 3, CHISQUARE),
        ("numeric", 1000, 2, Z),
        ("numeric", 1000, 1, Z),
        ("categorical", 1000, 3, CHISQUARE),
        ("categorical", 1000, 2, Z),
        ("categorical", 1000, 40, CHISQUARE),
        ("numeric", 1001, 6, WASSERSTEIN),
        ("numeric", 1001, 5, JENSENSHANNON),
        ("categorical", 1001, 2, JENSENSHANNON),
    ],
)
def test_default_stattest_table(kind, n_reference, n_unique, expected) -> None:
    assert default_stattest(kind, n_reference, n_unique) is expected


def test_verdict_directions_at_the_threshold() -> None:
    assert KS.drifted(0.05, 0.05)  # ks: p <= threshold
    assert not CHISQUARE.drifted(0.05, 0.05)  # chisquare and z: p < threshold
    assert not Z.drifted(0.05, 0.05)
    assert WASSERSTEIN.drifted(0.1, 0.1)  # distances: score >= threshold
    assert JENSENSHANNON.drifted(0.1, 0.1)
    assert not WASSERSTEIN.drifted(0.0999, 0.1)


def test_test_choice_depends_on_the_window_unique_count() -> None:
    profile = numeric_profile(np.arange(300) % 5)  # 5 unique values in a small reference
    assert check_x(profile, np.arange(100) % 5).stattest == "chisquare"
    assert check_x(profile, np.arange(100) % 6).stattest == "ks"  # a sixth value appears


# --- scores against scipy directly -------------------------------------------------------------


@pytest.mark.parametrize(("n_ref", "n_cur"), [(300, 300), (800, 123), (1000, 5000), (12000, 800)])
def test_ks_matches_scipy(n_ref, n_cur) -> None:
    rng = np.random.default_rng(n_ref + n_cur)
    reference = rng.normal(0, 1, n_ref).round(2)  # rounding makes ties
    current = rng.normal(0.05, 1, n_cur).round(2)
    ours = check_x(numeric_profile(reference, stattest="ks"), current)
    assert ours.score == pytest.approx(stats.ks_2samp(reference, current).pvalue, rel=1e-12, abs=0)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_normed_wasserstein_matches_scipy(shift) -> None:
    rng = np.random.default_rng(2)
    reference = rng.gamma(2, 1, 4000).round(1)
    current = rng.gamma(2, 1, 900).round(1) + shift
    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    ours = check_x(numeric_profile(reference), current)
    assert ours.stattest == "wasserstein"
    assert ours.score == pytest.approx(expected, rel=1e-12)


def test_constant_reference_norms_wasserstein_by_a_floor() -> None:
    reference = np.r_[np.zeros(1500), np.arange(1, 7) * 1e-6]  # 7 unique values, std about 1e-7
    ours = check_x(numeric_profile(reference), np.full(200, 1e-6))
    assert ours.stattest == "wasserstein"
    assert ours.score == pytest.approx(stats.wasserstein_distance(reference, np.full(200, 1e-6)) / 0.001)


def test_identical_window_is_not_drift() -> None:
    rng = np.random.default_rng(3)
    small = rng.normal(size=500)
    large = rng.normal(size=3000)
    cats = pd.Series(rng.choice(list("abc"), 3000))
    assert check_x(numeric_profile(small), small).score == 1.0
    assert check_x(numeric_profile(large), large).score == 0.0
    profile = ReferenceProfile.build(pd.DataFrame({"c": cats}), {"c": ColumnSpec(kind="categorical")})
    column = profile.check(pd.DataFrame({"c": cats})).column("c")
    assert (column.stattest, column.score, column.drifted) == ("jensenshannon", 0.0, False)


def test_constant_columns() -> None:
    profile = numeric_profile(np.full(400, 3.0))
    same = check_x(profile, np.full(100, 3.0))
    assert (same.stattest, same.score, same.drifted) == ("z", 1.0, False)
    moved = check_x(profile, np.full(100, 4.0))
    assert moved.stattest == "z" and moved.drifted
    large = numeric_profile(np.full(2000, 3.0))
    assert check_x(large, np.full(100, 3.0)).stattest == "jensenshannon"
    # disjoint supports: the largest Jensen-Shannon distance (natural log)
    assert check_x(large, np.full(100, 4.0)).score == pytest.approx(math.sqrt(math.log(2)))


def test_unseen_category_drives_chisquare_to_zero() -> None:
    reference = pd.DataFrame({"c": list("aabbcc") * 50})
    profile = ReferenceProfile.build(reference, infer_column_specs(reference))
    column = profile.check(pd.DataFrame({"c": list("abcd") * 20})).column("c")
    assert (column.stattest, column.score, column.drifted) == ("chisquare", 0.0, True)


# --- overrides ---------------------------------------------------------------------------------


def test_override_precedence() -> None:
    rng = np.random.default_rng(4)
    reference = pd.DataFrame(
        {"a": rng.normal(size=2000), "b": rng.normal(size=2000), "c": rng.choice(list("xy"), 2000)}
    )
    specs = infer_column_specs(reference)
    specs["a"] = ColumnSpec(kind="numeric", stattest="ks", threshold=0.01)
    profile = ReferenceProfile.build(
        reference,
        specs,
        num_stattest="jensenshannon",
        num_threshold=0.3,
        cat_stattest="chisquare",
        cat_threshold=0.2,
    )
    result = profile.check(reference.iloc[:500])
    assert [(c.stattest, c.threshold) for c in result.columns] == [
        ("ks", 0.01),
        ("jensenshannon", 0.3),
        ("chisquare", 0.2),
    ]


@pytest.mark.parametrize(
    ("kind", "stattest", "message"),
    [
        ("categorical", "ks", "stattest 'ks' does not apply to categorical columns"),
        ("numeric", "chisquare", "stattest 'chisquare' does not apply to numeric columns"),
        ("numeric", "psi", "unknown stattest 'psi'"),
    ],
)
def test_stattest_must_fit_the_kind(kind, stattest, message) -> None:
    reference = pd.DataFrame({"x": np.arange(20.0)})
    with pytest.raises(DriftInputError, match=message):
        ReferenceProfile.build(reference, {"x": ColumnSpec(kind=kind, stattest=stattest)})


def test_dataset_drift_at_exactly_the_share() -> None:
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({f"x{i}": rng.normal(size=2000) for i in range(4)})
    current = reference.iloc[:500].copy()
    current[["x0", "x1"]] += 5.0
    specs = infer_column_specs(reference)
    half = ReferenceProfile.build(reference, specs).check(current)
    assert (half.n_drifted, half.drift_share, half.dataset_drift) == (2, 0.5, True)
    stricter = ReferenceProfile.build(reference, specs, drift_share=0.75).check(current)
    assert (stricter.dataset_drift, stricter.drift_share_threshold) == (False, 0.75)


# --- missing values ----------------------------------------------------------------------------


def test_missing_values_are_dropped_per_column() -> None:
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    profile = ReferenceProfile.build(reference, infer_column_specs(reference))
    current = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    holey = current.copy()
    holey.loc[:99, "a"] = np.nan
    holey.loc[100:102, "a"] = np.inf  # +-inf go with the NaN of the same column
    holey.loc[103, "a"] = -np.inf
    result = profile.check(holey)
    assert result.n_current == 400
    assert result.column("a").n_current == 296 and result.column("b").n_current == 400
    expected_a = profile.check(current.iloc[104:]).column("a").score
    assert result.column("a").score == expected_a
    assert result.column("b").score == profile.check(current).column("b").score


def test_missing_values_in_the_reference() -> None:
    values = np.r_[np.arange(600.0), [np.nan] * 50]
    profile = numeric_profile(values)
    assert profile.n_reference == 650
    assert check_x(profile, np.arange(600.0)).stattest == "ks"  # 600 values left: a small reference


# --- bad input ---------------------------------------------------------------------------------


def test_missing_columns_are_named() -> None:
    reference = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0), "c": list("xyxyxyxyxy")})
    profile = ReferenceProfile.build(reference, infer_column_specs(reference))
    with pytest.raises(DriftInputError, match=r"columns missing from the current data: \['b', 'c'\]"):
        profile.check(reference[["a"]])


def test_duplicate_column_names() -> None:
    profile = numeric_profile(np.arange(10.0))
    window = pd.DataFrame([[1.0, 2.0]], columns=["x", "x"])
    with pytest.raises(DriftInputError, match=r"duplicate column names in the current data: \['x'\]"):
        profile.check(window)
    with pytest.raises(DriftInputError, match=r"duplicate column names in the reference: \['x'\]"):
        ReferenceProfile.build(window, {"x": ColumnSpec(kind="numeric")})


def test_empty_window() -> None:
    profile = numeric_profile(np.arange(10.0))
    with pytest.raises(DriftInputError, match="the current window is empty"):
        profile.check(pd.DataFrame({"x": pd.Series([], dtype=float)}))


def test_all_missing_column_in_window() -> None:
    reference = pd.DataFrame({"a": np.arange(10.0), "c": list("xyxyxyxyxy")})
    profile = ReferenceProfile.build(reference, infer_column_specs(reference))
    with pytest.raises(DriftInputError, match="column 'c' has no values in the current window") as err:
        profile.check(pd.DataFrame({"a": np.arange(3.0), "c": [None, None, None]}))
    assert err.value.column == "c"
    with pytest.raises(DriftInputError, match="column 'a' has no values in the current window"):
        profile.check(pd.DataFrame({"a": [np.nan, np.nan], "c": ["x", "y"]}))


def test_empty_columns_can_be_skipped() -> None:
    reference = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) * 2, "c": list("xyxyxyxyxy")})
    profile = ReferenceProfile.build(reference, infer_column_specs(reference))
    window = pd.DataFrame({"a": np.arange(5.0) + 100, "b": [np.nan] * 5, "c": [None] * 5})
    result = profile.check(window, skip_empty_columns=True)
    assert [c.name for c in result.columns] == ["a"]
    assert result.skipped == {"b": "no values in the current window", "c": "no values in the current window"}
    assert (result.n_drifted, result.drift_share, result.dataset_drift) == (1, 1.0, True)
    assert result.to_dict()["skipped"] == result.skipped
    with pytest.raises(DriftInputError, match=r"no column has values in the current window"):
        profile.check(window.assign(a=np.nan), skip_empty_columns=True)


def test_unhashable_categories() -> None:
    reference = pd.DataFrame({"c": ["a", "b"] * 5})
    profile = ReferenceProfile.build(reference, infer_column_specs(reference))
    with pytest.raises(
        DriftInputError, match="column 'c' in the current data holds values that are not categories"
    ):
        profile.check(pd.DataFrame({"c": [["a"], ["b"]]}))


def test_strings_in_a_numeric_column() -> None:
    profile = numeric_profile(np.arange(10.0))
    with pytest.raises(
        DriftInputError, match="column 'x' in the current data should contain numerical values"
    ):
        profile.check(pd.DataFrame({"x": ["1", "oops"]}))
    with pytest.raises(DriftInputError, match="column 'x' in the reference should contain numerical values"):
        ReferenceProfile.build(pd.DataFrame({"x": ["a", "b"]}), {"x": ColumnSpec(kind="numeric")})


@pytest.mark.parametrize(
    ("reference", "specs", "kwargs", "message"),
    [
        (pd.DataFrame({"a": [1.0]}), {}, {}, "no columns to check"),
        (
            pd.DataFrame({"a": [1.0]}),
            {"b": ColumnSpec(kind="numeric")},
            {},
            r"missing from the reference: \['b'\]",
        ),
        (
            pd.DataFrame({"a": [np.nan, np.nan]}),
            {"a": ColumnSpec(kind="numeric")},
            {},
            "column 'a' has no values",
        ),
        (pd.DataFrame({"a": [1.0]}), {"a": ColumnSpec(kind="numeric")}, {"drift_share": 1.5}, "drift_share"),
        ([1.0, 2.0], {"a": ColumnSpec(kind="numeric")}, {}, "reference must be a pandas DataFrame"),
    ],
)
def test_bad_reference(reference, specs, kwargs, message) -> None:
    with pytest.raises(DriftInputError, match=message):
        ReferenceProfile.build(reference, specs, **kwargs)


def test_window_must_be_a_frame() -> None:
    with pytest.raises(DriftInputError, match="current data must be a pandas DataFrame, got list"):
        numeric_profile(np.arange(10.0)).check([1.0, 2.0])


def test_errors_are_value_errors() -> None:
    assert issubclass(DriftInputError, ValueError)


# --- results -----------------------------------------------------------------------------------


def test_result_is_json_safe_and_checks_are_repeatable() -> None:
    rng = np.random.default_rng(8)
    reference = pd.DataFrame({"x": rng.normal(size=1500), "s": rng.choice(list("abc"), 1500)})
    profile = ReferenceProfile.build(reference, infer_column_specs(reference))
    current = pd.DataFrame({"x": rng.normal(1, 1, 300), "s": rng.choice(list("abd"), 300)})
    before = current.copy()
    first, second = profile.check(current), profile.check(current)
    pd.testing.assert_frame_equal(current, before)  # the window is not modified
    assert first.to_dict() == second.to_dict()
    document = json.loads(json.dumps(first.to_dict(), allow_nan=False))
    assert document["n_reference"] == 1500 and document["n_current"] == 300
    assert document["columns"][0] == {
        "name": "x",
        "kind": "numeric",
        "stattest": "wasserstein",
        "stattest_display": "Wasserstein distance (normed)",
        "score": first.column("x").score,
        "threshold": 0.1,
        "drifted": True,
        "n_current": 300,
    }
    assert profile.columns == ["x", "s"] and profile.kinds == {"x": "numeric", "s": "categorical"}
    assert 1500 * 8 <= profile.nbytes < 1500 * 8 + 10_000  # the sorted reference column, a few counts


def test_infinite_values_without_nan_are_kept_and_serialise_as_null() -> None:
    # Evidently drops +-inf only from a column that also has a NaN; scipy then returns inf.
    profile = numeric_profile(np.arange(2000.0))
    current = np.r_[np.arange(100.0), np.inf]
    column = check_x(profile, current)
    assert column.score == stats.wasserstein_distance(np.arange(2000.0), current) / np.std(np.arange(2000.0))
    assert column.score == math.inf and column.drifted
    assert column.to_dict()["score"] is None
    jensenshannon = numeric_profile(np.arange(2000.0), stattest="jensenshannon")
    with pytest.raises(
        DriftInputError, match=r"column 'x': autodetected range of \[0.0, inf\] is not finite"
    ):
        check_x(jensenshannon, current)
