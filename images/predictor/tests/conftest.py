"""Shared fixtures: real model directories and the real predictor as a subprocess on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[3]
MAKE_MODEL = REPO / "demo" / "make_model.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Predictor:
    """`python -m monitored_predictor` on a free loopback port, stopped with SIGTERM."""

    def __init__(self, model_dir: Path, *flags: str, model_name: str = "demo", env: dict | None = None):
        self.model_name = model_name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "monitored_predictor", "--model_dir", str(model_dir),
            "--model_name", model_name, "--http_host", "127.0.0.1", "--http_port", str(self.port),
            "--enable_grpc", "false", *flags,
        ]  # fmt: skip
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout: float = 90) -> Predictor:
        # A file, not a pipe: KServe logs every request and a full pipe would block the server.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"predictor exited {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                if self.client.get("/v2/health/ready").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"predictor not ready within {timeout}s")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        self.client.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    # --- requests ----------------------------------------------------------------------------------
    def v1(self, body, headers: dict | None = None) -> httpx.Response:
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers = {"content-type": "application/json", **(headers or {})}
        return self.client.post(f"/v1/models/{self.model_name}:predict", content=content, headers=headers)

    def v2(self, body, headers: dict | None = None) -> httpx.Response:
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers = {"content-type": "application/json", **(headers or {})}
        return self.client.post(f"/v2/models/{self.model_name}/infer", content=content, headers=headers)

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        """Every sample on /metrics, keyed by (sample name, frozenset of label items)."""
        text = self.client.get("/metrics").text
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def sample(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monitored_predictor", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- model directories --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The real demo: demo/make_model.py run as `make demo-model` runs it."""
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, str(MAKE_MODEL), "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def demo_model_dir(demo_dir) -> Path:
    return demo_dir / "model"


@pytest.fixture(scope="session")
def holdout(demo_dir) -> pd.DataFrame:
    return pd.read_parquet(demo_dir / "holdout.parquet")


@pytest.fixture(scope="session")
def feature_names(demo_model_dir) -> list[str]:
    return [f["name"] for f in json.loads((demo_model_dir / "schema.json").read_text())["features"]]


@pytest.fixture(scope="session")
def demo_estimator(demo_model_dir):
    return joblib.load(demo_model_dir / "model.joblib")


@pytest.fixture(scope="session")
def regression_model_dir(tmp_path_factory) -> Path:
    """A LinearRegression on three named features, fitted on a DataFrame (feature_names_in_), no schema."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["alpha", "beta", "gamma"])
    target = 2 * frame["alpha"] - frame["beta"] + 0.5 * frame["gamma"] + 3
    out = tmp_path_factory.mktemp("regression")
    joblib.dump(LinearRegression().fit(frame, target), out / "model.joblib")
    return out


@pytest.fixture(scope="session")
def categorical_model_dir(tmp_path_factory) -> Path:
    """A pipeline with a one-hot encoded string feature; schema.json marks it categorical."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"size": rng.normal(size=300), "segment": rng.choice(["a", "b", "c"], size=300)})
    target = ((frame["size"] > 0) ^ (frame["segment"] == "c")).astype(int)
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["segment"]), remainder="passthrough"
        ),
        LogisticRegression(),
    ).fit(frame, target)
    out = tmp_path_factory.mktemp("categorical")
    joblib.dump(model, out / "model.joblib")
    schema = {
        "features": [{"name": "size", "type": "numeric"}, {"name": "segment", "type": "categorical"}],
        "output": {"kind": "probability", "classes": [0, 1], "positive_class": 1},
    }
    (out / "schema.json").write_text(json.dumps(schema))
    return out


# --- running servers ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def predictor(demo_model_dir) -> Iterator[Predictor]:
    """The demo model with default settings except a small batch limit (max 50)."""
    server = Predictor(demo_model_dir, "--max_batch_size", "50").start()
    yield server
    server.stop()
