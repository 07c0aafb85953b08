"""Shared builders for the unit tests (imported by the test modules; tests have no package)."""

from __future__ import annotations

from typing import Any

from retrain_controller.config import Settings, load_settings
from retrain_controller.manifest import model_labels
from retrain_controller.prometheus import Observation, build_queries

TRAIN_IMAGE = "registry.example/train:1.0"


def make_settings(**overrides: Any) -> Settings:
    """Settings from defaults plus dotted-key overrides; the training image is always set."""
    values = {"job.image": TRAIN_IMAGE, "trainingNamespace": "training", "release": "demo"}
    values.update(overrides)
    return load_settings(None, values)


def obs(
    model: str,
    value: float | None,
    *,
    namespace: str = "ml",
    current: float | None = None,
    samples: int = 15,
    expected: int = 15,
) -> Observation:
    return Observation(
        model_name=model,
        model_namespace=namespace,
        value=value,
        current=value if current is None else current,
        samples=samples,
        expected_samples=expected,
    )


def existing_job(
    settings: Settings,
    model: str,
    *,
    namespace: str = "ml",
    name: str = "retrain-old",
    started: str = "2026-01-01T00:00:00Z",
    finished: str | None = None,
) -> dict[str, Any]:
    """A Job as the API server lists it: labels from the controller, status as the Job controller sets it."""
    status: dict[str, Any] = {"startTime": started}
    if finished:
        status["conditions"] = [{"type": finished, "status": "True"}]
    else:
        status["active"] = 1
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": started,
            "labels": model_labels(settings, namespace, model),
        },
        "status": status,
    }


def queries(settings: Settings):
    return build_queries(settings)


class InMemoryJobStore:
    """Our JobStore interface over a list, for pass-level tests: the Kubernetes side of JobStore is
    tested against a real kube-apiserver in tests/k8s, this only records what the controller asks."""

    def __init__(self, jobs: list[dict[str, Any]] | None = None, fail_create: Exception | None = None):
        self.jobs = list(jobs or [])
        self.created: list[dict[str, Any]] = []
        self.list_calls: list[tuple[str, str]] = []
        self.fail_create = fail_create

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.list_calls.append((namespace, selector))
        wanted = dict(pair.split("=", 1) for pair in selector.split(","))
        return [
            job
            for job in self.jobs
            if job["metadata"].get("namespace", namespace) == namespace
            and all(job["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        from retrain_controller.jobstore import AlreadyExistsError

        if self.fail_create is not None:
            raise self.fail_create
        if any(job["metadata"]["name"] == manifest["metadata"]["name"] for job in self.jobs):
            raise AlreadyExistsError(f'jobs.batch "{manifest["metadata"]["name"]}" already exists')
        self.created.append(manifest)
        self.jobs.append(manifest)
        return manifest
