"""Benchmark: the batch job over KServe's blob-storage logs on Spark, against Evidently's legacy SparkEngine.

Data: gen_agent_logs.py's synthetic agent objects (cached under build/bench/agent-logs/), the demo
model's 30 features, a 5,000-row reference (so both engines pick the normed Wasserstein test for every
numeric column), clean and drifted blocks of traffic.

Ours: `python -m drift_detector batch --engine spark` in local mode with 1, then 2 executor cores,
timed end to end (Spark start, reading and decoding the objects, joining, windowing, checking).
Baseline: Evidently 0.7's legacy SparkEngine (DataDriftTable over the features plus ColumnDriftMetric
on the prediction) on the same windows, in local[1], timed per window for the check alone: it is
handed the decoded rows (rows.parquet), since it has no reader for the agent's logs, so its time
leaves out what ours spends on reading and decoding. Evidently's Spark engine is slow per window, so
it checks --evidently-windows windows, those where our scores sit nearest a threshold (where its
approximate Wasserstein can flip a verdict), and its total is extrapolated from those.

Prints two markdown tables (throughput with ratios; verdict agreement with every disagreement), each
number beside the machine's 1-minute load average, as the machine is shared.

    python images/drift-detector/bench/bench_batch.py            # 200,000 events, windows of 10,000
    python images/drift-detector/bench/bench_batch.py --big      # 10,000,000 events, windows of 50,000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling data generator
from drift_detector.stats.stattests import STATTESTS
from gen_agent_logs import ROOT, Params, ensure_logs

BIG = {"events": 10_000_000, "window_size": 50_000, "evidently_windows": 4}


class SessionCpu:
    """CPU seconds of every process in one session (the batch job's driver, its JVM, the Python workers),
    sampled from /proc: on a shared machine the CPU a run used is steadier than its wall time."""

    def __init__(self, sid: int, interval: float = 0.5):
        self.sid, self.interval = sid, interval
        self.ticks: dict[int, int] = {}  # pid -> last seen utime + stime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.sid:  # fields after "pid (comm)": state ppid pgrp session ...
                self.ticks[int(entry.name)] = int(fields[11]) + int(fields[12])

    def total(self) -> float:
        self.sample()
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.total()


@dataclass
class BatchRun:
    cores: int
    seconds: float
    cpu_seconds: float
    load: tuple[float, float]  # 1-minute load average before and after
    max_rss_mb: float
    results: list[dict]
    summary: dict


@dataclass
class EvidentlyWindow:
    seq: int
    load_seconds: float  # pandas -> Spark DataFrame, cached
    check_seconds: float
    check_cpu_seconds: float  # this process, Spark's JVM and its Python workers
    load: float
    columns: dict[str, tuple[float, bool, str]]  # name -> (score, drifted, stattest)
    dataset_drift: bool
    prediction: tuple[float, bool]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big", action="store_true", help=f"the full run: {BIG}")
    parser.add_argument("--events", type=int, default=int(env("BENCH_BATCH_EVENTS", "200000")))
    parser.add_argument("--window-size", type=int, default=int(env("BENCH_BATCH_WINDOW", "10000")))
    parser.add_argument(
        "--evidently-windows",
        type=int,
        default=int(env("BENCH_BATCH_EVIDENTLY_WINDOWS", "1")),
        help="windows Evidently checks: those with a score nearest its threshold (0: none)",
    )
    parser.add_argument("--cores", default="1,2", help="executor cores to run ours with, comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--saved", type=Path, help="print the tables of a run saved before (build/bench/batch-*.json)"
    )
    parser.add_argument(
        "--evidently-at", default="", help="with --saved: Evidently also checks these windows (e.g. 1,4)"
    )
    args = parser.parse_args(argv)
    if args.big:
        for name, value in BIG.items():
            setattr(args, name, value)
    return args


def load_average() -> float:
    return os.getloadavg()[0]


def run_batch(data: Path, cores: int, window_size: int) -> BatchRun:
    """One end-to-end run of the batch job on Spark local[cores], timed. time(1)'s peak RSS is the largest
    of the driver and the children it waited for: a floor for the JVM and Python workers, not their sum."""
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        out, rss_file = Path(tmp) / "out", Path(tmp) / "rss"
        command = [
            "/usr/bin/time", "-q", "-f", "%M", "-o", str(rss_file),
            sys.executable, "-m", "drift_detector", "batch",
            "--logs", str(data / "logs"), "--reference", str(data / "reference.parquet"),
            "--model-name", "bench-model", "--window-size", str(window_size),
            "--engine", "spark", "--spark-master", f"local[{cores}]", "--out", str(out),
        ]  # fmt: skip
        print(f"bench: batch job on local[{cores}]", file=sys.stderr, flush=True)
        before, start = load_average(), time.perf_counter()
        job = subprocess.Popen(command, start_new_session=True)
        meter = SessionCpu(job.pid)
        if job.wait() != 0:
            raise subprocess.CalledProcessError(job.returncode, command)
        seconds, after, cpu = time.perf_counter() - start, load_average(), meter.stop()
        results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        summary = json.loads((out / "summary.json").read_text())
        rss_mb = int(rss_file.read_text().split()[-1]) / 1024
    return BatchRun(cores, seconds, cpu, (before, after), rss_mb, results, summary)


def closest_calls(results: list[dict], wanted: int) -> list[int]:
    """Positions of the `wanted` windows whose column scores sit nearest their thresholds: where an
    approximate test can flip a verdict."""
    margin = [min(abs(s - t) for s, _, _, t in verdicts(r).values()) for r in results]
    return sorted(sorted(range(len(results)), key=margin.__getitem__)[: max(0, wanted)])


def evidently_session():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("bench-evidently")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.ui.showConsoleProgress", "false")  # its progress bars drown the bench's lines
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run_evidently(
    data: Path, window_size: int, seqs: list[int], features: list[str]
) -> list[EvidentlyWindow]:
    """Evidently's SparkEngine on rows [seq * window_size, (seq + 1) * window_size) of the join order."""
    if not seqs:
        return []
    print(
        f"bench: Evidently SparkEngine on windows at {seqs} (0-based; slow: minutes per window)",
        file=sys.stderr,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import evidently.legacy.spark.metrics.data_drift  # noqa: F401  registers the Spark implementations
        from evidently.legacy.metrics import ColumnDriftMetric, DataDriftTable
        from evidently.legacy.pipeline.column_mapping import ColumnMapping
        from evidently.legacy.report import Report
        from evidently.legacy.spark.engine import SparkEngine

    spark = evidently_session()
    meter = SessionCpu(os.getsid(0))  # this process, Spark's JVM and its Python workers
    cpu = meter.total
    columns = [*features, "prediction"]
    reference = spark.createDataFrame(pq.read_table(data / "reference.parquet", columns=columns).to_pandas())
    reference = reference.cache()
    reference.count()
    rows = pq.read_table(data / "rows.parquet", columns=columns)
    mapping = ColumnMapping(numerical_features=columns, categorical_features=[], prediction=None, target=None)
    out = []
    try:
        for seq in seqs:
            load, start = load_average(), time.perf_counter()
            window = rows.slice(seq * window_size, window_size).to_pandas()
            current = spark.createDataFrame(window).cache()
            current.count()
            loaded, loaded_cpu = time.perf_counter(), cpu()
            report = Report(metrics=[DataDriftTable(columns=features), ColumnDriftMetric("prediction")])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report.run(
                    reference_data=reference, current_data=current, column_mapping=mapping, engine=SparkEngine
                )
                table, prediction = (m["result"] for m in report.as_dict()["metrics"])
            checked, check_cpu = time.perf_counter(), cpu() - loaded_cpu
            current.unpersist()
            by_column = {
                name: (c["drift_score"], c["drift_detected"], c["stattest_name"])
                for name, c in table["drift_by_columns"].items()
            }
            out.append(
                EvidentlyWindow(
                    seq,
                    loaded - start,
                    checked - loaded,
                    check_cpu,
                    load,
                    by_column,
                    table["dataset_drift"],
                    (prediction["drift_score"], prediction["drift_detected"]),
                )
            )
            print(
                f"bench: Evidently window {seq}: {checked - loaded:.1f} s, {check_cpu:.1f} CPU s "
                f"(load average {load:.1f})",
                file=sys.stderr,
                flush=True,
            )
    finally:
        meter.stop()
        spark.stop()
    return out


@dataclass
class Disagreement:
    seq: int
    column: str
    ours: tuple[float, bool]
    theirs: tuple[float, bool]
    threshold: float


def verdicts(result: dict) -> dict[str, tuple[float, bool, str, float]]:
    """Our window result as column -> (score, drifted, Evidently's name of the test, threshold), the
    prediction included."""
    columns = [*result["columns"], *([result["prediction_drift"]] if result.get("prediction_drift") else [])]
    return {
        c["name"]: (c["score"], c["drifted"], STATTESTS[c["stattest"]].display_name, c["threshold"])
        for c in columns
    }


def compare(results: list[dict], theirs: list[EvidentlyWindow]) -> tuple[dict, list[Disagreement]]:
    """Verdict agreement of every column, the prediction and the dataset on the windows both checked."""
    counts = {"columns": 0, "columns_agree": 0, "datasets_agree": 0, "stattests_agree": 0, "max_diff": 0.0}
    disagreements = []
    for window in theirs:
        ours = verdicts(results[window.seq])
        counts["datasets_agree"] += results[window.seq]["dataset_drift"] == window.dataset_drift
        for name, (score, drifted, stattest) in {
            **window.columns,
            "prediction": (*window.prediction, ""),
        }.items():
            o_score, o_drifted, o_stattest, threshold = ours[name]
            counts["columns"] += 1
            counts["columns_agree"] += o_drifted == drifted
            counts["stattests_agree"] += name == "prediction" or o_stattest == stattest
            counts["max_diff"] = max(counts["max_diff"], abs(o_score - score))
            if o_drifted != drifted:
                disagreements.append(
                    Disagreement(
                        results[window.seq]["window"]["seq"],
                        name,
                        (o_score, o_drifted),
                        (score, drifted),
                        threshold,
                    )
                )
    return counts, disagreements


def comparable(results: list[dict]) -> list[dict]:
    """Results without the fields that differ between two runs of the same windows (times)."""
    return [{k: v for k, v in r.items() if k not in ("checked_at", "duration_seconds")} for r in results]


def print_throughput(args, runs: list[BatchRun], theirs: list[EvidentlyWindow], n_windows: int) -> None:
    events, per_window = args.events, 2 * args.window_size
    print(
        f"\nBatch drift over {events:,} logged events ({events // 2:,} inferences, "
        f"30 features + prediction), windows of {args.window_size:,} rows ({n_windows} windows), "
        "reference 5,000 rows\n"
    )
    print(
        "| engine | Spark master | wall s | CPU s | events/s | events / CPU s | vs Evidently (CPU) "
        "| scaling vs 1 core (wall) | driver peak RSS MB | load avg (start / end) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    base = None
    if theirs:
        wall = float(np.median([w.check_seconds for w in theirs]))
        cpu = float(np.median([w.check_cpu_seconds for w in theirs]))
        base, loads = per_window / cpu, [w.load for w in theirs]
        print(
            f"| Evidently legacy SparkEngine, check only, {len(theirs)} of {n_windows} windows "
            f"(baseline; totals extrapolated) | local[1] | {wall * n_windows:,.0f} | {cpu * n_windows:,.0f} "
            f"| {per_window / wall:,.0f} | {base:,.0f} | 1.0x | - | - | {min(loads):.1f} - {max(loads):.1f} |"
        )
    one_core = next((r for r in runs if r.cores == 1), None)
    for run in runs:
        per_cpu = events / run.cpu_seconds
        ratio = f"{per_cpu / base:.1f}x" if base else "-"
        scaling = f"{one_core.seconds / run.seconds:.2f}x" if one_core else "-"
        print(
            f"| drift_detector batch (ours), end to end | local[{run.cores}] | {run.seconds:,.0f} "
            f"| {run.cpu_seconds:,.0f} | {events / run.seconds:,.0f} | {per_cpu:,.0f} | {ratio} | {scaling} "
            f"| {run.max_rss_mb:,.0f} | {run.load[0]:.1f} / {run.load[1]:.1f} |"
        )


def print_agreement(runs: list[BatchRun], counts: dict, disagreements: list[Disagreement], theirs) -> bool:
    same = all(comparable(r.results) == comparable(runs[0].results) for r in runs)
    drifted = sum(r["dataset_drift"] for r in runs[0].results)
    print("\n| measure | value |")
    print("|---|---|")
    masters = ", ".join(f"local[{r.cores}]" for r in runs)
    print(f"| our results identical on {masters} | {'yes' if same else 'NO'} |")
    print(f"| windows with dataset drift (ours) | {drifted} of {len(runs[0].results)} |")
    if theirs:
        n = len(theirs)
        seqs = ", ".join(str(runs[0].results[w.seq]["window"]["seq"]) for w in theirs)
        print(f"| windows both engines checked (seq) | {n} ({seqs}) |")
        print(f"| dataset verdicts agree | {counts['datasets_agree']} of {n} |")
        agree, total = counts["columns_agree"], counts["columns"]
        print(f"| column verdicts agree (30 features + prediction) | {agree} of {total} |")
        same_tests = "yes" if counts["stattests_agree"] == total else "no"
        print(f"| same stattest on every feature | {same_tests} |")
        print(f"| max absolute score difference (normed Wasserstein) | {counts['max_diff']:.4f} |")
    if disagreements:
        print("\nDisagreements (Evidently's Spark Wasserstein bins each column into 1,000 histogram bins):\n")
        print(
            "| window | column | our score | Evidently score | threshold | ours drifted | Evidently drifted |"
        )
        print("|---:|---|---:|---:|---:|---|---|")
        for d in disagreements:
            print(
                f"| {d.seq} | {d.column} | {d.ours[0]:.4f} | {d.theirs[0]:.4f} | {d.threshold} "
                f"| {d.ours[1]} | {d.theirs[1]} |"
            )
    return same


def save(args, runs: list[BatchRun], theirs: list[EvidentlyWindow]) -> None:
    """Every measurement as JSON beside the data, to read again without rerunning."""
    path = ROOT / "build" / "bench" / f"batch-ev{args.events}-w{args.window_size}.json"
    doc = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": [asdict(r) for r in runs],
        "evidently": [asdict(w) for w in theirs],
    }
    path.write_text(json.dumps(doc))
    print(f"bench: measurements in {path}", file=sys.stderr)


def load_saved(path: Path) -> tuple[argparse.Namespace, list[BatchRun], list[EvidentlyWindow]]:
    doc = json.loads(path.read_text())
    runs = [BatchRun(**{**r, "load": tuple(r["load"])}) for r in doc["runs"]]
    theirs = [
        EvidentlyWindow(**{**w, "columns": {k: tuple(v) for k, v in w["columns"].items()}})
        for w in doc["evidently"]
    ]
    return argparse.Namespace(**doc["args"]), runs, theirs


def report(args, runs: list[BatchRun], theirs: list[EvidentlyWindow]) -> int:
    n_windows = sum(r["window"]["rows"] == args.window_size for r in runs[0].results)
    counts, disagreements = compare(runs[0].results, theirs)
    print_throughput(args, runs, theirs, n_windows)
    same = print_agreement(runs, counts, disagreements, theirs)
    return 0 if same else 1


def params_of(args) -> Params:
    return Params(
        events=args.events, batch_size=1000, rate=1000.0, reference_rows=5000, drift_block=25_000,
        v2_share=0.25, seed=args.seed,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.saved:
        saved_args, runs, theirs = load_saved(args.saved)
        more = [int(seq) for seq in args.evidently_at.split(",") if seq]
        if more:
            data, generated = ensure_logs(params_of(saved_args), ROOT / "build" / "bench" / "agent-logs")
            theirs = sorted(
                theirs + run_evidently(data, saved_args.window_size, more, generated["features"]),
                key=lambda w: w.seq,
            )
            save(saved_args, runs, theirs)
        return report(saved_args, runs, theirs)
    data, generated = ensure_logs(params_of(args), ROOT / "build" / "bench" / "agent-logs")
    try:
        runs = [run_batch(data, int(c), args.window_size) for c in args.cores.split(",")]
    except subprocess.CalledProcessError as exc:
        print(
            f"bench: the batch job failed (exit {exc.returncode}); its own line above says why",
            file=sys.stderr,
        )
        return 1
    full = [r for r in runs[0].results if r["window"]["rows"] == args.window_size]
    picked = closest_calls(full, args.evidently_windows)
    theirs = run_evidently(data, args.window_size, picked, generated["features"])
    save(args, runs, theirs)
    return report(args, runs, theirs)


if __name__ == "__main__":
    sys.exit(main())
