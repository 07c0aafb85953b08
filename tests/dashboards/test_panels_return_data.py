"""Every panel query returns data from a real Prometheus scraping the images' own metric classes.

The predictor's PredictorMetrics (plus KServe's own request_*_seconds histograms) and the drift
detector's Metrics are fed synthetic traffic in a thread and served over real HTTP on loopback; a real
Debian `prometheus` scrapes them every second with the target labels the chart's PodMonitor and
ServiceMonitor give (job, namespace) and loads the chart's rules. Each dashboard query, with Grafana's
variables filled in, must then return at least one series. kube-state-metrics series (retrain Jobs)
cannot exist here: those queries are listed and skipped, the report says so.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from contextlib import suppress

import numpy as np
import pytest
import yaml
from chartlib import render_chart
from conftest import dashboard_files, expressions, load
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
MODEL, NAMESPACE = "churn", "models"
PREDICTOR_JOB = f"{NAMESPACE}/kmm-kserve-model-monitoring-predictor"
DRIFT_JOB = "kmm-kserve-model-monitoring-drift-detector"
FEATURES = ["mean_radius", "mean_texture", "segment"]
# Grafana's $__rate_interval is max(4 x scrape interval, step): 4s here; 10s leaves room for jitter.
VARIABLES = {
    "${model_name:regex}": MODEL,
    "${retrain_job_prefix}": "retrain-",
    "$__rate_interval": "10s",
    "$__range_s": "3600",
    "$training_namespace": NAMESPACE,
    "$model_name": MODEL,
    "$namespace": NAMESPACE,
}
NEEDS_KUBE_STATE_METRICS = "kube_job_"
DEADLINE_SECONDS = 120  # how long to wait for data, not a performance target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exporter:
    """A /metrics endpoint on loopback serving the given registries."""

    def __init__(self, *registries: CollectorRegistry):
        body = lambda: b"".join(generate_latest(r) for r in registries)  # noqa: E731

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = body()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def predictor_registry():
    """The predictor's real metric class; KServe's stage histograms live in the default registry."""
    from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME
    from monitored_predictor.monitoring import PROBABILITY_BUCKETS, PredictorMetrics

    registry = CollectorRegistry()
    metrics = PredictorMetrics(
        MODEL, FEATURES, np.array([True, True, False]), PROBABILITY_BUCKETS, 100.0, registry
    )
    rng = np.random.default_rng(7)

    def tick():
        features = np.column_stack([rng.normal(14, 3, 8), rng.normal(19, 4, 8), rng.integers(0, 3, 8)])
        metrics.record_batch(features, rng.uniform(0, 1, 8), True)
        metrics.latency.observe(float(rng.uniform(0.002, 0.05)))
        metrics.record_error("wrong_feature_count")
        for hist in (PRE_HIST_TIME, PREDICT_HIST_TIME, POST_HIST_TIME):
            hist.labels(model_name=MODEL).observe(float(rng.uniform(0.0001, 0.01)))

    return [registry, REGISTRY], tick


def drift_detector_registry():
    """The drift detector's real metric class, fed checks, events, violations and feedback."""
    from drift_detector.metrics import Metrics

    registry = CollectorRegistry()
    metrics = Metrics(MODEL, registry)
    metrics.storage_ok.set(1)  # the service sets its function from the log's state: healthy storage here
    rng = np.random.default_rng(11)

    def tick():
        metrics.event("request", "accepted", 8)
        metrics.event("response", "accepted", 8)
        metrics.event("request", "invalid_json")
        metrics.event("feedback", "matched", 4)
        metrics.quality({("mean_radius", "out_of_range"): 1, ("segment", "unseen_category"): 1})
        metrics.window_samples.labels(MODEL).set(float(rng.integers(100, 1000)))
        columns = [
            {"name": "mean_radius", "stattest": "ks", "score": 0.001, "drifted": True},
            {"name": "mean_texture", "stattest": "ks", "score": 0.4, "drifted": False},
            {"name": "segment", "stattest": "chisquare", "score": 0.02, "drifted": True},
        ]
        result = {
            "drift_share": 2 / 3,
            "dataset_drift": True,
            "columns": columns,
            "prediction_drift": {"score": 0.01, "stattest": "ks", "drifted": True},
            "multivariate": {
                "method": "pca_reconstruction",
                "value": float(rng.uniform(2.0, 3.5)),
                "lower_threshold": 2.2,
                "upper_threshold": 2.9,
                "drift_detected": True,
            },
            "segments": [
                {"column": "segment", "value": "a", "drift_share": 2 / 3, "dataset_drift": True},
                {"column": "segment", "value": "_other_", "drift_share": None, "dataset_drift": None},
            ],
            "performance": {"accuracy": 0.91, "f1": 0.9, "roc_auc": 0.95, "samples": 40},
            "estimated_performance": {
                "method": "cbpe",
                "metrics": {
                    name: {
                        "value": value,
                        "lower_threshold": 0.85,
                        "upper_threshold": 1.0,
                        "alert": value < 0.85,
                    }
                    for name, value in (
                        ("accuracy", float(rng.uniform(0.8, 0.95))),
                        ("f1", 0.9),
                        ("roc_auc", 0.96),
                    )
                },
            },
        }
        metrics.record_check(result, float(rng.uniform(0.01, 0.1)), time.time())

    return [registry], tick


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    work = tmp_path_factory.mktemp("prometheus")
    pred_registries, pred_tick = predictor_registry()
    drift_registries, drift_tick = drift_detector_registry()
    exporters = [Exporter(*pred_registries), Exporter(*drift_registries)]
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            pred_tick()
            drift_tick()
            stop.wait(0.25)

    threading.Thread(target=feed, daemon=True).start()

    rule = next(
        d
        for d in render_chart(set_values={"modelName": MODEL}, namespace=NAMESPACE)
        if d["kind"] == "PrometheusRule"
    )
    (work / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    scrape = [
        {
            "job_name": job,
            "static_configs": [{"targets": [f"127.0.0.1:{e.port}"], "labels": {"namespace": NAMESPACE}}],
        }
        for job, e in ((PREDICTOR_JOB, exporters[0]), (DRIFT_JOB, exporters[1]))
    ]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(work / "rules.yaml")],
        "scrape_configs": scrape,
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
        log.close()
        for exporter in exporters:
            exporter.close()


