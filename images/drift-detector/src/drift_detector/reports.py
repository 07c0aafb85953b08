"""Evidently HTML reports, made by a separate low-priority process so that importing Evidently (seconds,
hundreds of MB) never touches the service's memory or delays ingestion and checks.

The service drops a window as parquet into <reports_dir>/.queue/; the worker process
(`python -m drift_detector.report_worker`) turns each into an HTML report with Evidently's own
DataDriftPreset on the same reference and column kinds, then applies the retention limits.
"""

from __future__ import annotations

import html
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pandas as pd

LOG = logging.getLogger(__name__)
# Result keys the report shows in sections of its own, above Evidently's widgets.
REPORT_SECTIONS = ("multivariate", "estimated_performance", "segments")
QUEUE_LIMIT = 4  # windows waiting for a report; older ones are dropped, reports are best effort


class Reports:
    def __init__(self, settings, spec: dict):
        self.dir = Path(settings.reports_dir)
        self.queue_dir = self.dir / ".queue"
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.spec_path = self.queue_dir / "spec.json"
        self.spec_path.write_bytes(orjson.dumps(spec))
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def submit(self, seq: int, frame: pd.DataFrame, result: dict | None = None) -> str:
        """Queue a report of this window; returns the file name it will have. The parts of the window's
        check `result` that Evidently cannot show (REPORT_SECTIONS) go beside it as JSON (written first:
        the worker picks up the parquet)."""
        name = f"drift-report-w{seq:06d}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.html"
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        result = result or {}
        extra = {key: result[key] for key in REPORT_SECTIONS if result.get(key)}
        if extra:
            (self.queue_dir / (name + ".json")).write_bytes(orjson.dumps(extra))
        tmp = self.queue_dir / (name + ".tmp")
        try:
            frame.to_parquet(tmp, index=False)
        except Exception:
            tmp.unlink(missing_ok=True)
            (self.queue_dir / (name + ".json")).unlink(missing_ok=True)
            raise
        os.replace(tmp, self.queue_dir / (name + ".parquet"))
        queued = sorted(self.queue_dir.glob("*.parquet"))
        for old in queued[:-QUEUE_LIMIT]:
            LOG.warning("report queue full: dropping %s", old.name)
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
        self.ensure_worker()
        return name

    def ensure_worker(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            s = self.settings
            cmd = [
                sys.executable, "-m", "drift_detector.report_worker",
                "--reference", str(s.reference), "--reports-dir", str(self.dir),
                "--spec", str(self.spec_path), "--max-count", str(s.reports_max_count),
                "--max-bytes", str(s.reports_max_bytes),
            ]  # fmt: skip
            # stdin stays open as the worker's lifeline: it exits when the service goes away.
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)

    def stop(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
            self._proc = None

    def pending(self) -> bool:
        return any(self.queue_dir.glob("*.parquet"))

    def listing(self) -> list[dict]:
        items = []
        for path in self.dir.glob("*.html"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # removed by retention meanwhile
            items.append({"name": path.name, "bytes": st.st_size, "modified": st.st_mtime})
        return sorted(items, key=lambda i: i["name"], reverse=True)

    def index_html(self) -> bytes:
        rows = "".join(_row(i) for i in self.listing())
        title = f"Drift reports: {html.escape(self.settings.model_name)}"
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<h1>{title}</h1><table><tr><th>report</th><th>bytes</th><th>created (UTC)</th></tr>"
            f"{rows}</table>"
            "</body></html>"
        ).encode()

    def path(self, name: str) -> Path | None:
        """The report file for a URL name, refusing anything that is not a plain report file name."""
        if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(".html"):
            return None
        path = self.dir / name
        return path if path.is_file() else None


def _row(item: dict) -> str:
    name = html.escape(item["name"])
    created = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(item["modified"]))
    return f'<tr><td><a href="/reports/{name}">{name}</a></td><td>{item["bytes"]}</td><td>{created}</td></tr>'
