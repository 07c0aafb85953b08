"""Configuration: one kmm_settings table row per config key; flag > environment > YAML file > default.

The file uses the chart's camelCase keys (the chart renders `toYaml` of its values into a
ConfigMap), nested as dotted keys say (`prometheus.url`). The table parses each value strictly and
refuses unknown keys; build_settings() then checks what spans keys (ttl >= cooldown, DNS names).
Every problem raises ConfigError naming the offending key and where its value came from.
"""

from __future__ import annotations

import argparse
import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kmm_settings import (
    Boolean,
    Choice,
    Duration,
    Integer,
    ListOf,
    Loaded,
    MappingOf,
    Number,
    Setting,
    SettingError,
    Table,
    Text,
)

from retrain_controller.naming import DNS_1123_LABEL

DEFAULT_QUERY = "max by (model_name, namespace) (model_drift_score)"

# The defaults of every config key, nested as in the file; TABLE below gives each its kind and forms.
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

ConfigError = SettingError  # "invalid config <key>: <problem> (from <flag, env or file>)"


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
    try:
        return Duration().parse(text)
    except ValueError as err:
        raise ConfigError(key, str(err)) from None


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merge key by key; any other value (lists included) replaces the base."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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
    """Check what spans keys in the merged configuration and turn it into Settings."""
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


