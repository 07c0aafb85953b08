"""Report process: turns queued windows into Evidently HTML reports (see reports.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path

import orjson
import pandas as pd

from drift_detector.schema import load_reference

LOG = logging.getLogger("drift_detector.report_worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drift_detector.report_worker")
    parser.add_argument("--reference", required=True, type=Path)
    parser.add_argument("--reports-dir", required=True, type=Path)
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--max-count", type=int, default=50)
    parser.add_argument("--max-bytes", type=int, default=200 * 1024 * 1024)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.nice(10)  # reports are best effort: the service's ingestion and checks come first
    stop = threading.Event()
    threading.Thread(target=_watch_parent, args=(stop,), daemon=True).start()
    spec = orjson.loads(args.spec.read_bytes())
    queue_dir = args.reports_dir / ".queue"
    maker = None
    while not stop.is_set():
        jobs = sorted(queue_dir.glob("*.parquet"))
        if not jobs:
            stop.wait(0.5)
            continue
        if maker is None:
            maker = ReportMaker(load_reference(args.reference), spec)
        for job in jobs:
            out = args.reports_dir / job.name.removesuffix(".parquet")
            try:
                maker.make(pd.read_parquet(job), out)
                LOG.info("report written: %s", out.name)
            except Exception:  # one bad window must not end the worker
                LOG.exception("report for %s failed", job.name)
            job.unlink(missing_ok=True)
            retain(args.reports_dir, args.max_count, args.max_bytes)
    return 0


def _watch_parent(stop: threading.Event) -> None:
    sys.stdin.buffer.read()  # EOF when the service exits, however it exits
    stop.set()
    os._exit(0)


class ReportMaker:
    def __init__(self, reference: pd.DataFrame, spec: dict):
        # Imported here only: this is the one place that pays Evidently's import cost.
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        self._dataset, self._report, self._preset = Dataset, Report, DataDriftPreset
        columns = spec["columns"]  # name -> {kind, stattest, threshold}
        self.columns = [c for c in columns if c in reference.columns]
        self.definition = DataDefinition(
            numerical_columns=[c for c in self.columns if columns[c]["kind"] == "numeric"],
            categorical_columns=[c for c in self.columns if columns[c]["kind"] == "categorical"],
        )
        self.methods = {c: columns[c]["stattest"] for c in self.columns if columns[c].get("stattest")}
        self.thresholds = {
            c: columns[c]["threshold"] for c in self.columns if columns[c].get("threshold") is not None
        }
        self.drift_share = spec.get("drift_share", 0.5)
        self.reference = Dataset.from_pandas(reference[self.columns], data_definition=self.definition)

    def make(self, window: pd.DataFrame, out: Path) -> None:
        current = self._dataset.from_pandas(
            window[[c for c in self.columns if c in window.columns]], data_definition=self.definition
        )
        preset = self._preset(
            drift_share=self.drift_share,
            per_column_method=self.methods or None,
            per_column_threshold=self.thresholds or None,
        )
        snapshot = self._report([preset]).run(current, self.reference)
        tmp = out.with_suffix(".tmp")
        snapshot.save_html(str(tmp))
        os.replace(tmp, out)


def retain(directory: Path, max_count: int, max_bytes: int) -> None:
    """Delete the oldest reports until both the count and the byte limit hold."""
    reports = sorted(directory.glob("*.html"), key=lambda p: p.name)
    sizes = [p.stat().st_size for p in reports]
    total = sum(sizes)
    while reports and (len(reports) > max_count or total > max_bytes):
        total -= sizes.pop(0)
        reports.pop(0).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
