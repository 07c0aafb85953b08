"""The storage and log damage alerts on a real drift detector scraped by a real Prometheus: the chart's
rules (every `for` set to 0s) must fire with the value the detector itself reports, refused events on a
full volume and records lost to a log damaged on disk. The full volume is a tmpfs (root only: skipped
with the reason elsewhere)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import render_rule

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JOB = "kmm-kserve-model-monitoring-drift-detector"
DEADLINE_SECONDS = 60  # how long to wait for a scrape and an evaluation, not a performance target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def post(url: str, body: dict) -> int:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_for(what: str, probe):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return found


def metric(port: int, line_start: str) -> float:
    """Sum of the samples of /metrics whose line starts with line_start."""
    _, text = get(f"http://127.0.0.1:{port}/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


class Detector:
    """`python -m drift_detector` on loopback, started again on the same port and data dir."""

    def __init__(self, work: Path, data_dir: Path):
        self.port = free_port()
        self.work, self.data_dir = work, data_dir
        rng = np.random.default_rng(0)
        self.reference = work / "reference.parquet"
        frame = pd.DataFrame({"f_a": rng.normal(0, 1, 400), "f_b": rng.uniform(0, 10, 400)})
        frame["prediction"] = (frame["f_a"] > 0).astype(float)
        frame.to_parquet(self.reference)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["--reference", str(self.reference), "--model-name", "churn", "--data-dir", str(self.data_dir)]
        args += ["--reports-dir", str(self.work / "reports"), "--http-host", "127.0.0.1"]
        args += ["--http-port", str(self.port), "--window-size", "100000", "--fsync", "always"]
        log = (self.work / "detector.log").open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "drift_detector", *args], stdout=log, stderr=log)
        wait_for("the detector to answer", lambda: get(self.url("/healthz"))[0] == 200 or None)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def ingest(self, batches: int, rows: int = 20) -> list[int]:
        rng = np.random.default_rng(1)
        statuses = []
        for _ in range(batches):
            body = {
                "rows": [{"f_a": float(rng.normal()), "f_b": float(rng.uniform(0, 10)), "prediction": 1.0}]
            }
            body["rows"] *= rows
            statuses.append(post(self.url("/v1/ingest"), body))
        return statuses


@pytest.fixture
def stack(tmp_path):
    """(detector, prometheus url); the detector's data dir is tmp_path/data (a tmpfs if mounted first)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    detector = Detector(tmp_path, data_dir)
    spec = render_rule()["spec"]
    for group in spec["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = "0s"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    target = {"targets": [f"127.0.0.1:{detector.port}"], "labels": {"namespace": "models"}}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yaml")],
        "scrape_configs": [{"job_name": JOB, "static_configs": [target]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    tsdb = tmp_path / "tsdb"
    args = [f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tsdb}"]
    prom = subprocess.Popen(
        [PROMETHEUS, *args, f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log
    )
    try:
        yield detector, f"http://127.0.0.1:{port}"
    finally:
        detector.kill()
        prom.terminate()
        prom.wait(timeout=30)


def storage_reason(detector: Detector) -> str | None:
    """/readyz's reason once the detector is up and refusing for storage, else None."""
    status, body = get(detector.url("/readyz"))
    reason = json.loads(body).get("reason", "") if status == 503 else ""
    return reason if reason and "reference loading" not in reason else None


def firing(prometheus: str, name: str, value: float):
    """The alert's value once Prometheus reports it firing with `value`, else None."""
    _, body = get(f"{prometheus}/api/v1/alerts")
    for alert in json.loads(body)["data"]["alerts"]:
        if (alert["labels"]["alertname"], alert["state"], float(alert["value"])) == (name, "firing", value):
            assert alert["labels"]["model_name"] == "churn" and alert["labels"]["namespace"] == "models"
            return alert
    return None


@pytest.fixture
def tmpfs(tmp_path):
    """A 3 MiB tmpfs: no room for the log's next 4 MiB chunk from the start."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; this project's CI runs the rules tier as root")
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    yield mount_point
    if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)  # a process still holds it


def test_storage_failing_fires_on_a_full_volume_with_the_refused_event_count(tmpfs, stack):
    detector, prometheus = stack  # tmpfs comes first: the detector's data dir is the mounted tmpfs
    detector.start()
    # /healthz answers while the reference still loads; wait until /readyz names the storage problem.
    reason = wait_for("the storage reason in /readyz", lambda: storage_reason(detector))
    assert "room" in reason, reason
    statuses = detector.ingest(15)
    refused = statuses.count(503)
    assert refused >= 10, statuses
    assert (
        metric(detector.port, 'drift_detector_events_total{model_name="churn",outcome="storage_error"')
        == refused
    )
    alert = wait_for(
        "the storage alert", lambda: firing(prometheus, "KServeModelDriftDetectorStorageFailing", refused)
    )
    assert f"so they are lost ({refused} refused since it started)" in alert["annotations"]["description"]
    assert firing(prometheus, "KServeModelDriftDetectorLogDamaged", 0) is None


def test_log_damaged_fires_after_a_restart_on_a_log_damaged_mid_segment(stack):
    detector, prometheus = stack
    detector.start()
    wait_for("the detector to be ready", lambda: get(detector.url("/readyz"))[0] == 200 or None)
    assert detector.ingest(40) == [200] * 40
    detector.kill()
    segment = max((detector.data_dir / "wal").glob("wal-*.log"))
    data = bytearray(segment.read_bytes())
    used = len(data.rstrip(b"\0"))
    for offset in (used // 2, used // 2 + 1, used // 2 + 2):
        data[offset] ^= 0xFF
    segment.write_bytes(bytes(data))
    detector.start()
    ready = wait_for("the replay", lambda: ((r := get(detector.url("/readyz")))[0] == 200 and r[1]) or None)
    report = json.loads(ready)["log"]
    assert report["degraded"] and report["corrupt_records"] >= 1, report
    alert = wait_for(
        "the log damage alert",
        lambda: firing(prometheus, "KServeModelDriftDetectorLogDamaged", report["corrupt_records"]),
    )
    assert (
        f"at start: {report['corrupt_records']} acknowledged log records were lost"
        in alert["annotations"]["description"]
    )
    assert firing(prometheus, "KServeModelDriftDetectorStorageFailing", 0) is None