@dataclass(frozen=True)
class Timestamp:
    """A kmm_settings kind: unix seconds or ISO 8601, to seconds; empty means now (None)."""

    def parse(self, value: Any) -> float | None:
        if value in (None, ""):
            return None
        try:
            return Number().parse(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ValueError(f"expected unix seconds or ISO 8601, got {value!r}") from None

    def describe(self) -> str:
        return "unix seconds or ISO 8601"


def _default(key: str) -> Any:
    node: Any = DEFAULTS
    for part in key.split("."):
        node = node[part]
    return node


def _row(key: str, kind: Any, text: str, name: str = "", **forms: str) -> Setting:
    """A config key's row; its name (so flag and env) is the key in snake_case unless given."""
    name = name or re.sub(r"(?<!^)(?=[A-Z])", "_", key.replace(".", "_")).lower()
    return Setting(name, kind, _default(key), text, key=key, **forms)


_LABELS = MappingOf(Text())
_OBJECTS = ListOf(MappingOf())
_ARGS = ListOf(Text(numbers=True))
TABLE = Table(
    [
        _row("prometheus.url", Text(non_empty=True), "Prometheus base URL (http or https)"),
        _row(
            "prometheus.bearerTokenFile",
            Text(),
            "file with a bearer token for Prometheus",
            "bearer_token_file",
        ),
        _row(
            "prometheus.caFile", Text(), "CA bundle for an https Prometheus (empty: system roots)", "ca_file"
        ),
        _row("prometheus.insecureSkipVerify", Boolean(), "skip TLS verification", "insecure_skip_verify"),
        _row(
            "prometheus.timeout",
            Duration(),
            "query timeout, sent as timeout= and enforced (+2s) as a deadline for the whole answer",
            "prometheus_timeout",
        ),
        _row("query", Text(non_empty=True), "PromQL with one drift value per model"),
        _row("modelLabel", Text(non_empty=True), "label of the query's result that names the model"),
        _row("namespaceLabel", Text(), "label that names the model's namespace (may be absent)"),
        _row("threshold", Number(), "retrain when the drift value is >= this"),
        _row(
            "sustainedFor", Duration(), "drift must stay over the threshold this long (0: latest value only)"
        ),
        _row("evaluationStep", Duration(min=1), "step of the sustained window's subquery"),
        _row("minCoverage", Number(above=0, max=1), "share of the window's steps that must have data"),
        _row(
            "cooldown",
            Duration(min=60),
            "no new retrain of a model this long after its last; Job-name bucket",
        ),
        _row("maxConcurrent", Integer(min=1), "most retrain Jobs (of this release) active at once"),
        _row("trainingNamespace", Text(non_empty=True), "namespace the Jobs are listed and created in"),
        _row(
            "release",
            Text(non_empty=True),
            "Helm release name: the app.kubernetes.io/instance label of the Jobs",
        ),
        _row(
            "driftReportUrl", Text(), "link written on each Job; {model_name} and {namespace} are filled in"
        ),
        _row(
            "job.namePrefix",
            Text(non_empty=True),
            "Job name prefix: <prefix>-<model>-<hash>, DNS-1123, <= 20",
        ),
        _row("job.image", Text(), "training image (required)"),
        _row(
            "job.imagePullPolicy", Choice(("Always", "IfNotPresent", "Never")), "training image pull policy"
        ),
        _row("job.command", _ARGS, "container command (empty: the image's entrypoint)"),
        _row(
            "job.args", _ARGS, "container args; $(RETRAIN_MODEL_NAME) and the other injected variables expand"
        ),
        _row(
            "job.env", _OBJECTS, "extra env entries (Kubernetes EnvVars); one named like an injected one wins"
        ),
        _row("job.resources", MappingOf(), "container resources, merged over the default; null drops a key"),
        _row("job.serviceAccountName", Text(), "service account of the training pod"),
        _row(
            "job.automountServiceAccountToken",
            Boolean(),
            "mount the service account token in the training pod",
        ),
        _row("job.volumes", _OBJECTS, "pod volumes"),
        _row("job.volumeMounts", _OBJECTS, "container volume mounts"),
        _row("job.backoffLimit", Integer(min=0, nullable=True), "retries of a failed training pod"),
        _row(
            "job.ttlSecondsAfterFinished",
            Integer(min=0, nullable=True),
            "keep finished Jobs this long; must be >= cooldown (the cooldown guard reads them)",
        ),
        _row("job.activeDeadlineSeconds", Integer(min=1, nullable=True), "a training Job may run this long"),
        _row("job.labels", _LABELS, "extra labels on the Job (the controller's own labels win)"),
        _row("job.annotations", _LABELS, "extra annotations on the Job"),
        _row("job.podLabels", _LABELS, "extra labels on the training pod"),
        _row("job.podAnnotations", _LABELS, "extra annotations on the training pod"),
        _row("job.nodeSelector", _LABELS, "pod node selector (e.g. a GPU pool)"),
        _row("job.tolerations", _OBJECTS, "pod tolerations"),
        _row("job.affinity", MappingOf(), "pod affinity"),
        _row("job.podSecurityContext", MappingOf(), "merged over the secure pod defaults"),
        _row("job.securityContext", MappingOf(), "merged over the secure container defaults"),
        # How to run rather than what to decide: in the table too, so each has all three forms.
        Setting(
            "dry_run",
            Boolean(),
            False,
            "print the Job manifests as YAML on stdout, create nothing",
            key="dryRun",
        ),
        Setting("at", Timestamp(), None, "evaluate as of this time instead of now (replays and tests)"),
        Setting("kubeconfig", Text(), "", "kubeconfig when not running in a cluster", env="KUBECONFIG"),
        Setting(
            "watch_interval",
            Integer(min=1),
            60,
            "watch: seconds between passes",
            flag="--interval",
            key="watch.interval",
        ),
        Setting(
            "watch_passes",
            Integer(min=0),
            0,
            "watch: stop after N passes, 0 = until SIGTERM",
            flag="--passes",
            key="watch.passes",
        ),
    ],
    env_prefix="RETRAINER_",
    config_env="RETRAINER_CONFIG",
)
RUN_OPTIONS = ("dry_run", "at", "kubeconfig", "watch_interval", "watch_passes")


def settings_from(loaded: Loaded) -> Settings:
    """The decision settings from the table's values; a cross-key problem names its source too."""
    raw: dict[str, Any] = {}
    for setting in TABLE.settings:
        *parents, last = setting.key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = loaded.values[setting.name]
    raw["job"]["resources"] = deep_merge(DEFAULTS["job"]["resources"], raw["job"]["resources"])
    try:
        return build_settings(raw)
    except ConfigError as err:
        setting = TABLE.by_key.get(err.key.split("[")[0])
        if err.source or setting is None:
            raise
        raise ConfigError(err.key, err.problem, loaded.sources[setting.name]) from None


def load_settings(path: str | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Defaults < file < overrides by config key (as if given as flags): for tests and library use."""
    given = {TABLE.by_key[key].name: value for key, value in (overrides or {}).items()}
    return settings_from(TABLE.load(argparse.Namespace(**given, **({"config": path} if path else {})), {}))
