"""Segment drift: a verdict per value of a segment column, bounded to the top reference values + _other_."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from drift_detector.metrics import Metrics
from drift_detector.report_worker import with_segments_section
from drift_detector.stats import DriftInputError, ReferenceProfile, infer_column_specs
from drift_detector.stats.segments import OTHER, SegmentProfiles

REGIONS = ["north", "south", "east", "west"]
MEANS = {"north": 0.0, "south": 3.0, "east": 6.0, "west": 9.0}


def regional(n: int, seed: int, swap: bool = False) -> pd.DataFrame:
    """f_a and f_b follow the region; swap gives north's rows south's values and back: the window as a
    whole keeps every column's distribution, the two segments do not."""
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, n, p=[0.3, 0.3, 0.3, 0.1]).astype(object)
    mean = np.array([MEANS[r] for r in region])
    frame = pd.DataFrame(
        {"f_a": rng.normal(mean, 1.0), "f_b": rng.normal(mean * 2, 1.0), "f_c": rng.uniform(0, 1, n)}
    )
    if swap:
        region = np.where(region == "north", "south", np.where(region == "south", "north", region))
    frame["region"] = region
    return frame


def build(reference: pd.DataFrame, top: int = 10, min_rows: int = 30) -> SegmentProfiles:
    specs = infer_column_specs(reference)
    return SegmentProfiles.build(
        reference, specs, ["region"], top_values=top, min_rows=min_rows, drift_share=0.5
    )


def by_value(results) -> dict:
    return {r.value: r for r in results}


def test_drift_inside_two_segments_that_the_whole_window_hides():
    reference = regional(3000, seed=0)
    window = regional(900, seed=1, swap=True)
    specs = infer_column_specs(reference)
    assert ReferenceProfile.build(reference, specs).check(window).dataset_drift is False
    results = by_value(build(reference).check(window))
    assert results["north"].dataset_drift is True and results["south"].dataset_drift is True
    assert results["east"].dataset_drift is False and results["west"].dataset_drift is False
    assert results["north"].n_drifted == 2  # f_a and f_b; f_c is unrelated to the region
    assert results["north"].rows == int((window["region"] == "north").sum())


def test_values_past_the_top_ones_and_unseen_values_share_other():
    reference = regional(3000, seed=0)
    profiles = build(reference, top=2)
    top_two = [str(v) for v in reference["region"].value_counts().index[:2]]
    assert profiles.labels == [("region", top_two[0]), ("region", top_two[1]), ("region", OTHER)]
    window = regional(600, seed=2)
    window.loc[window.index[:50], "region"] = [f"unseen-{i}" for i in range(50)]
    results = by_value(profiles.check(window))
    assert set(results) == {label for _, label in profiles.labels}
    top = {label for _, label in profiles.labels} - {OTHER}
    assert results[OTHER].rows == int((~window["region"].isin(top)).sum())


def test_a_segment_with_too_few_rows_is_listed_unchecked():
    reference = regional(3000, seed=0)
    window = regional(200, seed=3)
    window = window[window["region"] != "west"].copy()
    window.loc[window.index[:5], "region"] = "west"
    result = by_value(build(reference, min_rows=30).check(window))["west"]
    assert result.rows == 5
    assert result.to_dict()["checked"] is False and result.drift_share is None


def test_segment_column_must_be_a_categorical_feature():
    reference = regional(500, seed=0)
    specs = infer_column_specs(reference)
    with pytest.raises(DriftInputError, match=r"\['f_a'\]"):
        SegmentProfiles.build(reference, specs, ["f_a"], top_values=5, min_rows=10, drift_share=0.5)
    with pytest.raises(DriftInputError, match=r"\['nope'\]"):
        SegmentProfiles.build(reference, specs, ["nope"], top_values=5, min_rows=10, drift_share=0.5)


def test_metric_series_stay_bounded_by_the_configuration():
    reference = regional(3000, seed=0)
    profiles = build(reference, top=2)
    metrics = Metrics("m")
    for seed in range(5):
        window = regional(400, seed=10 + seed)
        window.loc[window.index[:40], "region"] = [f"new-{seed}-{i}" for i in range(40)]
        segments = [r.to_dict() for r in profiles.check(window)]
        metrics._record_segments(segments)
    series = {
        s.labels["segment_value"]
        for fam in metrics.registry.collect()
        if fam.name == "model_segment_drift_share"
        for s in fam.samples
    }
    assert series == {label for _, label in profiles.labels}


def test_unchecked_segment_sets_nan():
    metrics = Metrics("m")
    seg = {"column": "region", "value": "west", "rows": 2, "drift_share": None, "dataset_drift": None}
    metrics._record_segments([seg])
    value = metrics.registry.get_sample_value(
        "model_segment_drift_share", {"model_name": "m", "segment_column": "region", "segment_value": "west"}
    )
    assert math.isnan(value)


# --- the service ----------------------------------------------------------------------------------
def test_service_reports_segments_in_the_result_and_metrics(make_server, tmp_path):
    reference = regional(2000, seed=0)
    path = tmp_path / "regional.parquet"
    reference.to_parquet(path)
    config = {"reports_enabled": False, "segment_columns": ["region"], "segment_top_values": 3}
    server = make_server(config, reference=path, window_size=600, min_samples=600).start()
    window = regional(600, seed=1, swap=True)
    for i in range(0, len(window), 20):
        chunk = window.iloc[i : i + 20]
        server.send_pair(chunk[["f_a", "f_b", "f_c", "region"]].to_numpy().tolist(), [0.5] * len(chunk))
    result = server.wait_for(
        lambda: (r := server.client.get("/api/v1/drift")).status_code == 200 and r.json(), what="the check"
    )
    segments = {s["value"]: s for s in result["segments"]}
    assert set(segments) == {"north", "south", "east", OTHER}
    assert result["dataset_drift"] is False
    assert segments["north"]["dataset_drift"] is True and segments["east"]["dataset_drift"] is False
    metric = server.metric("model_segment_drift_share", segment_column="region", segment_value="north")
    assert metric == pytest.approx(segments["north"]["drift_share"])
    assert server.metric("model_segment_drift_detected", segment_column="region", segment_value="north") == 1


def test_report_section_lists_every_segment_with_its_verdict():
    segments = [
        {"column": "region", "value": "north", "rows": 120, "checked": True, "drift_share": 2 / 3,
         "n_drifted": 2, "dataset_drift": True},
        {"column": "region", "value": "<south>", "rows": 12, "checked": False, "drift_share": None,
         "n_drifted": None, "dataset_drift": None},
    ]  # fmt: skip
    page = with_segments_section("<html><body><div>evidently</div></body></html>", segments)
    assert page.index('<section id="segment-drift"') == page.index("<body>") + len("<body>")
    assert "<td>region</td><td>north</td><td>120</td><td>67% (2)</td><td>yes</td>" in page
    assert "<td>&lt;south&gt;</td><td>12</td><td>-</td><td>not checked</td>" in page
