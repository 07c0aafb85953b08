"""POST /api/v1/drift/import: results of the batch job (drift_detector.batch) enter the service.

Each result is one line of the job's results.jsonl, the same JSON the service keeps per window. The
service exports it as if it had checked the window (gauges, so dashboards and alerts see it) and keeps
it in its history. A result already in the history (same window, same check time) is skipped, so an
import that is repeated after a failure does not count windows twice.
"""

from __future__ import annotations

import math
from typing import Any

from drift_detector.decode import BadInput
from drift_detector.service import NotReady

REQUIRED = {"window": dict, "drift_share": float, "dataset_drift": bool, "columns": list, "checked_at": float}


def validate(result: Any, i: int, model_name: str) -> dict:
    if not isinstance(result, dict):
        raise BadInput("invalid_body", f"result {i} must be an object (a line of results.jsonl)")
    for key, kind in REQUIRED.items():
        value = result.get(key)
        ok = (
            isinstance(value, int | float) and math.isfinite(value)
            if kind is float
            else isinstance(value, kind)
        )
        if not ok or (kind is float and isinstance(value, bool)):
            raise BadInput("invalid_result", f"result {i}: {key!r} must be a {kind.__name__}")
    if result.get("model_name") != model_name:
        raise BadInput(
            "model_mismatch",
            f"result {i} is for model {str(result.get('model_name'))[:100]!r}, not {model_name!r}",
        )
    if not isinstance(result["window"].get("seq"), int):
        raise BadInput("invalid_result", f"result {i}: window.seq must be an integer")
    return result


def _key(result: dict) -> tuple:
    return result["window"].get("seq"), result["window"].get("closed_at"), result.get("checked_at")


async def import_results(service, doc: Any) -> dict:
    """All results are validated before any is kept."""
    if not service.ready:
        raise NotReady(service.failed or "reference loading or log replay in progress")
    items = doc.get("results") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise BadInput("invalid_body", "body must be a non-empty list of results or {'results': [...]}")
    model = service.settings.model_name
    results = [validate(r, i, model) for i, r in enumerate(items)]
    checker = service.checker
    known = {_key(r) for r in checker.recent(service.settings.history_size)}
    imported = 0
    for result in results:
        if _key(result) in known:
            continue
        known.add(_key(result))
        checker.add_result(result)
        imported += 1
    service.metrics.event("import", "accepted", imported)
    service.metrics.event("import", "duplicate", len(results) - imported)
    return {"imported": imported, "duplicates": len(results) - imported}
