"""python -m drift_detector batch: drift results over the agent's blob-storage logs.

  python -m drift_detector batch --logs s3://bucket/prefix --reference ref.parquet --model-name m \\
      --window-size 1000 --engine local --out results/ [--config settings.yaml] [--min-samples N]

Every service setting applies (flags, DRIFT_DETECTOR_* variables, the --config YAML), so a run checks
windows exactly as the service configured the same way would.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from drift_detector.batch import logs as blob
from drift_detector.batch.results import ResultsWriter
from drift_detector.checker import Evaluator, build_engine
from drift_detector.config import ConfigError, load_settings

ENGINES = ("local", "spark")
LOG = logging.getLogger("drift_detector.batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m drift_detector batch",
        description="Check KServe blob-storage payload logs for drift, window by window as the service would."
        " Service flags (--reference, --model-name, --window-size, --min-samples, --config) apply too.",
    )
    parser.add_argument("--logs", required=True, help="s3://bucket/prefix (AWS_* settings) or a directory")
    parser.add_argument("--out", required=True, type=Path, help="directory for results.jsonl/.parquet")
    parser.add_argument("--engine", choices=ENGINES, default="local", help="local (one process) or spark")
    parser.add_argument(
        "--spark-master", default="local[*]", help="Spark master URL for --engine spark (default local[*])"
    )
    parser.add_argument(
        "--partitions", type=int, default=0, help="Spark partitions (default: Spark's default parallelism)"
    )
    return parser


@dataclass
class Job:
    """What an engine needs: settings, the logs' filesystem, the prepared evaluator."""

    settings: object
    logs: str
    filesystem: object
    evaluator: Evaluator
    objects_total: int = 0
    spark_master: str = "local[*]"
    partitions: int = 0
    sequencer: object = None
    _last_print: float = 0.0

    def progress(self, obj: blob.LogObject) -> None:
        now = time.monotonic()
        if now - self._last_print >= 5 or obj.rank + 1 == self.objects_total:
            self._last_print = now
            print(
                f"batch: object {obj.rank + 1}/{self.objects_total} {obj.path}", file=sys.stderr, flush=True
            )


def main(argv: list[str]) -> int:
    args, service_argv = build_parser().parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings(service_argv)
        if not settings.reference.exists():
            raise ConfigError(f"reference file not found: {settings.reference}")
        filesystem, base = blob.filesystem(args.logs)
        objects = blob.list_objects(filesystem, base)
        runner = _engine(args.engine)
        print(f"batch: {len(objects)} log objects under {args.logs}, engine {args.engine}", file=sys.stderr)
        job = Job(settings, args.logs, filesystem, _evaluator(settings), len(objects))
        job.spark_master, job.partitions = args.spark_master, args.partitions
        return _run(job, runner, objects, args)
    except (ConfigError, blob.LogsError) as exc:
        print(f"drift_detector batch: {exc}", file=sys.stderr)
        return 2


def _evaluator(settings) -> Evaluator:
    try:
        engine, _ = build_engine(settings)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot use reference {settings.reference}: {exc}") from None
    evaluator = Evaluator(engine, settings)
    evaluator.prepare()
    return evaluator


def _run(job: Job, runner, objects: list[blob.LogObject], args) -> int:
    writer = ResultsWriter(args.out)
    try:
        for result in runner.run(job, objects):
            writer.add(result)
    except blob.LogsError:
        writer.abort()
        raise
    writer.finish(_summary(job, objects, writer.count, args))
    print(f"batch: {writer.count} windows checked, results in {args.out}", file=sys.stderr)
    return 0


def _engine(name: str):
    """The engine's module; pyspark is imported only when asked for (the drift-detector[spark] extra)."""
    if name == "spark":
        try:
            from drift_detector.batch import spark
        except ImportError as exc:
            raise ConfigError(f"--engine spark needs drift-detector[spark] ({exc})") from None
        return spark
    from drift_detector.batch import local

    return local


def _summary(job: Job, objects, checked: int, args) -> dict:
    seq = job.sequencer
    return {
        "model_name": job.settings.model_name,
        "logs": args.logs,
        "engine": args.engine,
        "objects": len(objects),
        "windows_checked": checked,
        "events": [{"type": t, "outcome": o, "count": n} for (t, o), n in sorted(seq.outcomes.items())],
        "data_quality": [
            {"feature_name": f, "kind": k, "count": n} for (f, k), n in sorted(seq.quality.items())
        ],
        "open_window": seq.open_window(),
    }
