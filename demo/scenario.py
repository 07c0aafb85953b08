"""Observing the running stack: window checks, alerts, retrain decisions. Used by the demo and tests/e2e."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from demo.stack import Stack

DRIFT_ALERT = "KServeModelDataDriftDetected"


class Timeout(AssertionError):
    """A condition the scenario waits for did not come true in time."""


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.5):
    """Poll `condition` until it returns something truthy; return it, or raise Timeout naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as err:  # services may be restarting; keep polling
            last_error = err
        time.sleep(interval)
    raise Timeout(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f" ({last_error})" if last_error else "")
    )


class WindowWatcher:
    """Polls GET /api/v1/drift/history and reports every newly checked window once."""

    def __init__(self, stack: Stack, on_window: Callable[[dict], None] = lambda r: None, period: float = 1.0):
        self.stack = stack
        self.on_window = on_window
        self.period = period
        self.windows: dict[int, dict] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="window-watcher", daemon=True)

    def start(self) -> WindowWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def poll(self) -> list[dict]:
        """Fetch the history once; returns the windows not seen before, oldest first."""
        try:
            results = self.stack.drift_history(limit=100)
        except Exception:
            return []
        fresh = []
        with self._lock:
            for result in sorted(results, key=lambda r: r["window"]["seq"]):
                seq = result["window"]["seq"]
                if seq not in self.windows:
                    self.windows[seq] = result
                    fresh.append(result)
        for result in fresh:
            self.on_window(result)
        return fresh

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.poll()

    def checked(self) -> list[dict]:
        with self._lock:
            return [self.windows[k] for k in sorted(self.windows)]

    def since(self, seq_exclusive: int) -> list[dict]:
        return [w for w in self.checked() if w["window"]["seq"] > seq_exclusive]

    def last_seq(self) -> int:
        with self._lock:
            return max(self.windows, default=0)


# Evidently stattests whose score is a p-value (drift when low); the others are distances (drift when high).
P_VALUE_TESTS = {
    "ks", "chisquare", "z", "t_test", "mannw", "anderson", "cramer_von_mises", "fisher_exact", "g_test",
    "epps_singleton", "empirical_mmd",
}  # fmt: skip


def drifted_features(result: dict) -> list[str]:
    """Names of the drifted features of one window, strongest evidence first."""

    def strength(column: dict) -> float:
        score = column.get("score") or 0.0
        return score if column.get("stattest") in P_VALUE_TESTS else -score

    cols = [c for c in result.get("columns", []) if c.get("drifted")]
    return [c["name"] for c in sorted(cols, key=strength)]


def timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def retrainer_decisions(stack: Stack, since: float = 0.0, until: float | None = None) -> list[dict]:
    """The retrain controller's `decision` events logged in [since, until]."""
    out = []
    for event in stack.retrainer_events():
        if event.get("event") != "decision" or "ts" not in event:
            continue
        ts = timestamp(event["ts"])
        if ts >= since and (until is None or ts <= until):
            out.append(event)
    return out


def retrainer_passes(stack: Stack, since: float = 0.0) -> list[dict]:
    """The controller's per-pass `summary` events since `since`."""
    return [
        e for e in stack.retrainer_events() if e.get("event") == "summary" and timestamp(e["ts"]) >= since
    ]


def model_performance(stack: Stack) -> dict[str, float]:
    """model_performance{metric} of the demo's model as Prometheus has it now."""
    rows = stack.query(f'model_performance{{model_name="{stack.model_name}"}}')
    return {r["metric"]["metric"]: float(r["value"][1]) for r in rows}


def report_paths(stack: Stack, windows: list[dict]) -> list[Path]:
    """Evidently HTML reports of these windows that exist on disk (reports are made asynchronously)."""
    paths = []
    for window in windows:
        name = window.get("report")
        if name:
            path = stack.reports_dir / name
            if path.exists():
                paths.append(path)
    return paths


@dataclass
class PhaseRecord:
    """What one traffic phase produced, as read back from the services."""

    name: str
    description: str
    rows: int = 0
    started: float = 0.0
    ended: float = 0.0
    windows: list[dict] = field(default_factory=list)
    alerts_firing: list[str] = field(default_factory=list)
    alerts_pending: list[str] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    passes: int = 0
    performance: dict[str, float] = field(default_factory=dict)
    labels_matched: int = 0
    reports: list[Path] = field(default_factory=list)
    failed_requests: int = 0
