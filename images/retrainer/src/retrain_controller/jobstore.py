"""All Kubernetes access goes through JobStore: list Jobs by label selector, create one Job.

The decision code only sees plain dicts (the JSON the API server returns), so it is tested
without Kubernetes; KubeJobStore is the one real implementation, tested against a real
kube-apiserver in tests/k8s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, Protocol

JOBS = "jobs.batch"


class JobStoreError(RuntimeError):
    """The Kubernetes API failed in a way that is not the caller's decision to make."""


class ForbiddenError(JobStoreError):
    """RBAC denied a request: verb, resource and namespace say which permission is missing."""

    def __init__(self, verb: str, resource: str, namespace: str, detail: str = ""):
        self.verb, self.resource, self.namespace = verb, resource, namespace
        message = f"forbidden: cannot {verb} {resource} in namespace {namespace!r}"
        message += f" (the ServiceAccount needs a Role granting verb {verb!r} on {resource})"
        super().__init__(f"{message}: {detail}" if detail else message)


class AlreadyExistsError(JobStoreError):
    """A Job with that name exists: another run got there first, which counts as done."""


class JobStore(Protocol):
    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Jobs (as API JSON dicts) in namespace matching the label selector."""
        ...

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create the Job; raises AlreadyExistsError, ForbiddenError or JobStoreError."""
        ...


class EmptyJobStore:
    """For --dry-run without any cluster: no Jobs exist and nothing can be created."""

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return []

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        raise JobStoreError("no Kubernetes configuration: cannot create Jobs")


class LazyJobStore:
    """Connects on first use, so a pass that stops at Prometheus never needs a cluster."""

    def __init__(self, factory: Callable[[], JobStore]):
        self._factory = factory
        self._store: JobStore | None = None

    def _get(self) -> JobStore:
        if self._store is None:
            self._store = self._factory()
        return self._store

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._get().list_jobs(namespace, selector)

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        return self._get().create_job(namespace, manifest)


def load_kube_client_config(kubeconfig: str | None) -> Any:
    """In-cluster configuration first (the CronJob), else --kubeconfig / KUBECONFIG / ~/.kube/config."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)
            return configuration
        except config.ConfigException:
            pass  # the variables are set but no token is mounted: fall back to a kubeconfig
    try:
        config.load_kube_config(config_file=kubeconfig or None, client_configuration=configuration)
    except (config.ConfigException, OSError, TypeError) as err:
        raise JobStoreError(f"no Kubernetes configuration (in-cluster or kubeconfig): {err}") from err
    return configuration


class KubeJobStore:
    """JobStore over the official kubernetes client's BatchV1Api."""

    def __init__(self, configuration: Any, request_timeout: float = 30.0):
        from kubernetes import client

        self._client = client
        self._api = client.BatchV1Api(client.ApiClient(configuration))
        self._timeout = request_timeout

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        token = None
        while True:
            try:
                response = self._api.list_namespaced_job(
                    namespace,
                    label_selector=selector,
                    limit=500,
                    _continue=token,
                    _preload_content=False,
                    _request_timeout=self._timeout,
                )
                page = json.loads(response.data)
            except Exception as err:
                raise translate_error(err, "list", namespace) from err
            jobs.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return jobs

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        body = self._client.V1Job.from_dict(manifest)
        try:
            response = self._api.create_namespaced_job(
                namespace, body, _preload_content=False, _request_timeout=self._timeout
            )
            return json.loads(response.data)
        except Exception as err:
            raise translate_error(err, "create", namespace) from err


def translate_error(err: Exception, verb: str, namespace: str) -> JobStoreError:
    """Map the client's exceptions onto the three outcomes the controller acts on."""
    from kubernetes.client.exceptions import ApiException

    if not isinstance(err, ApiException):
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return JobStoreError(f"kubernetes API unreachable while trying to {verb} {JOBS}: {text}")
    message = _status_message(err)
    if err.status == 403:
        return ForbiddenError(verb, JOBS, namespace, message)
    if err.status == 409 and verb == "create":
        return AlreadyExistsError(message or "already exists")
    return JobStoreError(f"kubernetes API answered {err.status} {err.reason} to {verb} {JOBS}: {message}")


def _status_message(err: Any) -> str:
    """The API server's Status object carries the readable message."""
    try:
        status = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        return str(err.body or "").strip()
    return str(status.get("message", "")).strip() if isinstance(status, dict) else ""
