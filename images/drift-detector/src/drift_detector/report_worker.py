"""Report process: turns queued windows into Evidently HTML reports (see reports.py)."""

from __future__ import annotations

import argparse
import html
import logging
import os
import re
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
            extra = job.with_suffix(".json")
            try:
                results = orjson.loads(extra.read_bytes()) if extra.exists() else {}
                maker.make(pd.read_parquet(job), out, results)
                LOG.info("report written: %s", out.name)
            except Exception:  # one bad window must not end the worker
                LOG.exception("report for %s failed", job.name)
            job.unlink(missing_ok=True)
            extra.unlink(missing_ok=True)
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

        self._dataset, self._report, self._preset, self._definition = (
            Dataset,
            Report,
            DataDriftPreset,
            DataDefinition,
        )
        self.spec = spec["columns"]  # name -> {kind, stattest, threshold}
        self.drift_share = spec.get("drift_share", 0.5)
        self.reference = reference

    def make(self, window: pd.DataFrame, out: Path, results: dict | None = None) -> None:
        """Evidently's drift report of `window`, with sections for the check's own `results`
        (multivariate drift, estimated performance, segments) at the top of the page."""
        # The columns of this window (the service leaves out features with no value in it).
        columns = [c for c in self.spec if c in window.columns and c in self.reference.columns]
        definition = self._definition(
            numerical_columns=[c for c in columns if self.spec[c]["kind"] == "numeric"],
            categorical_columns=[c for c in columns if self.spec[c]["kind"] == "categorical"],
        )
        preset = self._preset(
            drift_share=self.drift_share,
            per_column_method={c: self.spec[c]["stattest"] for c in columns if self.spec[c].get("stattest")}
            or None,
            per_column_threshold={
                c: self.spec[c]["threshold"] for c in columns if self.spec[c].get("threshold") is not None
            }
            or None,
        )
        current = self._dataset.from_pandas(window[columns], data_definition=definition)
        reference = self._dataset.from_pandas(self.reference[columns], data_definition=definition)
        snapshot = self._report([preset]).run(current, reference)
        tmp = out.with_suffix(".tmp")
        snapshot.save_html(str(tmp))
        page = tmp.read_text(encoding="utf-8")
        results = results or {}
        # Each section goes right after <body>: inserted bottom first, they read top to bottom as
        # multivariate, estimated performance, segments.
        for key, section in (
            ("segments", with_segments_section),
            ("estimated_performance", with_estimated_performance_section),
            ("multivariate", with_multivariate_section),
        ):
            if results.get(key):
                page = section(page, results[key])
        tmp.write_text(page, "utf-8")
        os.replace(tmp, out)


def with_multivariate_section(page: str, multivariate: dict) -> str:
    """Evidently has no multivariate drift widget: a plain section at the top of its page shows ours."""
    verdict = "Drift detected" if multivariate["drift_detected"] else "No drift"
    section = (
        '<section id="multivariate-drift" style="font-family:sans-serif;margin:16px;padding:12px;'
        'border:1px solid #ccc;border-radius:6px">'
        "<h2>Multivariate drift (PCA reconstruction error)</h2>"
        f"<p><b>{verdict}</b>: mean reconstruction error {multivariate['value']:.4f}, reference band "
        f"{multivariate['lower_threshold']:.4f} .. {multivariate['upper_threshold']:.4f} "
        "(drawn from reference chunks of the window size; outside the band is drift).</p>"
        "<p>It measures how far the window's rows lie from the principal components of the reference: "
        "a change in how features go together that per-feature tests can miss.</p></section>"
    )
    return at_top(page, section)


def with_estimated_performance_section(page: str, estimated: dict) -> str:
    """Evidently has no label-free performance estimate: a table at the top of its page shows CBPE's."""
    rows = "".join(_estimate_row(name, m) for name, m in estimated["metrics"].items())
    calibration = "isotonic-calibrated scores" if estimated.get("calibrated") else "the scores as they are"
    section = (
        '<section id="estimated-performance" style="font-family:sans-serif;margin:16px;padding:12px;'
        'border:1px solid #ccc;border-radius:6px">'
        "<h2>Estimated performance (CBPE, no labels needed)</h2>"
        "<table><tr><th>metric</th><th>estimated</th><th>thresholds</th><th>alert</th><th>realized</th></tr>"
        f"{rows}</table>"
        f"<p>Estimated from {calibration}: each row's calibrated score is its chance of being positive, "
        "which gives an expected confusion matrix. Thresholds come from the realized metric on reference "
        "chunks of the window size; realized values come from labelled feedback, once labels arrive.</p>"
        "</section>"
    )
    return at_top(page, section)


def with_segments_section(page: str, segments: list[dict]) -> str:
    """Evidently has no per-segment verdict: a table at the top of its page shows each segment's."""
    rows = "".join(_segment_row(segment) for segment in segments)
    section = (
        '<section id="segment-drift" style="font-family:sans-serif;margin:16px;padding:12px;'
        'border:1px solid #ccc;border-radius:6px">'
        "<h2>Drift per segment</h2>"
        "<table><tr><th>column</th><th>segment</th><th>rows</th><th>drifted features</th>"
        f"<th>dataset drift</th></tr>{rows}</table>"
        "<p>Each segment's rows against the reference rows of the same segment, with the same tests as "
        "the whole window; a segment with too few rows in the window is not checked.</p></section>"
    )
    return at_top(page, section)


def _segment_row(segment: dict) -> str:
    if segment["checked"]:
        share = f"{segment['drift_share']:.0%} ({segment['n_drifted']})"
        verdict = "yes" if segment["dataset_drift"] else "no"
    else:
        share, verdict = "-", "not checked"
    return (
        f"<tr><td>{html.escape(str(segment['column']))}</td><td>{html.escape(str(segment['value']))}</td>"
        f"<td>{segment['rows']}</td><td>{share}</td><td>{verdict}</td></tr>"
    )


def at_top(page: str, section: str) -> str:
    """`page` with `section` right after its <body> tag (at the start when it has none)."""
    match = re.search(r"<body[^>]*>", page)
    at = match.end() if match else 0
    return page[:at] + section + page[at:]


def _estimate_row(name: str, metric: dict) -> str:
    value = "-" if metric["value"] is None else f"{metric['value']:.4f}"
    realized = f"{metric['realized']:.4f}" if metric.get("realized") is not None else "-"
    return (
        f"<tr><td>{html.escape(name)}</td><td>{value}</td>"
        f"<td>{metric['lower_threshold']:.4f} .. {metric['upper_threshold']:.4f}</td>"
        f"<td>{'yes' if metric['alert'] else 'no'}</td><td>{realized}</td></tr>"
    )


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
