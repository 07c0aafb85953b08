"""Parity: the batch job's windows equal the online detector's, window by window.

The agent (blob mode) logged real traffic to S3; the batch job reads those objects with the local and
the Spark engine. The online detector gets the same records, in the batch job's order, as the binary
CloudEvents the agent would have sent it in HTTP mode. Every result must match: rows, predictions,
verdicts and scores (float tolerance 1e-9), the events each side accepted, ignored and refused, and the
joins each side matched and evicted. Twice: with the bounds far away but for one call with more rows than a
window holds, and with a pending table small enough that joins are evicted by bytes and a heavy call is
refused (conftest.BOUNDS_CONFIG).
"""

from __future__ import annotations

import math
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import (
    BOUNDS_CONFIG,
    BUCKET,
    BUILD,
    DETECTOR_CONFIG,
    MIN_SAMPLES,
    MODEL,
    PYTHON,
    WINDOW_SIZE,
    detector_config,
)
from drift_detector.batch import cli, logs
from drift_detector.batch.results import RESULTS_JSONL, RESULTS_PARQUET, SUMMARY, read_jsonl
from drift_detector.config import Settings
from drift_detector.decode import REQUEST_TYPE, RESPONSE_TYPE
from prometheus_client.parser import text_string_to_metric_families

from demo.processes import ManagedProcess, free_port, http_ok
from demo.traffic import Client

FORMATS = ("parquet", "json")
TIMES = {"opened_at", "closed_at", "checked_at", "duration_seconds"}  # wall clock online, log time in batch
EVENT_TYPES = ("request", "response", "join")


@dataclass
class Online:
    history: list[dict]  # oldest first
    events: Counter  # (type, outcome) -> count, request/response/join only
    quality: Counter  # (feature_name, kind) -> data-quality violations
    open_window: dict


def records(fmt: str) -> list[logs.LogRecord]:
    filesystem, base = logs.filesystem(f"s3://{BUCKET}/{fmt}")
    return [rec for obj in logs.list_objects(filesystem, base) for rec in logs.read_records(filesystem, obj)]


def detector(run_dir: Path, name: str, config: dict) -> tuple[ManagedProcess, str]:
    port = free_port()
    cmd = [PYTHON, "-m", "drift_detector", "--reference", str(BUILD / "reference.parquet")]
    cmd += ["--model-name", MODEL, "--http-port", str(port), "--window-size", str(WINDOW_SIZE)]
    cmd += ["--min-samples", str(MIN_SAMPLES), "--config", str(detector_config(run_dir, config, name))]
    cmd += ["--data-dir", str(run_dir / name / "data"), "--reports-dir", str(run_dir / name / "reports")]
    env = {**os.environ, "DRIFT_DETECTOR_HTTP_HOST": "127.0.0.1"}
    proc = ManagedProcess(name, cmd, run_dir / f"{name}.log", env=env).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: http_ok(f"{url}/readyz"), 120, "ready")
    return proc, url


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return orjson.loads(resp.read())


def replay(url: str, recs: list[logs.LogRecord]) -> None:
    """Each record as the binary-mode CloudEvent the agent sends in HTTP mode, one after another."""
    client = Client()
    for rec in recs:
        headers = {"Ce-Specversion": "1.0", "Ce-Id": rec.id, "Ce-Type": rec.req_type, "Ce-Source": "replay"}
        headers["Content-Type"] = rec.content_type
        if rec.metadata:
            headers["Ce-Metadata"] = rec.metadata
        status, _, body = client.request("POST", url + "/", rec.body, headers)
        assert status < 500, body


