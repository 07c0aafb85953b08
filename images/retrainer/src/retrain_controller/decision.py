"""The decision per model: pure functions of what Prometheus says, the existing Jobs and the clock.

Checks, in order, the first that applies wins:
  no series / NaN or ±Inf  -> skip (value_missing / value_nan)
  under the threshold      -> skip (below_threshold, or not_sustained when only the latest value is over)
  too little history       -> skip (insufficient_history)
  an active Job            -> skip (job_active)
  a Job within cooldown    -> skip (cooldown)
  max concurrent reached   -> skip (max_concurrent)
  else                     -> create
Models are visited from the highest drift down, so the worst model gets the free slot.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from retrain_controller.config import Settings
from retrain_controller.manifest import LABEL_MODEL, LABEL_MODEL_NAMESPACE, build_job
from retrain_controller.naming import job_name, label_value
from retrain_controller.prometheus import Observation, Queries

CREATE = "create"
SKIP = "skip"
# Reasons that mean the drift itself does not call for a retrain (as opposed to a guard holding it back).
DRIFT_GATE_REASONS = frozenset(
    {"value_missing", "value_nan", "below_threshold", "not_sustained", "insufficient_history"}
)


@dataclass
class Decision:
    model_name: str
    model_namespace: str
    action: str
    reason: str
    value: float | None
    current: float | None
    job_name: str = ""
    detail: str = ""
    manifest: dict[str, Any] | None = field(default=None, repr=False)


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def job_is_finished(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


def job_is_active(job: dict[str, Any]) -> bool:
    """Not finished and not being deleted; a Job the controller has not picked up yet counts as active."""
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return not job_is_finished(job)


def job_started_at(job: dict[str, Any]) -> float | None:
    started = parse_time((job.get("status") or {}).get("startTime"))
    return (
        started if started is not None else parse_time((job.get("metadata") or {}).get("creationTimestamp"))
    )


def jobs_for_model(jobs: list[dict[str, Any]], model_namespace: str, model_name: str) -> list[dict[str, Any]]:
    """Jobs labelled for this model; a Job without the namespace label matches any namespace (safer)."""
    model_value = label_value(model_name)
    namespace_value = label_value(model_namespace) if model_namespace else ""
    matched = []
    for job in jobs:
        labels = (job.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_MODEL) != model_value:
            continue
        if labels.get(LABEL_MODEL_NAMESPACE, namespace_value) != namespace_value:
            continue
        matched.append(job)
    return matched


def cooldown_bucket(now: float, cooldown_seconds: int) -> int:
    return math.floor(now / cooldown_seconds)


def _over_threshold(value: float | None, threshold: float) -> bool:
    return value is not None and not math.isnan(value) and value >= threshold


def _drift_gate(obs: Observation, settings: Settings) -> tuple[str, str] | None:
    """Why the drift itself does not justify a retrain, or None when it does."""
    threshold = settings.threshold
    if obs.value is None:
        return "value_missing", "no value for the sustained window"
    if math.isnan(obs.value):
        return "value_nan", "the drift value is NaN"
    if math.isinf(obs.value):
        return "value_nan", f"the drift value is {obs.value} (not a drift score)"
    if obs.value < threshold:
        if _over_threshold(obs.current, threshold) and settings.sustained_for_seconds:
            return "not_sustained", (
                f"current value is over {threshold:g} but the minimum over "
                f"{settings.sustained_for_seconds}s is {obs.value:.6g}"
            )
        return "below_threshold", f"{obs.value:.6g} < {threshold:g}"
    needed = math.ceil(settings.min_coverage * obs.expected_samples)
    if settings.sustained_for_seconds and obs.samples < needed:
        return (
            "insufficient_history",
            f"{obs.samples} of {obs.expected_samples} steps have data, need {needed}",
        )
    return None


def _job_gate(
    obs: Observation, jobs: list[dict[str, Any]], settings: Settings, now: float
) -> tuple[str, str, str] | None:
    mine = jobs_for_model(jobs, obs.model_namespace, obs.model_name)
    for job in mine:
        if job_is_active(job):
            return "job_active", job["metadata"]["name"], "a retrain Job for this model is still running"
    latest = max(mine, key=lambda j: job_started_at(j) or 0.0, default=None)
    started = job_started_at(latest) if latest else None
    if latest is not None and started is not None and now - started < settings.cooldown_seconds:
        remaining = int(settings.cooldown_seconds - (now - started))
        return (
            "cooldown",
            latest["metadata"]["name"],
            f"last retrain started {int(now - started)}s ago, {remaining}s left",
        )
    return None


def _most_drifted_first(obs: Observation) -> tuple[float, str, str]:
    known = obs.value is not None and math.isfinite(obs.value)
    return (-(obs.value if known else -math.inf), obs.model_namespace, obs.model_name)


def decide(
    observations: list[Observation],
    jobs: list[dict[str, Any]],
    settings: Settings,
    queries: Queries,
    now: float,
) -> list[Decision]:
    """One Decision per observation; `jobs`: every Job this release manages in the training namespace."""
    active = sum(1 for job in jobs if job_is_active(job))
    ordered = sorted(observations, key=_most_drifted_first)
    # Indexed by the model label once, so a pass stays linear in models + Jobs.
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        by_model[((job.get("metadata") or {}).get("labels") or {}).get(LABEL_MODEL, "")].append(job)
    decisions = []
    query = queries.sustained or queries.current
    for obs in ordered:
        decision = Decision(obs.model_name, obs.model_namespace, SKIP, "", obs.value, obs.current)
        decisions.append(decision)
        drift = _drift_gate(obs, settings)
        if drift:
            decision.reason, decision.detail = drift
            continue
        guarded = _job_gate(obs, by_model.get(label_value(obs.model_name), []), settings, now)
        if guarded:
            decision.reason, decision.job_name, decision.detail = guarded
            continue
        if active >= settings.max_concurrent:
            decision.reason = "max_concurrent"
            decision.detail = f"{active} retrain Jobs active, maxConcurrent is {settings.max_concurrent}"
            continue
        name = job_name(
            settings.job["namePrefix"],
            obs.model_namespace,
            obs.model_name,
            cooldown_bucket(now, settings.cooldown_seconds),
        )
        decision.action, decision.reason, decision.job_name = CREATE, "drift_sustained", name
        decision.detail = f"{obs.value:.6g} >= {settings.threshold:g}"
        decision.manifest = build_job(
            settings,
            name=name,
            model_namespace=obs.model_namespace,
            model_name=obs.model_name,
            value=obs.value,
            current=obs.current,
            query=query,
            decided_at=now,
        )
        active += 1
    return decisions
