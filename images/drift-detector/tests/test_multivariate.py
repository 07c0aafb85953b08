"""Multivariate drift (PCA reconstruction error): the model's rules, and the service carrying its verdict
into every window's result, the history and the metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_REFERENCE, make_reference
from drift_detector.config import ConfigError, load_settings
from drift_detector.report_worker import with_multivariate_section
from drift_detector.stats import DriftInputError
from drift_detector.stats.multivariate import ReconstructionModel

KINDS = {"f_a": "numeric", "f_b": "numeric", "color": "categorical"}
WINDOW = 100


def correlated(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    return pd.DataFrame({"a": a, "b": a + rng.normal(0.0, 0.1, n), "c": rng.normal(5.0, 2.0, n)})


# --- the model --------------------------------------------------------------------------------------
def test_missing_category_as_none_or_nan_is_imputed_alike():
    model = ReconstructionModel.fit(make_reference(), KINDS, WINDOW)
    window = make_reference(n=WINDOW, seed=3)[list(KINDS)]
    window.loc[:9, "color"] = None
    as_nan = window.copy()
    as_nan["color"] = as_nan["color"].astype(object).where(as_nan["color"].notna(), np.nan)
    assert model.check(window).value == model.check(as_nan).value


def test_missing_values_take_the_reference_mean_and_most_frequent_category():
    reference = make_reference()
    model = ReconstructionModel.fit(reference, KINDS, WINDOW)
    top = reference["color"].value_counts().idxmax()
    filled = pd.DataFrame(
        {"f_a": [reference["f_a"].mean()], "f_b": [reference["f_b"].mean()], "color": [top]}
    )
    empty = pd.DataFrame({"f_a": [np.nan], "f_b": [None], "color": [None]})
    assert model.row_errors(empty)[0] == pytest.approx(model.row_errors(filled)[0], rel=1e-12)


def test_unseen_category_counts_as_share_zero():
    reference = make_reference()
    model = ReconstructionModel.fit(reference, KINDS, WINDOW)
    row = reference[list(KINDS)].iloc[:1].copy()
    unseen = row.assign(color="purple")
    # Encoding "purple" as 0 moves the row along the color axis only: its error differs from a known one.
    assert model.row_errors(unseen)[0] != pytest.approx(model.row_errors(row)[0])


def test_most_frequent_tie_takes_the_smallest_category():
    reference = correlated(400, seed=0).assign(kind=["b", "a"] * 200)
    model = ReconstructionModel.fit(reference, {"a": "numeric", "b": "numeric", "kind": "categorical"}, 100)
    row = reference.iloc[:1][["a", "b"]]
    assert model.row_errors(row.assign(kind=[None]))[0] == model.row_errors(row.assign(kind=["a"]))[0]


def test_constant_column_keeps_unit_scale_and_finite_errors():
    reference = correlated(400, seed=0).assign(flat=7.0)
    model = ReconstructionModel.fit(reference, dict.fromkeys(reference.columns, "numeric"), 100)
    errors = model.row_errors(correlated(50, seed=1).assign(flat=8.0))
    assert np.isfinite(errors).all()


def test_thresholds_are_mean_plus_minus_three_stds_of_reference_chunks():
    reference = correlated(1050, seed=0)
    model = ReconstructionModel.fit(reference, dict.fromkeys("abc", "numeric"), 100)
    chunks = model.reference_chunk_values
    assert len(chunks) == 11  # ten full chunks and the last 50 rows, kept
    assert chunks[-1] == pytest.approx(model.row_errors(reference.iloc[1000:]).mean(), rel=1e-12)
    assert model.upper_threshold == pytest.approx(chunks.mean() + 3 * chunks.std(), rel=1e-12)
    assert model.lower_active and model.lower_threshold == pytest.approx(chunks.mean() - 3 * chunks.std())


def test_window_below_the_band_drifts_when_the_lower_bound_is_above_zero():
    reference = correlated(1000, seed=0)
    model = ReconstructionModel.fit(reference, dict.fromkeys("abc", "numeric"), 100)
    assert model.lower_active
    all_missing = pd.DataFrame({c: [np.nan] * WINDOW for c in "abc"})  # every row imputed: error 0
    result = model.check(all_missing)
    assert result.value == pytest.approx(0.0, abs=1e-12) and result.drift_detected


def test_lower_bound_at_or_below_zero_reads_zero_and_is_not_checked():
    reference = correlated(400, seed=0)
    model = ReconstructionModel.fit(reference, dict.fromkeys("abc", "numeric"), 100, std_multiplier=1000.0)
    assert model.lower_threshold == 0.0 and not model.lower_active
    all_missing = pd.DataFrame({c: [np.nan] * WINDOW for c in "abc"})
    assert model.check(all_missing).drift_detected is False


def test_broken_correlation_drifts_and_a_fresh_sample_does_not():
    model = ReconstructionModel.fit(correlated(2000, seed=0), dict.fromkeys("abc", "numeric"), 200)
    fresh = correlated(200, seed=1)
    broken = fresh.assign(b=fresh["b"].to_numpy()[::-1])  # same values, paired with other rows
    assert model.check(fresh).drift_detected is False
    assert model.check(broken).drift_detected is True


@pytest.mark.parametrize(
    ("rows", "chunk", "variance", "message"),
    [
        (150, 100, 0.65, "at least two reference chunks of 100 rows"),
        (400, 100, 1.0, "explained variance must be within (0, 1)"),
        (400, 100, 0.0, "explained variance must be within (0, 1)"),
    ],
)
def test_fit_refuses_what_it_cannot_fit_on(rows, chunk, variance, message):
    with pytest.raises(DriftInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ReconstructionModel.fit(
            correlated(rows, seed=0), dict.fromkeys("abc", "numeric"), chunk, explained_variance=variance
        )


def test_fit_refuses_a_reference_of_constant_columns():
    reference = pd.DataFrame({"a": [1.0] * 300, "b": [2.0] * 300})
    with pytest.raises(DriftInputError, match="every feature is constant"):
        ReconstructionModel.fit(reference, dict.fromkeys("ab", "numeric"), 100)


def test_window_missing_a_column_is_refused_by_name():
    model = ReconstructionModel.fit(correlated(400, seed=0), dict.fromkeys("abc", "numeric"), 100)
    with pytest.raises(DriftInputError, match=r"\['c'\]"):
        model.check(correlated(10, seed=1)[["a", "b"]])


def test_report_section_goes_first_in_the_body():
    result = {
        "value": 5.01374,
        "lower_threshold": 2.19862,
        "upper_threshold": 2.88251,
        "drift_detected": True,
    }
    page = with_multivariate_section(
        "<html><head></head><body class='x'><div>evidently</div></body></html>", result
    )
    assert page.index('<section id="multivariate-drift"') == page.index("<body class='x'>") + len(
        "<body class='x'>"
    )
    assert "<b>Drift detected</b>: mean reconstruction error 5.0137, reference band 2.1986 .. 2.8825" in page
    assert page.endswith("<div>evidently</div></body></html>")


# --- settings -------------------------------------------------------------------------------------
def settings_with(tmp_path, **config):
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_settings(["--reference", "r.parquet", "--config", str(path)], environ={})


def test_settings_default_on_with_nannyml_parameters(tmp_path):
    s = settings_with(tmp_path)
    assert (s.multivariate_enabled, s.multivariate_explained_variance, s.multivariate_std_multiplier) == (
        True,
        0.65,
        3.0,
    )
    assert settings_with(tmp_path, multivariate_enabled=False).multivariate_enabled is False


@pytest.mark.parametrize(
    "config",
    [
        {"multivariate_explained_variance": 1.5},
        {"multivariate_explained_variance": 0},
        {"multivariate_std_multiplier": 0},
        {"multivariate_std_multiplier": "nan"},
    ],
)
def test_settings_refuse_parameters_out_of_range(tmp_path, config):
    with pytest.raises(ConfigError, match=next(iter(config))):
        settings_with(tmp_path, **config)


# --- the service ----------------------------------------------------------------------------------
demo = pytest.mark.skipif(not DEMO_REFERENCE.exists(), reason="no build/demo: run `make demo-model`")


def send(server, rows: pd.DataFrame) -> None:
    for i in range(0, len(rows), 10):
        chunk = rows.iloc[i : i + 10]
        server.send_pair(chunk.to_numpy().tolist(), [0.5] * len(chunk))


def checked(server, seq: int) -> dict | None:
    r = server.client.get("/api/v1/drift")
    return r.json() if r.status_code == 200 and r.json()["window"]["seq"] == seq else None


def shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})


@demo
def test_service_reports_broken_correlation_that_univariate_drift_misses(make_server):
    reference = pd.read_parquet(DEMO_REFERENCE)
    features = [c for c in reference.columns if c not in ("prediction", "target")]
    holdout = pd.read_parquet(DEMO_REFERENCE.with_name("holdout.parquet"))[features].iloc[:WINDOW]
    model = ReconstructionModel.fit(reference, dict.fromkeys(features, "numeric"), WINDOW)
    config = {"report_every_n_windows": 0, "reports_min_interval_seconds": 0}
    server = make_server(config, reference=DEMO_REFERENCE, window_size=WINDOW, min_samples=WINDOW).start()

    send(server, holdout)
    clean = server.wait_for(lambda: checked(server, 1), what="check of the clean window")
    want = model.check(holdout)
    assert clean["multivariate"] == {
        "method": "pca_reconstruction",
        "value": pytest.approx(want.value, rel=1e-12),
        "lower_threshold": pytest.approx(model.lower_threshold, rel=1e-12),
        "upper_threshold": pytest.approx(model.upper_threshold, rel=1e-12),
        "drift_detected": False,
    }
    assert server.metric("model_multivariate_drift_detected") == 0
    assert "report" not in clean
    assert server.metric("model_multivariate_drift_reconstruction_error") == pytest.approx(
        want.value, rel=1e-12
    )

    send(server, shuffled(holdout, seed=1))
    broken = server.wait_for(lambda: checked(server, 2), what="check of the shuffled window")
    assert broken["dataset_drift"] is False  # every column keeps its values
    assert broken["multivariate"]["drift_detected"] is True
    assert broken["multivariate"]["value"] > broken["multivariate"]["upper_threshold"]
    assert server.metric("model_multivariate_drift_detected") == 1
    assert server.metric("model_multivariate_drift_upper_threshold") == pytest.approx(model.upper_threshold)
    assert server.metric("model_multivariate_drift_lower_threshold") == pytest.approx(model.lower_threshold)
    history = server.client.get("/api/v1/drift/history?limit=2").json()["results"]
    assert [h["multivariate"]["drift_detected"] for h in history] == [True, False]
    # Multivariate drift alone queues a report, and the report shows it above Evidently's widgets.
    name = broken["report"]
    server.wait_for(lambda: name in server.client.get("/reports/").text, timeout=180, what="the report")
    page = server.client.get(f"/reports/{name}").text
    assert f"mean reconstruction error {broken['multivariate']['value']:.4f}" in page
    assert "Drift detected" in page and "Drifted Columns" in page
    # The demo reference has the score and the target: the CBPE table is in the report too, below.
    assert page.index('id="multivariate-drift"') < page.index('id="estimated-performance"')
    assert "Estimated performance (CBPE, no labels needed)" in page


def test_service_switched_off_or_unfittable_gives_null_and_no_series(make_server):
    rows = make_reference(n=WINDOW, seed=5)
    off = make_server({"reports_enabled": False, "multivariate_enabled": False}, subdir="off",
                      window_size=WINDOW, min_samples=WINDOW).start()  # fmt: skip
    # 600 reference rows make one chunk of 1000: no spread to draw thresholds from.
    small = make_server(
        {"reports_enabled": False}, subdir="small", window_size=1000, min_samples=WINDOW
    ).start()
    for i in range(0, WINDOW, 10):
        chunk = rows.iloc[i : i + 10]
        off.send_pair(chunk[list(KINDS)].to_numpy().tolist(), chunk["prediction"].tolist())
    off_result = off.wait_for(lambda: checked(off, 1), what="check with multivariate off")
    assert off_result["multivariate"] is None
    assert not any(k.startswith("model_multivariate_") for k in off.metrics())
    small.wait_for(lambda: "multivariate drift is off" in small.log(), what="the reason in the log")
    assert "at least two reference chunks of 1000 rows" in small.log()
