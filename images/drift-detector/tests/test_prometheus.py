"""A real Prometheus scrapes the real service: the contract's series, with model_name, no namespace."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest
import yaml
from conftest import free_port, sample_rows

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed")


def test_prometheus_scrapes_the_contract_series(make_server, tmp_path):
    server = make_server({"reports_enabled": False}, window_size=100, min_samples=100).start()
    rows = sample_rows(100, seed=9)
    rows[0]["color"] = "violet"  # one data-quality violation, so that series exists too
    for i in range(0, 100, 10):
        server.send_pair([[r["f_a"], r["f_b"], r["color"]] for r in rows[i : i + 10]], [0.5] * 10)
    server.wait_for(lambda: server.client.get("/api/v1/drift").status_code == 200, what="first check")

    port = free_port()
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "drift-detector", "static_configs": [{"targets": [server.url[7:]]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        def query(q: str) -> list:
            try:
                return api.get("/api/v1/query", params={"query": q}).json()["data"]["result"]
            except (httpx.TransportError, KeyError, ValueError):
                return []

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not query('up{job="drift-detector"} == 1'):
            time.sleep(0.5)
        names = [
            "model_drift_score", "model_drift_detected", "model_feature_drift_score",
            "model_feature_drift_detected", "model_prediction_drift_score", "model_prediction_drift_detected",
            "drift_detector_window_samples", "drift_detector_events_total",
            "drift_detector_data_quality_violations_total", "drift_detector_checks_total",
            "drift_detector_check_duration_seconds_count", "drift_detector_last_check_timestamp_seconds",
        ]  # fmt: skip
        for name in names:
            result = query(name)
            assert result, f"{name} not scraped"
            for series in result:
                assert series["metric"]["model_name"] == "demo-model"
                assert "namespace" not in series["metric"]
        features = {s["metric"]["feature_name"] for s in query("model_feature_drift_score")}
        assert features == {"f_a", "f_b", "color"}
        assert float(query("drift_detector_checks_total")[0]["value"][1]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
