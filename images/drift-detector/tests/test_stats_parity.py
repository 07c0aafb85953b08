"""Our engine against Evidently's legacy DataDriftPreset itself, case by case, column by column."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import pandas as pd
import pytest
from drift_detector.stats import ColumnSpec, ReferenceProfile, infer_column_specs
from stats_cases import Case, all_cases

REL_TOLERANCE = 1e-9
CASES = all_cases()


@pytest.fixture(scope="session")
def evidently_preset():
    """Evidently costs seconds to import: once per session, and only for these tests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently.legacy.metric_preset import DataDriftPreset
        from evidently.legacy.pipeline.column_mapping import ColumnMapping
        from evidently.legacy.report import Report

    cache: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def run(case: Case) -> tuple[dict[str, Any], dict[str, Any]]:
        if case.id not in cache:
            cache[case.id] = _run(case)
        return cache[case.id]

    def _run(case: Case) -> tuple[dict[str, Any], dict[str, Any]]:
        report = Report(metrics=[DataDriftPreset(**case.options)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mapping = ColumnMapping(categorical_features=case.categorical) if case.categorical else None
            report.run(reference_data=case.reference, current_data=case.current, column_mapping=mapping)
            metrics = report.as_dict()["metrics"]
        return metrics[0]["result"], metrics[1]["result"]["drift_by_columns"]

    return run


def build_ours(case: Case) -> ReferenceProfile:
    """Translate the preset's options into specs and profile options."""
    options = case.options
    overrides = {name: ColumnSpec(kind="categorical") for name in case.categorical}
    specs = infer_column_specs(case.reference, overrides=overrides)
    for name, stattest in options.get("per_column_stattest", {}).items():
        specs[name] = dataclasses.replace(specs[name], stattest=stattest)
    for name, threshold in options.get("per_column_stattest_threshold", {}).items():
        specs[name] = dataclasses.replace(specs[name], threshold=threshold)
    every_threshold = options.get("stattest_threshold")
    return ReferenceProfile.build(
        case.reference,
        specs,
        drift_share=options.get("drift_share", 0.5),
        num_stattest=options.get("num_stattest", options.get("stattest")),
        cat_stattest=options.get("cat_stattest", options.get("stattest")),
        num_threshold=options.get("num_stattest_threshold", every_threshold),
        cat_threshold=options.get("cat_stattest_threshold", every_threshold),
    )


def scores_match(ours: float, theirs: float) -> bool:
    if math.isnan(ours) or math.isnan(theirs):
        return math.isnan(ours) and math.isnan(theirs)
    if ours == 0 or theirs == 0:
        return ours == theirs
    return math.isclose(ours, theirs, rel_tol=REL_TOLERANCE, abs_tol=0.0)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_columns_tests_scores_and_verdicts(case: Case, evidently_preset) -> None:
    dataset, by_column = evidently_preset(case)
    result = build_ours(case).check(case.current)

    assert {c.name for c in result.columns} == set(by_column)
    mismatches = []
    for ours in result.columns:
        theirs = by_column[ours.name]
        same = (
            {"num": "numeric", "cat": "categorical"}[theirs["column_type"]] == ours.kind
            and theirs["stattest_name"] == ours.stattest_display
            and theirs["stattest_threshold"] == ours.threshold
            and theirs["drift_detected"] == ours.drifted
            and scores_match(ours.score, float(theirs["drift_score"]))
        )
        if not same:
            mismatches.append((ours, theirs["column_type"], theirs["stattest_name"], theirs["drift_score"]))
    assert not mismatches, mismatches
    assert result.n_drifted == dataset["number_of_drifted_columns"]
    assert result.drift_share == dataset["share_of_drifted_columns"]
    assert result.dataset_drift == dataset["dataset_drift"]


def test_cases_cover_every_test_and_both_verdicts() -> None:
    """The generated cases are only worth something if they reach every branch."""
    seen: set[tuple[str, str, bool]] = set()
    for case in CASES:
        for column in build_ours(case).check(case.current).columns:
            seen.add((column.stattest, column.kind, column.drifted))
    for stattest, kind in [
        ("ks", "numeric"),
        ("chisquare", "numeric"),
        ("chisquare", "categorical"),
        ("z", "numeric"),
        ("z", "categorical"),
        ("wasserstein", "numeric"),
        ("jensenshannon", "numeric"),
        ("jensenshannon", "categorical"),
    ]:
        assert (stattest, kind, True) in seen, (stattest, kind, "drifted")
        assert (stattest, kind, False) in seen, (stattest, kind, "not drifted")


def test_prediction_profile_alone_matches_the_preset_column(evidently_preset) -> None:
    """The service checks the prediction column in its own one-column profile."""
    for case in CASES:
        if "prediction" not in case.reference:
            continue
        spec = infer_column_specs(case.reference)["prediction"]
        profile = ReferenceProfile.build(case.reference[["prediction"]], {"prediction": spec})
        ours = profile.check(case.current[["prediction"]]).column("prediction")
        theirs = evidently_preset(case)[1]["prediction"]
        assert theirs["stattest_name"] == ours.stattest_display, case.id
        assert scores_match(ours.score, float(theirs["drift_score"])), case.id
        assert theirs["drift_detected"] == ours.drifted, case.id


def test_column_order_is_the_reference_order() -> None:
    case = CASES[0]
    result = build_ours(case).check(case.current)
    assert [c.name for c in result.columns] == list(pd.Index(case.reference.columns))


def _service_window_case(n_ref: int, shift: float, seed: int) -> Case:
    """A reference with a bool and a pandas Categorical of ints, and a window the service built from a
    KServe v1 JSON body (true/false, 1/2/3) with its Schema, exactly as the checker sees it."""
    from collections import Counter

    import numpy as np
    import orjson
    from drift_detector import decode
    from drift_detector.config import Settings
    from drift_detector.schema import build_schema

    rng = np.random.default_rng(seed)
    reference = pd.DataFrame(
        {
            "flag": rng.random(n_ref) < 0.3,
            "grade": pd.Categorical(rng.choice([1, 2, 3], n_ref, p=[0.5, 0.3, 0.2])),
            "x": rng.normal(0.0, 1.0, n_ref),
        }
    )
    window = reference.sample(500, random_state=seed).reset_index(drop=True)  # the same population
    if shift:
        window["flag"] = rng.random(len(window)) < 0.3 + shift
        window["grade"] = rng.choice([1, 2, 3], len(window), p=[0.2, 0.3, 0.5])
    instances = [[bool(f), int(g), float(x)] for f, g, x in window.itertuples(index=False)]
    schema = build_schema(reference, Settings())[0]
    dq: Counter = Counter()
    rows = decode.decode_request(schema, orjson.loads(orjson.dumps({"instances": instances})), dq)
    assert not [k for k in dq if k[1] in ("wrong_type", "unseen_category")], dq
    kind = "same" if shift == 0 else "shifted"
    return Case(f"service-window-{kind}-{n_ref}", reference, schema.frame(rows))


@pytest.mark.parametrize("n_ref", [600, 1500], ids=["z-chisquare", "jensenshannon"])
def test_bool_and_numeric_categorical_windows_from_the_service_match_evidently(n_ref, evidently_preset):
    """Window values as the service stores them meet the reference's own categories: the same
    distribution does not drift, a shifted one does, and Evidently agrees on test, score and verdict."""
    for shift, drifted in ((0.0, False), (0.3, True)):
        case = _service_window_case(n_ref, shift, seed=n_ref)
        result = build_ours(case).check(case.current)
        assert {c.name: c.drifted for c in result.columns if c.name != "x"} == {
            "flag": drifted,
            "grade": drifted,
        }, result.columns
        by_column = evidently_preset(case)[1]
        for ours in result.columns:
            theirs = by_column[ours.name]
            assert theirs["stattest_name"] == ours.stattest_display, (case.id, ours.name)
            assert theirs["drift_detected"] == ours.drifted, (case.id, ours.name)
            assert scores_match(ours.score, float(theirs["drift_score"])), (case.id, ours, theirs)
