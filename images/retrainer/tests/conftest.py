"""A real Debian Prometheus, started once per session on a free loopback port and loaded with
backfilled drift series (promtool tsdb create-blocks-from openmetrics) before it starts."""

from __future__ import annotations

import math
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import TRAIN_IMAGE

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
STEP = 30  # seconds between backfilled samples
HISTORY = 60 * 60  # one hour of data before the evaluation time

NAN = math.nan


@dataclass(frozen=True)
class Series:
    """One model_drift_score series: value(t) for t seconds before the evaluation time, None = no sample."""

    model: str
    namespace: str
    value: Callable[[int], float | None]


def _constant(v: float) -> Callable[[int], float | None]:
    return lambda ago: v


# Threshold 0.5, sustainedFor 15m in the tests. `ago` counts seconds back from the evaluation time.
SCENARIO = [
    Series("sustained", "ml", _constant(0.8)),  # over the threshold the whole hour -> create
    Series("spike", "ml", lambda ago: 0.9 if ago < 300 else 0.1),  # only the last 5 minutes -> not sustained
    Series("calm", "ml", _constant(0.2)),  # never over -> below threshold
    Series("nan-model", "ml", _constant(NAN)),  # detector exports NaN -> value_nan
    Series("newcomer", "ml", lambda ago: 0.9 if ago < 360 else None),  # 6 minutes of history -> too little
    Series("gone", "ml", lambda ago: 0.9 if ago > 1800 else None),  # stopped 30 minutes ago -> missing
    Series("Fraud_Model.v2/EU ünïcode", "team-a", _constant(0.7)),  # nasty name -> create, safe name
    Series("sustained", "other", _constant(0.6)),  # same model name, other namespace -> its own Job
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(series: list[Series], end: int) -> str:
    lines = ["# HELP model_drift_score Share of drifted features.", "# TYPE model_drift_score gauge"]
    for s in series:
        labels = f'model_name="{_escape(s.model)}",namespace="{_escape(s.namespace)}"'
        for ago in range(HISTORY, -1, -STEP):
            value = s.value(ago)
            if value is None:
                continue
            text = "NaN" if math.isnan(value) else repr(value)
            lines.append(f"model_drift_score{{{labels}}} {text} {end - ago}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LoadedPrometheus:
    url: str
    at: int  # evaluation time: the last backfilled sample


def wait_ready(url: str, proc: subprocess.Popen, log: Path, context: ssl.SSLContext | None = None) -> None:
    """Wait for Prometheus' /-/ready (https with `context`), failing early if the process died."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"prometheus not ready after 30s: {log.read_text()[-2000:]}")


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """No RETRAINER_* settings from the developer's shell, and never a real cluster."""
    for name in list(os.environ):
        if name.startswith("RETRAINER_") or name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))


@pytest.fixture
def pass_environment(clean_environment, monkeypatch):
    """clean_environment plus the training image a pass needs to build its Jobs."""
    monkeypatch.setenv("RETRAINER_JOB_IMAGE", TRAIN_IMAGE)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedPrometheus]:
    if not (Path(PROMETHEUS).exists() and Path(PROMTOOL).exists()):
        pytest.fail("Debian prometheus and promtool are required (ci/install-tools.sh installs them)")
    root = tmp_path_factory.mktemp("prometheus")
    data = root / "data"
    data.mkdir()
    # Aligned to the minute and two minutes in the past, so the head block never overlaps the data.
    end = (int(time.time()) // 60) * 60 - 120
    source = root / "drift.om"
    source.write_text(openmetrics(SCENARIO, end), encoding="utf-8")
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
    )
    config = root / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n", encoding="utf-8")
    log = root / "prometheus.log"
    port = free_port()
    with log.open("w") as log_handle:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=2d",
            ],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield LoadedPrometheus(url=url, at=end)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
