"""The `helm test` hooks, run for real: the probe each test pod would run in the cluster, against the
real drift detector and the real predictor started on loopback with the args the chart renders."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from chartlib import render_chart

RELEASE = "kmm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hook_command(template: str) -> list[str]:
    (pod,) = render_chart(show_only=[template], release=RELEASE)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    return pod["spec"]["containers"][0]["command"]


def run_probe(command: list[str], url: str) -> subprocess.CompletedProcess:
    """The pod's own command, with the in-cluster URL pointed at loopback."""
    python, flag, script, _cluster_url, expect = command
    assert (python, flag) == ("python", "-c")
    return subprocess.run(
        [sys.executable, "-c", script, url, expect], capture_output=True, text=True, timeout=200, check=False
    )


@pytest.fixture
def server(tmp_path):
    started: list[subprocess.Popen] = []

    def start(args: list[str]) -> None:
        log = (tmp_path / f"server-{len(started)}.log").open("w")
        started.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path))

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_reference(path: Path) -> None:
    rows = ["f0,f1,prediction,target"]
    rows += [f"{i % 17 / 3:.3f},{(i * 7) % 11 / 5:.3f},{(i % 10) / 10:.1f},{i % 2}" for i in range(300)]
    path.write_text("\n".join(rows) + "\n")


def test_drift_detector_hook_passes_against_the_real_drift_detector(tmp_path, server):
    (deployment,) = render_chart(show_only=["templates/drift-detector/deployment.yaml"], release=RELEASE)
    (config_map,) = render_chart(show_only=["templates/drift-detector/configmap.yaml"], release=RELEASE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    reference = tmp_path / "reference.csv"
    write_reference(reference)
    config = tmp_path / "config.yaml"
    config.write_text(config_map["data"]["config.yaml"])
    port = free_port()
    local = {
        "--reference": str(reference),
        "--http-port": str(port),
        "--data-dir": str(tmp_path / "data"),
        "--reports-dir": str(tmp_path / "reports"),
        "--config": str(config),
    }
    args = []
    for arg in container["args"]:
        flag = arg.split("=")[0]
        args.append(f"{flag}={local[flag]}" if flag in local else arg)
    server([sys.executable, "-m", "drift_detector", *args])

    probe = hook_command("templates/tests/test-drift-detector.yaml")
    result = run_probe(probe, f"http://127.0.0.1:{port}/metrics")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "answered with 'model_name=\"kmm\"'" in result.stdout


def test_predictor_hook_passes_against_the_real_predictor(tmp_path, server):
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    (runtime,) = render_chart(show_only=["templates/predictor/servingruntime.yaml"], release=RELEASE)
    (model,) = render_chart(show_only=["templates/predictor/inferenceservice.yaml"], release=RELEASE)
    name = model["metadata"]["name"]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    rng = np.random.default_rng(7)
    features = rng.normal(size=(200, 3))
    joblib.dump(LogisticRegression().fit(features, features[:, 0] > 0), model_dir / "model.joblib")
    http_port, grpc_port = free_port(), free_port()
    # KServe fills in {{.Name}} and the storage initializer fills /mnt/models; loopback needs free ports.
    args = [
        a.replace("{{.Name}}", name)
        .replace("--model_dir=/mnt/models", f"--model_dir={model_dir}")
        .replace("--http_port=8080", f"--http_port={http_port}")
        for a in runtime["spec"]["containers"][0]["args"]
    ]
    server([sys.executable, "-m", "monitored_predictor", *args, f"--grpc_port={grpc_port}"])

    url = f"http://127.0.0.1:{http_port}/v1/models/{name}"
    result = run_probe(hook_command("templates/tests/test-predictor.yaml"), url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"ready"' in result.stdout


def test_hook_urls_are_the_in_cluster_services():
    drift = hook_command("templates/tests/test-drift-detector.yaml")
    predictor = hook_command("templates/tests/test-predictor.yaml")
    (service,) = render_chart(show_only=["templates/drift-detector/service.yaml"], release=RELEASE)
    host, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    assert drift[3] == f"http://{host}.models.svc.cluster.local:{port}/metrics"
    # KServe's Standard mode Service of the predictor is <isvc>-predictor on port 80.
    assert predictor[3] == f"http://{RELEASE}-predictor.models.svc.cluster.local/v1/models/{RELEASE}"
    assert drift[4] == 'model_name="kmm"'