def wait_checked(url: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        window = get_json(url + "/api/v1/drift")["open_window"] if _has_result(url) else None
        if window is not None and window["closed_unchecked"] == 0:
            return window
        time.sleep(0.3)
    raise AssertionError(f"{url}: closed windows still unchecked after {timeout}s")


def _has_result(url: str) -> bool:
    try:
        get_json(url + "/api/v1/drift")
        return True
    except urllib.error.HTTPError:
        return False


def detector_counts(url: str) -> tuple[Counter, Counter]:
    """drift_detector_events_total by (type, outcome) for request/response/join, and
    drift_detector_data_quality_violations_total by (feature_name, kind), from /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    events: Counter = Counter()
    quality: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if not sample.value:
                continue
            if sample.name == "drift_detector_events_total" and labels["type"] in EVENT_TYPES:
                events[(labels["type"], labels["outcome"])] = int(sample.value)
            elif sample.name == "drift_detector_data_quality_violations_total":
                quality[(labels["feature_name"], labels["kind"])] = int(sample.value)
    return events, quality


def run_online(run_dir: Path, name: str, config: dict) -> dict[str, Online]:
    """The online detector's results for each format's records, one detector per format."""
    out = {}
    for fmt in FORMATS:
        proc, url = detector(run_dir, f"{name}-{fmt}", config)
        try:
            replay(url, records(fmt))
            window = wait_checked(url)
            history = get_json(url + "/api/v1/drift/history?limit=1000")["results"][::-1]
            out[fmt] = Online(history, *detector_counts(url), window)
        finally:
            proc.stop()
    return out


@pytest.fixture(scope="session")
def online(run_dir, blob_logs) -> dict[str, Online]:
    return run_online(run_dir, "detector", DETECTOR_CONFIG)


@pytest.fixture(scope="session")
def online_bounds(run_dir, blob_logs) -> dict[str, Online]:
    return run_online(run_dir, "detector-bounds", BOUNDS_CONFIG)


def run_batch(
    run_dir: Path, fmt: str, engine: str, config: dict = DETECTOR_CONFIG, name: str = "batch"
) -> Path:
    out = run_dir / f"{name}-{fmt}-{engine}"
    argv = ["--logs", f"s3://{BUCKET}/{fmt}", "--reference", str(BUILD / "reference.parquet")]
    argv += ["--model-name", MODEL, "--window-size", str(WINDOW_SIZE), "--min-samples", str(MIN_SAMPLES)]
    argv += ["--engine", engine, "--out", str(out), "--config", str(detector_config(run_dir, config, name))]
    assert cli.main(argv) == 0
    return out


def assert_same(batch, online, path: str = "result") -> None:
    """Equal structure and values; floats within 1e-9 (relative), NaN equal to NaN; times skipped."""
    if isinstance(batch, dict):
        assert isinstance(online, dict) and batch.keys() == online.keys(), f"{path}: keys differ"
        for key in batch:
            if key not in TIMES:
                assert_same(batch[key], online[key], f"{path}.{key}")
    elif isinstance(batch, list):
        assert isinstance(online, list) and len(batch) == len(online), f"{path}: lengths differ"
        for i, (a, b) in enumerate(zip(batch, online, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(batch, float) and not isinstance(online, bool):
        assert isinstance(online, int | float), f"{path}: {batch!r} vs {online!r}"
        same = math.isclose(batch, online, rel_tol=1e-9, abs_tol=1e-12)
        assert same or (math.isnan(batch) and math.isnan(online)), f"{path}: {batch!r} vs {online!r}"
    else:
        assert batch == online, f"{path}: {batch!r} vs {online!r}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_logs_hold_what_was_sent(blob_logs, fmt):
    """The reader gives back every call the agent logged: each sent body once, responses for the calls
    answered 200, every response joined to a request by id."""
    traffic = blob_logs[fmt]
    recs = records(fmt)
    requests = [r for r in recs if r.req_type == REQUEST_TYPE]
    responses = [r for r in recs if r.req_type == RESPONSE_TYPE]
    assert len(requests) == traffic.calls and len(responses) == traffic.answered_200
    assert Counter(r.body for r in requests if r.body) == Counter(traffic.bodies)
    assert {r.id for r in responses} <= {r.id for r in requests}


def assert_parity(out: Path, expected: Online) -> tuple[Counter, dict]:
    """The batch run's windows, events, data quality and open window equal the online detector's;
    returns the events and the open window, for the caller's checks of what the traffic crossed."""
    batch = read_jsonl(out / RESULTS_JSONL)
    assert len(batch) >= 6, f"only {len(batch)} windows: the traffic should close at least six"
    verdicts = [r["dataset_drift"] for r in batch]
    assert True in verdicts and False in verdicts, f"verdicts {verdicts}: want clean and drifted windows"
    assert [r["window"]["seq"] for r in batch] == [r["window"]["seq"] for r in expected.history]
    for b, o in zip(batch, expected.history, strict=True):
        assert_same(b, o, f"window {b['window']['seq']}")
    summary = orjson.loads((out / SUMMARY).read_bytes())
    events = Counter({(e["type"], e["outcome"]): e["count"] for e in summary["events"]})
    assert events == expected.events
    assert events[("request", "ignored")] > 0 and events[("request", "wrong_feature_count")] > 0
    quality = Counter({(q["feature_name"], q["kind"]): q["count"] for q in summary["data_quality"]})
    assert quality == expected.quality and sum(quality.values()) > 0
    opened = summary["open_window"]
    for key in ("rows", "pending_joins", "pending_bytes"):
        assert opened[key] == expected.open_window[key], f"open window {key}"
    return events, opened


def too_many_rows(events: Counter) -> None:
    """The call with more rows than a window holds: refused both ways, 413 too_many_rows."""
    assert events[("request", "too_many_rows")] == 1 and events[("response", "too_many_rows")] == 1


@pytest.mark.parametrize("engine", ["local", "spark"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_batch_equals_online(run_dir, online, fmt, engine, request):
    if engine == "spark":
        request.getfixturevalue("spark")
    events, _ = assert_parity(run_batch(run_dir, fmt, engine), online[fmt])
    too_many_rows(events)
    assert not any(outcome.startswith("evicted") for _, outcome in events)


@pytest.mark.parametrize("engine", ["local", "spark"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_batch_equals_online_across_bounds(run_dir, online_bounds, fmt, engine, request):
    """A pending table of BOUNDS_CONFIG's bytes: joins evicted by bytes (requests, and responses whose
    request went first), the heavy call refused 413 pending_too_large, its response pending alone."""
    if engine == "spark":
        request.getfixturevalue("spark")
    out = run_batch(run_dir, fmt, engine, BOUNDS_CONFIG, "batch-bounds")
    events, opened = assert_parity(out, online_bounds[fmt])
    too_many_rows(events)
    assert events[("request", "pending_too_large")] == 1
    assert events[("join", "evicted_request")] > 0 and events[("join", "evicted_response")] > 0
    assert events[("join", "matched")] > 0, "the bound should evict some joins, not all"
    assert len(records(fmt)) < Settings().pending_max_entries, "the table never fills by count: by bytes"
    assert 0 < opened["pending_bytes"] <= BOUNDS_CONFIG["pending_max_bytes"]


def test_parquet_results_are_the_jsonl_results(run_dir, online):
    out = run_batch(run_dir, "parquet", "local")
    table = pq.read_table(out / RESULTS_PARQUET).to_pylist()
    lines = read_jsonl(out / RESULTS_JSONL)
    assert [orjson.loads(row["result"]) for row in table] == lines
    assert [row["seq"] for row in table] == [r["window"]["seq"] for r in lines]
    assert [row["dataset_drift"] for row in table] == [r["dataset_drift"] for r in lines]


def test_spark_names_an_unreadable_object(run_dir, s3, spark, capsys):
    """An object the executors cannot read ends the run as locally: exit 2, one line naming it."""
    import boto3

    key = "broken/ns/isvc/predictor/payloads/0a-request.parquet"
    boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"]).put_object(
        Bucket=BUCKET, Key=key, Body=b"not parquet"
    )
    out = run_dir / "batch-broken"
    argv = ["--logs", f"s3://{BUCKET}/broken", "--reference", str(BUILD / "reference.parquet")]
    argv += ["--window-size", str(WINDOW_SIZE), "--min-samples", str(MIN_SAMPLES), "--engine", "spark"]
    assert cli.main([*argv, "--out", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("drift_detector batch: cannot read") and key in last, last
    assert not (out / RESULTS_JSONL).exists()
