"""The values example in the top-level README is what users copy first: it must render as documented."""

from __future__ import annotations

import re

from chartlib import REPO, find, render_chart


def readme_values(tmp_path):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    example = next(b for b in blocks if b.startswith("predictor:"))
    path = tmp_path / "readme-values.yaml"
    path.write_text(example)
    return path


def test_readme_example_renders_a_monitored_model_with_retraining(tmp_path):
    docs = render_chart(values_files=[readme_values(tmp_path)], release="fraud", namespace="models")
    isvc = find(docs, "InferenceService")
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "s3://models/fraud/v3"
    role = find(docs, "Role")
    assert role["metadata"]["namespace"] == "training"
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert find(docs, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert find(docs, "CronJob")
