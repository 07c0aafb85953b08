"""Cost of one decision pass against a real Prometheus, by number of models.

Baseline: the latest value only (`sustainedFor: 0`, one instant query). Measured: the sustained
check (three queries with a 15m:1m subquery), and decide() over as many existing (finished) Jobs as
models, where half the models are over the threshold and each gets its Job manifest built.
A real /usr/bin/prometheus is loaded with one hour of backfilled series at 30 s (promtool tsdb
create-blocks-from openmetrics) on a free loopback port.

Run: .venv/bin/python images/retrainer/bench/bench_pass.py  (prints a markdown table)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from conftest import PROMETHEUS, PROMTOOL, Series, free_port, openmetrics, wait_ready  # noqa: E402
from helpers import existing_job, make_settings  # noqa: E402
from retrain_controller.decision import decide  # noqa: E402
from retrain_controller.prometheus import DriftSource  # noqa: E402

SIZES = (10, 100, 1000)
REPEATS = 7


def scenario() -> list[Series]:
    series = []
    for size in SIZES:
        for i in range(size):
            value = 0.8 if i % 2 else 0.2
            series.append(Series(f"model-{i}", f"set-{size}", lambda ago, v=value: v))
    return series


def median_ms(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="retrainer-bench-") as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        end = (int(time.time()) // 60) * 60 - 120
        print(f"backfilling {sum(SIZES)} series ...", file=sys.stderr)
        (root / "drift.om").write_text(openmetrics(scenario(), end))
        subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(root / "drift.om"), str(data)],
            check=True,
            capture_output=True,
        )
        (root / "prometheus.yml").write_text("global: {}\n")
        port, log = free_port(), root / "prometheus.log"
        with log.open("w") as handle:
            proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc, log)
            rows = [measure(f"http://127.0.0.1:{port}", size, end) for size in SIZES]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("| models | latest value only, baseline (ms) | sustained 15m check (ms) | ratio | decide() (ms) |")
    print("|---:|---:|---:|---:|---:|")
    for size, base, sustained, decide_ms in rows:
        print(f"| {size} | {base:.1f} | {sustained:.1f} | {sustained / base:.2f}x | {decide_ms:.2f} |")


def measure(url: str, size: int, at: int) -> tuple[int, float, float, float]:
    print(f"measuring {size} models ...", file=sys.stderr)
    query = f'max by (model_name, namespace) (model_drift_score{{namespace="set-{size}"}})'
    base_settings = make_settings(prometheus={"url": url}, query=query, sustainedFor="0")
    sustained_settings = make_settings(prometheus={"url": url}, query=query, maxConcurrent=size)
    base_source, sustained_source = DriftSource(base_settings), DriftSource(sustained_settings)
    observations, queries = sustained_source.observe(at)
    assert len(observations) == size, f"expected {size} models, got {len(observations)}"
    jobs = [
        existing_job(
            sustained_settings, o.model_name, namespace=o.model_namespace, name=f"j{i}", finished="Complete"
        )
        for i, o in enumerate(observations)
    ]
    base = median_ms(lambda: base_source.observe(at))
    sustained = median_ms(lambda: sustained_source.observe(at))
    decide_ms = median_ms(lambda: decide(observations, jobs, sustained_settings, queries, at))
    base_source.close()
    sustained_source.close()
    return size, base, sustained, decide_ms


if __name__ == "__main__":
    main()
