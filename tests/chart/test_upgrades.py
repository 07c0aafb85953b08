"""A chart upgrade must not restart the drift detector unless its own config or image changed: KServe's
payload logger never retries, so events sent while the detector restarts are lost."""

from __future__ import annotations

import subprocess

import yaml
from chartlib import BASE_VALUES, KUBE_VERSION, chart_at_version, helm_env


def drift_deployment(chart, *extra: str) -> dict:
    cmd = ["helm", "template", "fraud", str(chart), "--namespace", "models", "--kube-version", KUBE_VERSION]
    cmd += ["--values", str(BASE_VALUES), *extra]
    out = subprocess.run(cmd, env=helm_env(), capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    return next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("drift-detector")
    )


def test_a_chart_version_bump_leaves_the_drift_detector_pod_template_alone(tmp_path):
    before = drift_deployment(chart_at_version(tmp_path, "0.1.0"))
    after = drift_deployment(chart_at_version(tmp_path, "0.2.0"))
    # the bump took effect on the object itself ...
    assert before["metadata"]["labels"]["helm.sh/chart"] != after["metadata"]["labels"]["helm.sh/chart"]
    # ... and not on what the ReplicaSet controller compares
    assert before["spec"]["template"] == after["spec"]["template"]


def test_a_config_or_image_change_does_roll_the_drift_detector(tmp_path):
    chart = chart_at_version(tmp_path, "0.1.0")
    base = drift_deployment(chart)["spec"]["template"]
    config = drift_deployment(chart, "--set-json", "driftDetector.config.drift_share=0.3")["spec"]["template"]
    image = drift_deployment(chart, "--set", "driftDetector.image.tag=0.2.0")["spec"]["template"]
    assert (
        config["metadata"]["annotations"]["checksum/config"]
        != base["metadata"]["annotations"]["checksum/config"]
    )
    assert image["metadata"]["labels"]["app.kubernetes.io/version"] == "0.2.0"
    assert image != base
