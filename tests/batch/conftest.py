"""Batch tier: KServe's agent in blob mode writes real payload logs into a real S3-compatible server
(moto's server mode) on loopback, in front of the real predictor; the batch job reads them.

The agent binds an abstract unix socket, so only one runs per network namespace: run the tier in a
namespace of its own when other agents run on the machine:
`unshare --net bash -c 'ip link set lo up && make test-batch'` (as root). One SparkSession serves the
whole session (Spark starts a JVM: seconds).
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from demo.agent import AgentConfig, KServeAgent  # noqa: E402
from demo.processes import ManagedProcess, free_port, http_ok  # noqa: E402
from demo.traffic import Client, DemoData, v1_body, v2_body  # noqa: E402

BUILD = REPO / "build" / "demo"
MODEL = "breast-cancer"
BUCKET = "payload-logs"
PYTHON = sys.executable
WINDOW_SIZE = 50
MIN_SAMPLES = 25
# Both sides: no pending entry expires during a run (the online side's clock is the wall clock, the
# batch side's the records' time), no check is skipped for a full queue, no reports.
DETECTOR_CONFIG = {
    "pending_ttl_seconds": 3600,
    "check_queue_size": 10000,
    "history_size": 1000,
    "reports_enabled": False,
}
# The service's bounds crossed (Service._within_bounds, _pending_full): a pending table of 2,000 bytes holds
# about two bodies of four rows (1-1.4 kB), so with four calls in flight the oldest pending joins are
# evicted by bytes (pending_max_entries, 10,000, is never reached), and the traffic's heavy call of
# HEAVY_ROWS rows (about 10 kB) is refused 413 pending_too_large.
BOUNDS_CONFIG = {**DETECTOR_CONFIG, "pending_max_bytes": 2000}
TOO_MANY_ROWS = WINDOW_SIZE + 10  # more rows than a window holds: 413 too_many_rows under any config
HEAVY_ROWS = 40  # within a window, over BOUNDS_CONFIG's pending_max_bytes


@dataclass
class Traffic:
    """What the test sent through the agent: bodies of the inference calls and the call counts."""

    bodies: list[bytes] = field(default_factory=list)
    calls: int = 0
    answered_200: int = 0


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    if not (BUILD / "model" / "model.joblib").exists():
        pytest.fail(f"{BUILD}/model is missing: run `make demo-model` (make test-batch does)")
    return tmp_path_factory.mktemp("batch")


@pytest.fixture(scope="session")
def s3(run_dir):
    """moto's S3 server on loopback, a bucket, and the AWS_* settings in this process's environment
    (Spark's Python workers inherit them; the agent gets them too)."""
    port = free_port()
    server = ManagedProcess(
        "moto", [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], run_dir / "moto.log"
    ).start()
    settings = {
        "AWS_ACCESS_KEY_ID": "batch-test",
        "AWS_SECRET_ACCESS_KEY": "batch-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        server.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/moto-api/"), 60, "serving S3")
        import boto3

        boto3.client("s3", endpoint_url=settings["AWS_ENDPOINT_URL"]).create_bucket(Bucket=BUCKET)
        yield settings
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def predictor(run_dir):
    port = free_port()
    cmd = [PYTHON, "-m", "monitored_predictor", "--model_name", MODEL, "--model_dir", str(BUILD / "model")]
    cmd += ["--http_port", str(port), "--http_host", "127.0.0.1", "--grpc_port", str(free_port())]
    cmd += ["--enable_grpc", "false", "--workers", "1"]
    proc = ManagedProcess("predictor", cmd, run_dir / "predictor.log").start()
    try:
        url = f"http://127.0.0.1:{port}"
        proc.wait_ready(lambda: http_ok(f"{url}/v2/models/{MODEL}/ready"), 120, "serving the model")
        yield port
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def spark(s3):
    """The session's one SparkSession (local, two cores); the engine uses it instead of its own."""
    from drift_detector.batch.spark import session

    active, _ = session("local[2]")
    yield active
    active.stop()


