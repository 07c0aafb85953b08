"""The demo reference (`make demo-model`): clean holdout traffic stays quiet, shifted traffic drifts."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import DEMO_REFERENCE

pytestmark = pytest.mark.skipif(not DEMO_REFERENCE.exists(), reason="no build/demo: run `make demo-model`")
WINDOW = 100


def predictions(rows: pd.DataFrame) -> list[float]:
    import joblib

    model = joblib.load(DEMO_REFERENCE.parent / "model" / "model.joblib")
    return model.predict_proba(rows.to_numpy())[:, 1].tolist()  # fitted on arrays


def send(server, rows: pd.DataFrame) -> None:
    scores = predictions(rows)
    for i in range(0, len(rows), 5):  # five instances per request, as KServe logs a batch request
        chunk = rows.iloc[i : i + 5]
        server.send_pair(chunk.to_numpy().tolist(), scores[i : i + 5])


def latest(server, seq: int):
    r = server.client.get("/api/v1/drift")
    return r.json() if r.status_code == 200 and r.json()["window"]["seq"] == seq else None


def test_demo_reference_clean_then_shifted(make_server):
    reference = pd.read_parquet(DEMO_REFERENCE)
    features = [c for c in reference.columns if c not in ("prediction", "target")]
    holdout = pd.read_parquet(DEMO_REFERENCE.parent / "holdout.parquet")[features]
    server = make_server(
        {"reports_enabled": False}, reference=DEMO_REFERENCE, window_size=WINDOW, min_samples=WINDOW
    )
    server.start()

    send(server, holdout.iloc[:WINDOW])
    clean = server.wait_for(lambda: latest(server, 1), what="check of the clean window")
    assert [c["name"] for c in clean["columns"]] == features  # 30 features, reference order
    assert clean["dataset_drift"] is False
    assert clean["prediction_drift"] is not None and clean["window"]["predictions"] == WINDOW
    assert server.metric("model_drift_detected") == 0

    shifted = holdout.iloc[:WINDOW] * 1.5  # every feature scaled: a unit change upstream, say
    send(server, shifted)
    drifted = server.wait_for(lambda: latest(server, 2), what="check of the shifted window")
    assert drifted["dataset_drift"] is True
    assert drifted["drift_share"] >= 0.5
    assert server.metric("model_drift_detected") == 1
    out_of_range = sum(
        v
        for k, v in server.metrics().items()
        if k.startswith("drift_detector_data_quality_violations_total{") and "kind=out_of_range" in k
    )
    assert out_of_range > 0


def test_clean_holdout_rows_stay_within_the_reference_ranges(make_server):
    """Held-out rows of the same population are not data-quality violations. With the exact reference
    min..max, 426 reference rows and 30 features flag about 0.08 values per clean row (a fresh draw
    exceeds the sample extremes with probability ~2/(n+1) per feature); the default tolerance keeps
    that under 1 in 20 rows, and no feature is out of range in more than 5% of the rows."""
    reference = pd.read_parquet(DEMO_REFERENCE)
    features = [c for c in reference.columns if c not in ("prediction", "target")]
    holdout = pd.read_parquet(DEMO_REFERENCE.parent / "holdout.parquet")[features]
    server = make_server({"reports_enabled": False}, reference=DEMO_REFERENCE)
    server.start()
    send(server, holdout)
    per_feature = {
        k: v
        for k, v in server.metrics().items()
        if k.startswith("drift_detector_data_quality_violations_total{")
    }
    assert all("kind=out_of_range" in k for k in per_feature), per_feature
    assert sum(per_feature.values()) / len(holdout) < 0.05, per_feature
    assert max(per_feature.values(), default=0) / len(holdout) < 0.05, per_feature
