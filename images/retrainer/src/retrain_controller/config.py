"""Configuration: built-in defaults, then the YAML file, then environment variables, then flags.

The file uses the chart's camelCase keys (the chart renders `toYaml` of its values into a
ConfigMap). Unknown keys are rejected so that a typo never silently falls back to a default.
Every problem raises ConfigError naming the offending key.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retrain_controller.naming import DNS_1123_LABEL

DEFAULT_QUERY = "max by (model_name, namespace) (model_drift_score)"

# The defaults double as the schema: every accepted key appears here (job.* keys are the
# Job template and are checked separately below).
DEFAULTS: dict[str, Any] = {
    "prometheus": {
        "url": "http://localhost:9090",
        "bearerTokenFile": "",
        "caFile": "",
        "insecureSkipVerify": False,
        "timeout": "30s",
    },
    "query": DEFAULT_QUERY,
    "modelLabel": "model_name",
    "namespaceLabel": "namespace",
    "threshold": 0.5,
    "sustainedFor": "15m",
    "evaluationStep": "1m",
    "minCoverage": 0.9,
    "cooldown": "6h",
    "maxConcurrent": 1,
    "trainingNamespace": "default",
    "release": "kserve-model-monitoring",
    "driftReportUrl": "",
    "job": {
        "namePrefix": "retrain",
        "image": "",
        "imagePullPolicy": "IfNotPresent",
        "command": [],
        "args": [],
        "env": [],
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
        "serviceAccountName": "",
        "automountServiceAccountToken": False,
        "volumes": [],
        "volumeMounts": [],
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 86400,
        "activeDeadlineSeconds": 14400,
        "labels": {},
        "annotations": {},
        "podLabels": {},
        "podAnnotations": {},
        "nodeSelector": {},
        "tolerations": [],
        "affinity": {},
        "podSecurityContext": {},
        "securityContext": {},
    },
}

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(ValueError):
    """Invalid configuration; `key` names the offending setting."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"invalid config {key}: {problem}")
        self.key = key


@dataclass(frozen=True)
class PrometheusSettings:
    url: str
    bearer_token_file: str
    ca_file: str
    insecure_skip_verify: bool
    timeout_seconds: float


@dataclass(frozen=True)
class Settings:
    prometheus: PrometheusSettings
    query: str
    model_label: str
    namespace_label: str
    threshold: float
    sustained_for_seconds: int
    evaluation_step_seconds: int
    min_coverage: float
    cooldown_seconds: int
    max_concurrent: int
    training_namespace: str
    release: str
    drift_report_url: str
    job: dict[str, Any] = field(default_factory=dict)