def blob_agent(run_dir: Path, predictor_port: int, fmt: str, env: dict) -> KServeAgent:
    config = AgentConfig(
        port=free_port(),
        component_port=predictor_port,
        log_url=f"s3://{BUCKET}/{fmt}",
        log_mode="all",
        inference_service=MODEL,
        namespace="batch-test",
        source_uri=f"{MODEL}-predictor-local",
        metadata_headers=("X-Request-Id",),
        store_path="payloads",
        store_format=fmt,
        batch_size=16,
        batch_interval="1s",
        marshaller_port=free_port(),
    )
    agent_env = {**os.environ, **env, "S3_USER_VIRTUAL_BUCKET": "false"}  # (sic) KServe's name: path style
    return KServeAgent(config, run_dir / f"agent-{fmt}.log", agent_env)


def send_traffic(agent_url: str, seed: int) -> Traffic:
    """Clean traffic, then drifted: v1 single and multi-instance calls, v2 tensors, metadata GETs
    (logged, no inference), calls the predictor refuses (logged request, no response), a call with more
    rows than a window holds and a heavy one, four at once so the agent's batches interleave requests and
    responses."""
    data = DemoData.load(BUILD)
    rng = np.random.default_rng(seed)
    clean = data.clean(260, rng)[data.features].to_numpy().tolist()
    drifted = data.drifted(140, rng)[data.features].to_numpy().tolist()
    calls: list[tuple[str, str, bytes | None, dict]] = []
    v1, v2 = f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"
    for rows in (clean, drifted):
        i = 0
        while i < len(rows):
            n = (1, 1, 3, 1, 4)[len(calls) % 5]
            chunk = rows[i : i + n]
            i += n
            body = v2_body(chunk) if len(calls) % 3 == 0 else v1_body(chunk)
            calls.append(
                ("POST", v2 if len(calls) % 3 == 0 else v1, body, {"X-Request-Id": f"call-{len(calls)}"})
            )
            if len(calls) % 37 == 0:
                calls.append(("GET", f"/v1/models/{MODEL}", None, {}))
            if len(calls) % 53 == 0:
                calls.append(("POST", v1, v1_body([row[:-2] for row in chunk]), {}))  # wrong feature count
    big = data.clean(TOO_MANY_ROWS + HEAVY_ROWS, rng)[data.features].to_numpy().tolist()
    for at, rows in ((len(calls) // 3, big[:TOO_MANY_ROWS]), (2 * len(calls) // 3, big[TOO_MANY_ROWS:])):
        calls.insert(at, ("POST", v1, v1_body(rows), {"X-Request-Id": f"call-{len(rows)}-rows"}))
    client = Client()
    traffic = Traffic(bodies=[c[2] for c in calls if c[2] is not None])

    def one(call) -> int:
        method, path, body, headers = call
        status, _, _ = client.request(
            method, agent_url + path, body, {"Content-Type": "application/json", **headers}
        )
        return status

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(one, calls))
    traffic.calls = len(calls)
    traffic.answered_200 = sum(s == 200 for s in statuses)
    return traffic


def count_records(fmt: str) -> int:
    from drift_detector.batch import logs

    filesystem, base = logs.filesystem(f"s3://{BUCKET}/{fmt}")
    objects = logs.list_objects(filesystem, base)
    return sum(len(logs.read_records(filesystem, obj)) for obj in objects)


def wait_stored(fmt: str, expected: int, timeout: float = 30.0) -> int:
    """The agent uploads a batch when it is full or a second old: wait for every record."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = count_records(fmt)
        if count >= expected:
            return count
        time.sleep(0.5)
    return count


@pytest.fixture(scope="session")
def blob_logs(run_dir, s3, predictor) -> dict[str, Traffic]:
    """Logs in both formats, one agent after the other (one per network namespace)."""
    written = {}
    for seed, fmt in enumerate(("parquet", "json")):
        agent = blob_agent(run_dir, predictor, fmt, s3).start().wait_ready()
        try:
            traffic = send_traffic(agent.config.url, seed)
            stored = wait_stored(fmt, traffic.calls + traffic.answered_200)
            assert stored == traffic.calls + traffic.answered_200, (
                f"{fmt}: the agent stored {stored} records for {traffic.calls} calls "
                f"({traffic.answered_200} answered 200); see {run_dir}/agent-{fmt}.log"
            )
        finally:
            agent.stop()
        written[fmt] = traffic
    return written


def detector_config(run_dir: Path, config: dict = DETECTOR_CONFIG, name: str = "drift-detector") -> Path:
    path = run_dir / f"{name}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path
