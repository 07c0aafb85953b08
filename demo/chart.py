"""What the demo takes from the Helm chart: the PrometheusRule, rendered by the real helm.

The demo runs the very rules a cluster would get. Only their timing is shortened, through the chart's
own values (`prometheusRule.rules.<Alert>.for` and friends), never by editing the rendered YAML.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RULE_TEMPLATE_DIR = "templates/monitoring"


def chartlib():
    """tests/chartlib.py (the project's one way to render the chart offline), loaded by path."""
    module = sys.modules.get("chartlib")
    if module is None:
        spec = importlib.util.spec_from_file_location("chartlib", REPO / "tests" / "chartlib.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["chartlib"] = module
        spec.loader.exec_module(module)
    return module


def rule_templates() -> list[str]:
    """Chart-relative paths of the templates that may render a PrometheusRule."""
    folder = REPO / "charts" / "kserve-model-monitoring" / RULE_TEMPLATE_DIR
    return [f"{RULE_TEMPLATE_DIR}/{p.name}" for p in sorted(folder.glob("*.yaml"))]


def render_rule_groups(
    set_values: dict[str, Any],
    release: str,
    namespace: str,
    values_files: tuple[str, ...] = (),
) -> list[dict]:
    """The `spec.groups` of every PrometheusRule the chart renders with these values."""
    lib = chartlib()
    templates = rule_templates()
    if not templates:
        raise RuntimeError(f"the chart has no rule templates under {RULE_TEMPLATE_DIR}/ yet")
    docs = lib.render_chart(
        values_files=values_files,
        set_values={**DEMO_INSTALL_VALUES, **set_values},
        show_only=templates,
        release=release,
        namespace=namespace,
    )
    groups = [g for d in docs if d.get("kind") == "PrometheusRule" for g in d["spec"].get("groups", [])]
    if not groups:
        raise RuntimeError("the chart rendered no PrometheusRule groups (is prometheusRule.enabled false?)")
    return groups


def write_rules_file(groups: list[dict], path: Path, promtool: str = "promtool") -> Path:
    """Write a Prometheus rules file and prove it with `promtool check rules`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    check = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise RuntimeError(f"promtool check rules {path} failed:\n{check.stdout}{check.stderr}")
    return path


def alert_names(groups: list[dict]) -> list[str]:
    return [r["alert"] for g in groups for r in g.get("rules", []) if "alert" in r]


# Values a render needs; the demo serves the model from a local directory instead.
DEMO_INSTALL_VALUES = {"predictor.storageUri": "pvc://demo-models/breast-cancer"}
IDENTITY_TEMPLATES = [
    "templates/predictor/inferenceservice.yaml",
    "templates/predictor/podmonitor.yaml",
    "templates/drift-detector/servicemonitor.yaml",
    "templates/drift-detector/service.yaml",
]


@dataclass(frozen=True)
class Deployment:
    """What the chart would create for a release, as far as scrape labels and the logger go."""

    model_name: str  # the InferenceService name: the model_name label
    predictor_job: str  # prometheus-operator's job label of a PodMonitor target: <namespace>/<name>
    drift_job: str  # a ServiceMonitor target's job label: the Service name
    drift_service: str
    logger_url: str  # spec.predictor.logger.url: the drift detector Service, or the values' url
    logger_mode: str
    metadata_headers: tuple[str, ...]


def deployment(release: str, namespace: str, set_values: dict[str, Any] | None = None) -> Deployment:
    """Render the InferenceService, the monitors and the drift detector Service of a release."""
    docs = chartlib().render_chart(
        set_values={**DEMO_INSTALL_VALUES, **(set_values or {})},
        show_only=IDENTITY_TEMPLATES,
        release=release,
        namespace=namespace,
    )
    by_kind = {d["kind"]: d for d in docs}
    isvc = by_kind["InferenceService"]
    logger = isvc["spec"]["predictor"].get("logger")
    if not logger:
        raise RuntimeError("the chart rendered no spec.predictor.logger: set predictor.logger.enabled")
    service = by_kind["Service"]["metadata"]["name"]
    monitor = by_kind["ServiceMonitor"]["spec"]
    # prometheus-operator takes a ServiceMonitor target's job from the Service name unless jobLabel says.
    if monitor.get("jobLabel"):
        raise RuntimeError("the chart's ServiceMonitor sets jobLabel: the demo's job labels need updating")
    return Deployment(
        model_name=isvc["metadata"]["name"],
        predictor_job=f"{namespace}/{by_kind['PodMonitor']['metadata']['name']}",
        drift_job=service,
        drift_service=service,
        logger_url=logger["url"],
        logger_mode=logger.get("mode", "all"),
        metadata_headers=tuple(logger.get("metadataHeaders") or ()),
    )
