"""One decision pass: observe Prometheus, list this release's Jobs, decide, create (or print)."""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from typing import Any, TextIO

import yaml

from retrain_controller.config import ConfigError, Settings
from retrain_controller.decision import CREATE, DRIFT_GATE_REASONS, Decision, decide
from retrain_controller.jobstore import AlreadyExistsError, ForbiddenError, JobStore, JobStoreError
from retrain_controller.manifest import release_selector, rfc3339
from retrain_controller.prometheus import DriftSource, PrometheusError

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_PROMETHEUS = 2
EXIT_FORBIDDEN = 3
EXIT_KUBERNETES = 4


class EventLog:
    """One JSON object per line; NaN and missing values become null (JSON has no NaN)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": rfc3339(time.time()), "event": event}
        for key, value in fields.items():
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            record[key] = value
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()


def _decision_fields(decision: Decision) -> dict[str, Any]:
    return {
        "model": decision.model_name,
        "namespace": decision.model_namespace,
        "action": decision.action,
        "reason": decision.reason,
        "value": decision.value,
        "current": decision.current,
        "job": decision.job_name or None,
        "detail": decision.detail,
    }


def run_pass(
    settings: Settings,
    source: DriftSource,
    store: JobStore,
    *,
    now: float,
    dry_run: bool,
    log: EventLog,
    manifests_out: TextIO | None = None,
) -> int:
    """Returns the exit code; every decision is logged, errors are raised only for the CLI's one-liner."""
    observations, queries = source.observe(now)
    if source.ignored_series:
        log.emit(
            "warning",
            message=f"{source.ignored_series} series without the label {settings.model_label!r} ignored: "
            f"the query must keep {settings.model_label!r} (e.g. max by ({settings.model_label}, ...))",
        )
    outcomes: Counter[str] = Counter()
    decisions: list[Decision] = []
    if observations:
        jobs = store.list_jobs(settings.training_namespace, release_selector(settings.release))
        decisions = decide(observations, jobs, settings, queries, now)
    for decision in decisions:
        if decision.action != CREATE:
            outcomes["held_back" if decision.reason not in DRIFT_GATE_REASONS else "skipped"] += 1
            log.emit("decision", **_decision_fields(decision))
            continue
        outcome = _create(decision, settings, store, dry_run, log, manifests_out or sys.stdout)
        outcomes[outcome] += 1
        log.emit("decision", **_decision_fields(decision), outcome=outcome)
    log.emit(
        "summary",
        message=_summary(outcomes, dry_run),
        models=len(decisions),
        created=outcomes["created"] + outcomes["dry_run"],  # in a dry run: would be created
        already_exists=outcomes["already_exists"],
        held_back=outcomes["held_back"],
        skipped=outcomes["skipped"],
        failed=outcomes["error"],
        dry_run=dry_run,
        at=rfc3339(now),
    )
    return EXIT_KUBERNETES if outcomes["error"] else EXIT_OK


def _create(
    decision: Decision, settings: Settings, store: JobStore, dry_run: bool, log: EventLog, out: TextIO
) -> str:
    """Creates (or prints) the decided Job and says how it went; Forbidden ends the pass."""
    if dry_run:
        out.write("---\n" + yaml.safe_dump(decision.manifest, sort_keys=False))
        out.flush()
        return "dry_run"
    try:
        store.create_job(settings.training_namespace, decision.manifest or {})
    except AlreadyExistsError:
        return "already_exists"  # an overlapping run created the same deterministic name: done
    except ForbiddenError:
        log.emit("decision", **_decision_fields(decision), outcome="forbidden")
        raise
    except JobStoreError as err:
        decision.detail = f"{decision.detail}; {err}"
        return "error"
    return "created"


def _summary(outcomes: Counter[str], dry_run: bool) -> str:
    acted = outcomes["created"] + outcomes["dry_run"] + outcomes["already_exists"] + outcomes["error"]
    if not acted and not outcomes["held_back"]:
        return "no model over the threshold"
    verb = "would be created" if dry_run else "created"
    parts = [f"{outcomes['dry_run' if dry_run else 'created']} retrain Job(s) {verb}"]
    if outcomes["already_exists"]:
        parts.append(f"{outcomes['already_exists']} already existed")
    if outcomes["held_back"]:
        parts.append(f"{outcomes['held_back']} held back by the job, cooldown or concurrency guards")
    if outcomes["error"]:
        parts.append(f"{outcomes['error']} failed")
    return ", ".join(parts)


def one_pass_exit_code(run: Any, log: EventLog, err_stream: TextIO) -> int:
    """Runs a pass and turns the known failures into their exit code and a one-line reason."""
    try:
        return run()
    except ConfigError as err:  # e.g. the token file vanished between two watch passes
        code, message = EXIT_CONFIG, str(err)
    except PrometheusError as err:
        code, message = EXIT_PROMETHEUS, f"prometheus: {err}"
    except ForbiddenError as err:
        code, message = EXIT_FORBIDDEN, f"kubernetes: {err}"
    except JobStoreError as err:
        code, message = EXIT_KUBERNETES, f"kubernetes: {err}"
    log.emit("error", exit_code=code, message=message)
    err_stream.write(f"retrain-controller: {message}\n")
    err_stream.flush()
    return code
