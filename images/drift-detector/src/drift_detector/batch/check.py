"""From a window of references to the result the service would keep in its history."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from drift_detector.checker import Evaluator
from drift_detector.state import Window
from drift_detector.stats import DriftInputError

LOG = logging.getLogger(__name__)


def blocks(window: Window) -> list[tuple[int, int, int, int | None]]:
    """The window as (request pos, first row in window, rows, response pos or None) per joined event:
    the sequencer adds one event's rows contiguously."""
    out: list = []
    for k, ((pos, _), pred) in enumerate(zip(window.rows, window.preds, strict=True)):
        if out and out[-1][0] == pos and out[-1][1] + out[-1][2] == k:
            start = out[-1]
            out[-1] = (pos, start[1], start[2] + 1, start[3])
        else:
            out.append((pos, k, 1, None if pred is None else pred[0]))
    return out


def materialize(window: Window, payload: Callable[[int], list[Any]]) -> Window:
    """The window with the decoded rows and predictions its references point to."""
    rows, preds = [], []
    for ref_rows, ref_preds in ((window.rows, rows), (window.preds, preds)):
        for ref in ref_rows:
            ref_preds.append(None if ref is None else payload(ref[0])[ref[1]])
    return Window(window.seq, rows, preds, window.opened_at, window.closed_at)


def check(evaluator: Evaluator, window: Window) -> dict | None:
    """The service's result for the window, or None where the service skips it (logged)."""
    started = time.perf_counter()
    try:
        result, _ = evaluator.evaluate(window, [])
    except DriftInputError as exc:
        LOG.warning("window %d cannot be checked: %s", window.seq, exc)
        return None
    result["checked_at"] = time.time()
    result["duration_seconds"] = time.perf_counter() - started
    return result
