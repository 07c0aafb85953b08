"""Debian's real prometheus on loopback, loaded with real series by promtool's OpenMetrics backfill."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kube_harness import Process, free_port, wait_until

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def openmetrics_gauge(name: str, series: dict[tuple[tuple[str, str], ...], float], start: int, end: int,
                      step: int = 15) -> str:  # fmt: skip
    """One gauge family in OpenMetrics text: each series holds its value at every step in [start, end]."""
    lines = [f"# TYPE {name} gauge"]
    for labels, value in series.items():
        rendered = ",".join(f'{key}="{val}"' for key, val in labels)
        lines += [f"{name}{{{rendered}}} {value} {ts}" for ts in range(start, end + 1, step)]
    return "\n".join(lines) + "\n# EOF\n"


@dataclass
class Prometheus:
    url: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(directory: Path, openmetrics: str) -> Prometheus:
    """Backfills the series into a fresh TSDB with promtool, then serves it (no scrape targets)."""
    directory.mkdir(parents=True, exist_ok=True)
    source, data = directory / "series.om", directory / "data"
    source.write_text(openmetrics)
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True, capture_output=True,
    )  # fmt: skip
    config = directory / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    port = free_port()
    argv = [
        PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d", "--log.level=warn",
    ]  # fmt: skip
    process = Process("prometheus", argv, directory / "prometheus.log")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until("/-/ready", process, ready, timeout=60)
    return Prometheus(url, process)


def now_aligned(step: int = 15) -> int:
    return int(time.time()) // step * step
