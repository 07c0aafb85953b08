"""One decision pass: observe Prometheus, list this release's Jobs, decide, create (or print)."""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, TextIO

import yaml

from retrain_controller.config import Settings
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
    manifests_out = manifests_out or sys.stdout
    observations, queries = source.observe(now)
    if not observations:
        log.emit(
            "summary", message="no model over the threshold", models=0, created=0, skipped=0, at=rfc3339(now)
        )
        return EXIT_OK
    jobs = store.list_jobs(settings.training_namespace, release_selector(settings.release))
    decisions = decide(observations, jobs, settings, queries, now)
    created = skipped = failed = 0
    failure_code = EXIT_OK
    for decision in decisions:
        fields = _decision_fields(decision)
        if decision.action != CREATE:
            skipped += 1
            log.emit("decision", **fields)
            continue
        if dry_run:
            manifests_out.write("---\n" + yaml.safe_dump(decision.manifest, sort_keys=False))
            manifests_out.flush()
            log.emit("decision", **fields, outcome="dry_run")
            created += 1
            continue
        try:
            store.create_job(settings.training_namespace, decision.manifest or {})
            outcome = "created"
        except AlreadyExistsError:
            outcome = "already_exists"  # an overlapping run created the same deterministic name: done
        except ForbiddenError:
            log.emit("decision", **fields, outcome="forbidden")
            raise
        except JobStoreError as err:
            log.emit("decision", **fields, outcome="error", error=str(err))
            failed += 1
            failure_code = EXIT_KUBERNETES
            continue
        created += 1
        log.emit("decision", **fields, outcome=outcome)
    over = [d for d in decisions if d.reason not in DRIFT_GATE_REASONS]
    verb = "would be created" if dry_run else "created"
    log.emit(
        "summary",
        message=f"{created} retrain Job(s) {verb}" if over else "no model over the threshold",
        models=len(decisions),
        created=created,
        skipped=skipped,
        failed=failed,
        dry_run=dry_run,
        at=rfc3339(now),
    )
    return failure_code


def one_pass_exit_code(run: Any, log: EventLog, err_stream: TextIO) -> int:
    """Runs a pass and turns the known failures into their exit code and a one-line reason."""
    try:
        return run()
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