def parse_duration(text: Any, key: str) -> float:
    """'90s', '15m', '1h30m', '2d', a bare number of seconds, or 0."""
    if isinstance(text, bool):
        raise ConfigError(key, f"expected a duration like 15m, got {text!r}")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        raw = str(text).strip()
        if re.fullmatch(r"\d+(\.\d+)?", raw):
            seconds = float(raw)
        elif raw and _DURATION_PART.sub("", raw) == "":
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(raw))
        else:
            raise ConfigError(key, f"expected a duration like 90s, 15m, 6h or 1h30m, got {text!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(key, f"must be a non-negative duration, got {text!r}")
    return seconds


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merge key by key; any other value (lists included) replaces the base."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_file(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError("--config", f"cannot read {path}: {err.strerror or err}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError("--config", f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("--config", f"{path} must hold a mapping at the top level")
    return data


def _check_known_keys(data: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(dotted, f"unknown key (known: {', '.join(sorted(schema))})")
        if isinstance(schema[key], dict) and dotted not in _FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(dotted, "must be a mapping")
            _check_known_keys(value, schema[key], f"{dotted}.")


# Mappings passed through to Kubernetes as they are: their keys are not ours to check.
_FREE_FORM = {
    "job.resources",
    "job.labels",
    "job.annotations",
    "job.podLabels",
    "job.podAnnotations",
    "job.nodeSelector",
    "job.affinity",
    "job.podSecurityContext",
    "job.securityContext",
}


def _typed(raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    node: Any = raw
    for part in key.split("."):
        node = node[part]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(node, bool) and bool not in kinds:
        raise ConfigError(key, f"expected {_kind_name(kinds)}, got {node!r}")
    if not isinstance(node, kinds):
        raise ConfigError(key, f"expected {_kind_name(kinds)}, got {node!r}")
    return node


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    names.update({list: "a list", dict: "a mapping"})
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _number(raw: dict[str, Any], key: str) -> float:
    value = _typed(raw, key, (int, float, str))
    try:
        number = float(value)
    except ValueError as err:
        raise ConfigError(key, f"expected a number, got {value!r}") from err
    if not math.isfinite(number):
        raise ConfigError(key, f"must be a finite number, got {value!r}")
    return number


def _integer(raw: dict[str, Any], key: str, minimum: int) -> int:
    value = _typed(raw, key, (int, str))
    try:
        number = int(value)
    except ValueError as err:
        raise ConfigError(key, f"expected an integer, got {value!r}") from err
    if number < minimum:
        raise ConfigError(key, f"must be >= {minimum}, got {number}")
    return number


def _optional_integer(job: dict[str, Any], key: str, minimum: int) -> None:
    if job[key] is None:
        return
    job[key] = _integer({"job": job}, f"job.{key}", minimum)


def _validate_job(raw: dict[str, Any], cooldown: float) -> dict[str, Any]:
    job = copy.deepcopy(raw["job"])
    prefix = _typed(raw, "job.namePrefix", str)
    if not DNS_1123_LABEL.match(prefix) or len(prefix) > 20:
        raise ConfigError(
            "job.namePrefix", f"must be a DNS-1123 label of at most 20 characters, got {prefix!r}"
        )
    image = _typed(raw, "job.image", str)
    if not image.strip():
        raise ConfigError("job.image", "the training image is required")
    if job["imagePullPolicy"] not in ("Always", "IfNotPresent", "Never"):
        raise ConfigError("job.imagePullPolicy", "must be Always, IfNotPresent or Never")
    for key in ("command", "args"):
        items = _typed(raw, f"job.{key}", list)
        if not all(isinstance(item, str | int | float) and not isinstance(item, bool) for item in items):
            raise ConfigError(f"job.{key}", "must be a list of strings")
        job[key] = [str(item) for item in items]
    for key in ("env", "volumes", "volumeMounts", "tolerations"):
        items = _typed(raw, f"job.{key}", list)
        if not all(isinstance(item, dict) for item in items):
            raise ConfigError(f"job.{key}", "must be a list of mappings")
    for index, item in enumerate(job["env"]):
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise ConfigError(f"job.env[{index}].name", "every env entry needs a name")
    for key in ("labels", "annotations", "podLabels", "podAnnotations", "nodeSelector"):
        mapping = _typed(raw, f"job.{key}", dict)
        if not all(isinstance(v, str) for v in mapping.values()):
            raise ConfigError(f"job.{key}", "values must be strings (quote numbers and booleans)")
    _typed(raw, "job.serviceAccountName", str)
    _typed(raw, "job.automountServiceAccountToken", bool)
    _optional_integer(job, "backoffLimit", 0)
    _optional_integer(job, "activeDeadlineSeconds", 1)
    _optional_integer(job, "ttlSecondsAfterFinished", 0)
    ttl = job["ttlSecondsAfterFinished"]
    if ttl is not None and ttl < cooldown:
        # The cooldown guard reads finished Jobs: deleting them earlier would re-open the gate.
        raise ConfigError(
            "job.ttlSecondsAfterFinished",
            f"must be >= cooldown ({int(cooldown)}s) so finished Jobs stay visible to the cooldown guard",
        )
    return job


def build_settings(raw: dict[str, Any]) -> Settings:
    """Validate the merged configuration and turn it into Settings."""
    _check_known_keys(raw, DEFAULTS)
    url = _typed(raw, "prometheus.url", str).strip()
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError("prometheus.url", f"must be an http:// or https:// URL, got {url!r}")
    timeout = parse_duration(raw["prometheus"]["timeout"], "prometheus.timeout")
    if timeout <= 0:
        raise ConfigError("prometheus.timeout", "must be greater than 0")
    prometheus = PrometheusSettings(
        url=url.rstrip("/"),
        bearer_token_file=_typed(raw, "prometheus.bearerTokenFile", str),
        ca_file=_typed(raw, "prometheus.caFile", str),
        insecure_skip_verify=_typed(raw, "prometheus.insecureSkipVerify", bool),
        timeout_seconds=timeout,
    )
    query = _typed(raw, "query", str).strip()
    if not query:
        raise ConfigError("query", "must not be empty")
    sustained = parse_duration(raw["sustainedFor"], "sustainedFor")
    step = parse_duration(raw["evaluationStep"], "evaluationStep")
    if step < 1:
        raise ConfigError("evaluationStep", "must be at least 1s")
    if sustained and sustained < step:
        raise ConfigError("sustainedFor", f"must be 0 or at least evaluationStep ({int(step)}s)")
    coverage = _number(raw, "minCoverage")
    if not 0 < coverage <= 1:
        raise ConfigError("minCoverage", f"must be in (0, 1], got {coverage}")
    cooldown = parse_duration(raw["cooldown"], "cooldown")
    if cooldown < 60:
        raise ConfigError("cooldown", "must be at least 60s (it also sets the Job name bucket)")
    namespace = _typed(raw, "trainingNamespace", str)
    if not DNS_1123_LABEL.match(namespace) or len(namespace) > 63:
        raise ConfigError("trainingNamespace", f"must be a DNS-1123 label, got {namespace!r}")
    release = _typed(raw, "release", str)
    if not release or len(release) > 63:
        raise ConfigError("release", "must be 1 to 63 characters (it is a label value)")
    if not _typed(raw, "modelLabel", str):
        raise ConfigError("modelLabel", "must name the label that carries the model name")
    return Settings(
        prometheus=prometheus,
        query=query,
        model_label=_typed(raw, "modelLabel", str),
        namespace_label=_typed(raw, "namespaceLabel", str),
        threshold=_number(raw, "threshold"),
        sustained_for_seconds=int(sustained),
        evaluation_step_seconds=int(step),
        min_coverage=coverage,
        cooldown_seconds=int(cooldown),
        max_concurrent=_integer(raw, "maxConcurrent", 1),
        training_namespace=namespace,
        release=release,
        drift_report_url=_typed(raw, "driftReportUrl", str),
        job=_validate_job(raw, cooldown),
    )


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        value = deep_merge(node[last], value)
    node[last] = value


def load_settings(path: str | None, overrides: dict[str, Any]) -> Settings:
    """Defaults < file < overrides (dotted keys, already resolved from environment and flags)."""
    raw = copy.deepcopy(DEFAULTS)
    if path:
        file_data = load_file(path)
        _check_known_keys(file_data, DEFAULTS)
        raw = deep_merge(raw, file_data)
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    return build_settings(raw)
