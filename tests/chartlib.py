"""Render the kserve-model-monitoring chart from tests, with the real helm.

Offline, `helm dependency build` cannot reach prometheus-community, so the chart is rendered from a
temporary copy whose charts/ holds a local STAND-IN for kube-prometheus-stack: same name and version
as Chart.lock, carrying only the prometheus-operator CRDs (copied from the Go module cache by
ci/standin/prepare.sh). Nothing of the real kube-prometheus-stack chart is rendered or copied.

Usage from another test directory (tests have no __init__.py; add this to your conftest.py):

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/
    from chartlib import render_chart, find

    docs = render_chart(values_files=["charts/kserve-model-monitoring/ci/all-features-values.yaml"],
                        set_values={"driftDetector.enabled": True, "predictor.storageUri": "pvc://m"},
                        show_only=["templates/monitoring/prometheusrule.yaml"])
    rule = find(docs, kind="PrometheusRule")

- values_files: paths (absolute or relative to the repository root), applied in order after
  ci/default-values.yaml, which gives the chart's one required value (predictor.storageUri); set
  it to "" in set_values to render without one.
- set_values: {dotted.key: python value}; passed as `--set-json key=<json>` so types are exact.
- show_only: a template path relative to the chart ("templates/x.yaml") or a list of them.
- release / namespace: the release name (default "kmm") and namespace (default "models").
- include_crds: also return the stand-in's prometheus-operator CRDs (default False).
Returns the rendered objects as a list of dicts (empty documents dropped), in helm's order.
Raises ChartRenderError with helm's stderr when helm fails (schema rejections land here).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART_DIR = REPO / "charts" / "kserve-model-monitoring"
TOOLS_BIN = REPO / ".tools" / "bin"
KUBE_VERSION = "1.31.0"
# The chart's defaults plus its one required value: the base of every render here.
BASE_VALUES = CHART_DIR / "ci" / "default-values.yaml"
# The blob-storage logger and the batch drift job on Spark, as the Kubernetes tier's tests install them.
SPARK_BATCH_VALUES = {
    "predictor.logger.blob.enabled": True,
    "predictor.logger.blob.uri": "s3://payload-logs/kserve",
    "driftDetector.reference.uri": "s3://models/fraud/reference.parquet",
    "batchDrift.enabled": True,
    "batchDrift.engine": "spark",
    "batchDrift.spark.image.repository": "registry.example.com/drift-detector-spark",
    "batchDrift.spark.image.tag": "0.1.0-spark4.3.0",
}
STANDIN_NOTICE = (
    "chartlib: kube-prometheus-stack is an OFFLINE STAND-IN (prometheus-operator CRDs only); "
    "`helm dependency build` with network gets the real chart"
)

_prepared: Path | None = None


class ChartRenderError(RuntimeError):
    """helm template failed; the message carries helm's stderr."""


def helm_env() -> dict[str, str]:
    """Environment with the repository's helm first on PATH and helm's homes inside .tools/."""
    env = dict(os.environ)
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("HELM_PLUGINS", str(REPO / ".tools" / "helm-plugins"))
    for kind in ("CACHE", "CONFIG", "DATA"):
        env.setdefault(f"HELM_{kind}_HOME", str(REPO / ".tools" / "helm" / kind.lower()))
    return env


def prepared_chart() -> Path:
    """Path of a temporary chart copy with the stand-in dependency packaged (built once per process)."""
    global _prepared
    if _prepared is None:
        work = Path(tempfile.mkdtemp(prefix="kmm-chart-"))
        atexit.register(shutil.rmtree, work, ignore_errors=True)
        out = subprocess.run(
            [str(REPO / "ci" / "standin" / "prepare.sh"), str(work)],
            env=helm_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise ChartRenderError(f"preparing the stand-in chart failed:\n{out.stderr}")
        print(STANDIN_NOTICE, file=sys.stderr)
        _prepared = Path(out.stdout.strip())
    return _prepared


def chart_at_version(tmp_path, version: str):
    """A copy of the prepared chart whose Chart.yaml says `version` (appVersion, the image tag, unchanged)."""
    chart = tmp_path / version / "kserve-model-monitoring"
    shutil.copytree(prepared_chart(), chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = version
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return chart


def render_raw(
    values_files=(),
    set_values=None,
    show_only=None,
    release: str = "kmm",
    namespace: str = "models",
    include_crds: bool = False,
) -> str:
    """`helm template` output as text (see render_chart for the arguments)."""
    cmd = ["helm", "template", release, str(prepared_chart()), "--namespace", namespace]
    cmd += ["--kube-version", KUBE_VERSION]
    if include_crds:
        cmd.append("--include-crds")
    for path in (BASE_VALUES, *values_files):
        cmd += ["--values", str((REPO / path).resolve())]
    for key, value in (set_values or {}).items():
        cmd += ["--set-json", f"{key}={json.dumps(value)}"]
    if isinstance(show_only, str):
        show_only = [show_only]
    for template in show_only or ():
        cmd += ["--show-only", template]
    out = subprocess.run(cmd, env=helm_env(), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise ChartRenderError(out.stderr.strip())
    return out.stdout


def render_chart(
    values_files=(),
    set_values=None,
    show_only=None,
    release: str = "kmm",
    namespace: str = "models",
    include_crds: bool = False,
) -> list[dict]:
    """Rendered objects as dicts; see the module docstring."""
    text = render_raw(values_files, set_values, show_only, release, namespace, include_crds)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    """The one object of `kind` (and `name`, when given); AssertionError when not exactly one."""
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def scenario_files() -> list[Path]:
    """The chart-testing scenarios: charts/kserve-model-monitoring/ci/*-values.yaml."""
    return sorted((CHART_DIR / "ci").glob("*-values.yaml"))
