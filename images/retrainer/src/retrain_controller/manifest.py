"""Builds the retraining Job manifest (a plain dict, exactly what is sent to the API server)."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from retrain_controller.config import Settings, deep_merge
from retrain_controller.naming import label_value

MANAGED_BY = "kserve-model-monitoring-retrainer"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MODEL = "kserve-model-monitoring/model"
LABEL_MODEL_NAMESPACE = "kserve-model-monitoring/model-namespace"
ANNOTATION_PREFIX = "kserve-model-monitoring/"
CONTAINER_NAME = "train"

# The project's secure defaults; the Job template's podSecurityContext/securityContext merge over them.
POD_SECURITY_DEFAULTS: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_DEFAULTS: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def release_selector(release: str) -> str:
    """Every Job this release's controller created, whatever the model."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_INSTANCE}={label_value(release)}"


def model_labels(settings: Settings, model_namespace: str, model_name: str) -> dict[str, str]:
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_INSTANCE: label_value(settings.release),
        LABEL_COMPONENT: "retrain-job",
        LABEL_MODEL: label_value(model_name),
    }
    if model_namespace:
        labels[LABEL_MODEL_NAMESPACE] = label_value(model_namespace)
    return labels


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_value(value: float | None) -> str:
    if value is None:
        return "missing"
    return "NaN" if math.isnan(value) else f"{value:.6g}"


def report_url(settings: Settings, model_namespace: str, model_name: str) -> str:
    """driftReportUrl with {model_name} and {namespace} filled in (URL-quoted)."""
    url = settings.drift_report_url
    url = url.replace("{model_name}", quote(model_name, safe=""))
    return url.replace("{namespace}", quote(model_namespace, safe=""))


def build_job(
    settings: Settings,
    *,
    name: str,
    model_namespace: str,
    model_name: str,
    value: float | None,
    current: float | None,
    query: str,
    decided_at: float,
) -> dict[str, Any]:
    job = settings.job
    ours = model_labels(settings, model_namespace, model_name)
    # Our labels win over the template's: the guards select on them.
    labels = {**job["labels"], **ours}
    url = report_url(settings, model_namespace, model_name)
    annotations = {
        **job["annotations"],
        ANNOTATION_PREFIX + "model-name": model_name,
        ANNOTATION_PREFIX + "model-namespace": model_namespace,
        ANNOTATION_PREFIX + "drift-value": format_value(value),
        ANNOTATION_PREFIX + "drift-current": format_value(current),
        ANNOTATION_PREFIX + "drift-threshold": f"{settings.threshold:g}",
        ANNOTATION_PREFIX + "sustained-for": f"{settings.sustained_for_seconds}s",
        ANNOTATION_PREFIX + "drift-query": query,
        ANNOTATION_PREFIX + "decided-at": rfc3339(decided_at),
    }
    if url:
        annotations[ANNOTATION_PREFIX + "drift-report-url"] = url
    spec: dict[str, Any] = {
        "backoffLimit": job["backoffLimit"],
        "template": {
            "metadata": {
                "labels": {**job["podLabels"], **ours},
                "annotations": dict(job["podAnnotations"]),
            },
            "spec": _pod_spec(job, model_namespace, model_name, value, decided_at, url),
        },
    }
    for key in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        if job[key] is not None:
            spec[key] = job[key]
    if job["backoffLimit"] is None:
        del spec["backoffLimit"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.training_namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def _pod_spec(
    job: dict[str, Any],
    model_namespace: str,
    model_name: str,
    value: float | None,
    decided_at: float,
    url: str,
) -> dict[str, Any]:
    volumes = copy.deepcopy(job["volumes"])
    mounts = copy.deepcopy(job["volumeMounts"])
    # A read-only root filesystem still needs a scratch /tmp, unless the template brings its own.
    if not any(m.get("mountPath") == "/tmp" for m in mounts) and not any(
        v.get("name") == "tmp" for v in volumes
    ):
        volumes.append({"name": "tmp", "emptyDir": {}})
        mounts.append({"name": "tmp", "mountPath": "/tmp"})
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": job["image"],
        "imagePullPolicy": job["imagePullPolicy"],
        "env": _env(job["env"], model_namespace, model_name, value, decided_at, url),
        "resources": _without_nulls(job["resources"]),
        "securityContext": deep_merge(CONTAINER_SECURITY_DEFAULTS, job["securityContext"]),
        "volumeMounts": mounts,
    }
    if job["command"]:
        container["command"] = list(job["command"])
    if job["args"]:
        container["args"] = list(job["args"])
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": job["automountServiceAccountToken"],
        "securityContext": deep_merge(POD_SECURITY_DEFAULTS, job["podSecurityContext"]),
        "containers": [container],
        "volumes": volumes,
    }
    if job["serviceAccountName"]:
        pod["serviceAccountName"] = job["serviceAccountName"]
    for key in ("nodeSelector", "tolerations", "affinity"):
        if job[key]:
            pod[key] = copy.deepcopy(job[key])
    return pod


def _env(
    template_env: list[dict[str, Any]],
    model_namespace: str,
    model_name: str,
    value: float | None,
    decided_at: float,
    url: str,
) -> list[dict[str, Any]]:
    """What the training code needs to know; usable in args as $(RETRAIN_MODEL_NAME)."""
    injected = {
        "RETRAIN_MODEL_NAME": model_name,
        "RETRAIN_MODEL_NAMESPACE": model_namespace,
        "RETRAIN_DRIFT_VALUE": format_value(value),
        "RETRAIN_DECIDED_AT": rfc3339(decided_at),
    }
    if url:
        injected["RETRAIN_DRIFT_REPORT_URL"] = url
    # Entries from the template with the same name win.
    own = {entry["name"] for entry in template_env}
    env = [{"name": k, "value": v} for k, v in injected.items() if k not in own]
    return env + copy.deepcopy(template_env)


def _without_nulls(resources: dict[str, Any]) -> dict[str, Any]:
    """`limits: {cpu: null}` in an override removes a default."""
    cleaned: dict[str, Any] = {}
    for section, values in resources.items():
        if isinstance(values, dict):
            kept = {k: v for k, v in values.items() if v is not None}
            if kept:
                cleaned[section] = kept
        elif values is not None:
            cleaned[section] = values
    return cleaned
