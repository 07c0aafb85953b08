"""Shared fixtures: a generated reference, the real service as a subprocess, KServe-format CloudEvents."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DEMO_REFERENCE = REPO / "build" / "demo" / "reference.parquet"
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
FEATURES = ["f_a", "f_b", "color"]


def make_reference(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "f_a": rng.normal(0.0, 1.0, n),
            "f_b": rng.uniform(0.0, 10.0, n),
            "color": rng.choice(["red", "green", "blue"], n),
        }
    )
    df["prediction"] = 1.0 / (1.0 + np.exp(-df["f_a"]))
    df["target"] = (rng.uniform(size=n) < df["prediction"]).astype(int)
    return df


def sample_rows(n: int, seed: int, shift: float = 0.0) -> list[dict]:
    """Rows like the reference (shift moves f_a and f_b: drift)."""
    rng = np.random.default_rng(seed)
    colors = ["red", "green", "blue"]
    return [
        {
            "f_a": float(rng.normal(shift, 1.0)),
            "f_b": float(rng.uniform(0.0, 10.0) + shift * 3),
            "color": colors[int(rng.integers(0, 3))],
        }
        for _ in range(n)
    ]


@pytest.fixture(scope="session")
def reference_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "reference.parquet"
    make_reference().to_parquet(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kserve_headers(event_id: str, event_type: str, content_type: str = "application/json", **extra) -> dict:
    """Headers exactly as KServe's logger (cloudevents sdk-go, binary mode) sets them."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    headers = {
        "Ce-Specversion": "1.0",
        "Ce-Id": event_id,
        "Ce-Type": event_type,
        "Ce-Source": "http://localhost:9081/",
        "Ce-Time": now,
        "Ce-Recordedtime": now,
        "Ce-Inferenceservicename": "demo-model",
        "Ce-Namespace": "models",
        "Ce-Component": "predictor",
        "Ce-Endpoint": "",
        "Ce-Metadata": "{}",
        "Content-Type": content_type,
    }
    headers.update(extra)
    return headers


class Server:
    """The real service (`python -m drift_detector`) on a free loopback port."""

    def __init__(self, tmp: Path, reference: Path, config: dict | None = None, **flags):
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tmp / "data"
        self.reports_dir = tmp / "reports"
        self.config = {"http_host": "127.0.0.1", **(config or {})}
        (tmp / "config.yaml").write_text(yaml.safe_dump(self.config))
        self.args = [
            sys.executable, "-m", "drift_detector",
            "--reference", str(reference), "--http-port", str(self.port),
            "--data-dir", str(self.data_dir), "--reports-dir", str(self.reports_dir),
            "--config", str(tmp / "config.yaml"), "--model-name", "demo-model",
        ]  # fmt: skip
        for flag, value in flags.items():
            self.args += ["--" + flag.replace("_", "-"), str(value)]
        self.proc: subprocess.Popen | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self, timeout: float = 60) -> Server:
        log = open(self.tmp / "server.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log()[-3000:]}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout}s: {self.log()[-3000:]}")

    def log(self) -> str:
        return (self.tmp / "server.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, like an OOM kill or a node failure."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def post_event(self, event_id: str, event_type: str, body: dict | bytes, **extra) -> httpx.Response:
        data = body if isinstance(body, bytes) else httpx._content.json_dumps(body).encode()
        return self.client.post("/", content=data, headers=kserve_headers(event_id, event_type, **extra))

    def send_pair(self, instances: list, predictions: list, event_id: str | None = None) -> str:
        event_id = event_id or str(uuid.uuid4())
        assert self.post_event(event_id, REQUEST, {"instances": instances}).status_code == 200
        assert self.post_event(event_id, RESPONSE, {"predictions": predictions}).status_code == 200
        return event_id

    def metrics(self) -> dict[str, float]:
        """Sample name with sorted labels -> value, from the real /metrics text."""
        from prometheus_client.parser import text_string_to_metric_families

        out = {}
        for family in text_string_to_metric_families(self.client.get("/metrics").text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
        return out

    def metric(self, name: str, **labels) -> float:
        labels.setdefault("model_name", "demo-model")
        key = f"{name}{{{','.join(f'{k}={v}' for k, v in sorted(labels.items()))}}}"
        return self.metrics().get(key, 0.0)

    def window(self) -> dict:
        return self.client.get("/readyz").json()["open_window"]

    def wait_for(self, predicate, timeout: float = 30, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; log: {self.log()[-2000:]}")


@pytest.fixture
def make_server(tmp_path, reference_path):
    servers: list[Server] = []

    def make(config: dict | None = None, reference: Path | None = None, subdir: str = "s", **flags) -> Server:
        tmp = tmp_path / subdir
        tmp.mkdir(exist_ok=True)
        server = Server(tmp, reference or reference_path, config, **flags)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
        server.client.close()