def query(base: str, expr: str) -> list | None:
    """Result of an instant query, or None when Prometheus is not answering yet."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
    except OSError:
        return None
    assert body["status"] == "success", body
    return body["data"]["result"]


def fill(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in dashboard_files():
        out += [(f"{path.name}: {where}", fill(expr)) for where, expr in expressions(load(path))]
    return out


def test_every_panel_returns_data(prometheus):
    queries = [(w, e) for w, e in panel_queries() if NEEDS_KUBE_STATE_METRICS not in e]
    assert len(queries) > 40
    empty = dict(queries)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while empty and time.monotonic() < deadline:
        for where, expr in list(empty.items()):
            if query(prometheus, expr):
                del empty[where]
        time.sleep(1)
    assert not empty, "queries without data:\n" + "\n".join(f"{w}: {e}" for w, e in empty.items())


def test_variables_offer_the_namespace_and_the_model(prometheus):
    for label, value in (("namespace", NAMESPACE), ("model_name", MODEL)):
        match = '{__name__=~"model_predictions_total|model_drift_score"}'
        url = f"{prometheus}/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert value in json.load(resp)["data"], label


def test_only_retrain_job_queries_need_kube_state_metrics():
    """The queries this local check cannot answer are exactly the kube-state-metrics ones."""
    skipped = [w for w, e in panel_queries() if NEEDS_KUBE_STATE_METRICS in e]
    assert skipped and all("kserve-model-quality.json" in w for w in skipped), skipped


def get(base: str, path: str) -> dict:
    with urllib.request.urlopen(f"{base}{path}", timeout=5) as resp:
        return json.load(resp)["data"]


def test_chart_rules_evaluate_cleanly_on_the_images_series(prometheus):
    """Every rule of the chart evaluates without error (no many-to-many joins at run time), and the
    synthetic traffic raises exactly the alerts it should: dataset drift (2 of 3 features drifted),
    multivariate drift, drift in segment a, prediction drift, an estimated accuracy below its
    threshold, an error ratio of 50% and 0.25 data quality violations per row; the drift detector is
    found by its job and namespace, so no absent() alert, and its storage is healthy and its log replay
    clean, so no storage or log damage alert."""
    expected = {
        "KServeModelDataDriftDetected",
        "KServeModelMultivariateDrift",
        "KServeModelSegmentDrift",
        "KServeModelPredictionDrift",
        "KServeModelEstimatedPerformanceLow",
        "KServeModelErrorRatioHigh",
        "KServeModelDataQualityViolations",
    }
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        with suppress(OSError):
            rules = [r for g in get(prometheus, "/api/v1/rules")["groups"] for r in g["rules"]]
            active = {a["labels"]["alertname"] for a in get(prometheus, "/api/v1/alerts")["alerts"]}
            if all(r["health"] == "ok" for r in rules) and active >= expected:
                break
        assert time.monotonic() < deadline, [(r["name"], r["health"], r.get("lastError")) for r in rules]
        time.sleep(1)
    assert active == expected
    assert len(rules) >= 17
