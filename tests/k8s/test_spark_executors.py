"""Spark on Kubernetes, end to end without a kubelet: the batch job's driver, started with the chart's
spark-submit arguments and the chart's driver ServiceAccount/Role/RoleBinding, makes Spark's real
Kubernetes backend create executor Pods through this session's kube-apiserver (under Pod Security
`restricted`, from the chart's executor pod template). The test then plays the kubelet: for every
executor Pod it starts the drift-detector-spark image's entrypoint (images/drift-detector/
spark-entrypoint.sh) locally with the Pod's container args and env (status.podIP is 127.0.0.1, emptyDir
mounts are temporary directories). The executors register with the driver, the job finishes, and its
results equal the local engine's on the same logs.

One small run (SPARK_RUN below: ~2,400 logged events, 2 executors of 1 core) of about a minute: three
JVMs on a shared machine.
"""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pytest
from chartlib import SPARK_BATCH_VALUES, render_chart
from kube_harness import free_port, request_token, wait_for
from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from demo.traffic import DemoData, v1_body  # noqa: E402

BUILD = REPO / "build" / "demo"
ENTRYPOINT = REPO / "images" / "drift-detector" / "spark-entrypoint.sh"
VENV_BIN = Path(sys.executable).parent
MODEL = "breast-cancer"
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
SPARK_RUN = {"calls": 1200, "per_object": 100, "window_size": 100, "executors": 2}
WALL_TIMES = {"checked_at", "duration_seconds"}  # the only fields two runs may differ in
VALUES = {
    **SPARK_BATCH_VALUES,
    "predictor.storageUri": "s3://models/fraud/v1",
    "predictor.logger.blob.credentials.existingSecret": "payload-logs-s3",
    "batchDrift.spark.launcher": "spark-submit",
    "batchDrift.spark.executor.instances": SPARK_RUN["executors"],
    "batchDrift.spark.executor.memory": "512m",
    "batchDrift.spark.driver.memory": "512m",
}


def write_logs(directory: Path) -> int:
    """The agent's json objects (lists of LogRequest, payload base64): clean calls then drifted ones,
    responses scored by the demo model; returns the number of records."""
    data = DemoData.load(BUILD)
    model = joblib.load(BUILD / "model" / "model.joblib")
    rng = np.random.default_rng(16)
    half = SPARK_RUN["calls"] // 2
    rows = np.vstack(
        [data.clean(half, rng)[data.features].to_numpy(), data.drifted(half, rng)[data.features].to_numpy()]
    )
    scores = model.predict_proba(rows)[:, 1]
    start = datetime(2026, 12, 1, tzinfo=UTC)
    records = []
    for i, (row, score) in enumerate(zip(rows.tolist(), scores.tolist(), strict=True)):
        when = (start + timedelta(milliseconds=10 * i)).isoformat().replace("+00:00", "Z")
        records.append(_record(f"call-{i}", REQUEST_TYPE, v1_body([row]), when))
        records.append(
            _record(f"call-{i}", RESPONSE_TYPE, json.dumps({"predictions": [score]}).encode(), when)
        )
    directory.mkdir(parents=True)
    step = SPARK_RUN["per_object"]
    for n in range(0, len(records), step):
        path = directory / f"{n:06d}-batch.json"
        path.write_text(json.dumps(records[n : n + step]))
        os.utime(path, (1_700_000_000 + n, 1_700_000_000 + n))  # the run's object order
    return len(records)


def _record(call_id: str, req_type: str, body: bytes, when: str) -> dict:
    return {
        "id": call_id,
        "reqType": req_type,
        "contentType": "application/json",
        "bytes": base64.b64encode(body).decode(),
        "occurrenceTime": when,
    }


def apply_chart_rbac(admin, namespace: str, docs: list[dict]) -> str:
    """The chart's driver ServiceAccount, Role and RoleBinding, created as rendered; the account name."""
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount" and "drift-batch" in d["metadata"]["name"]]
    (role,) = [d for d in docs if d["kind"] == "Role" and "drift-batch" in d["metadata"]["name"]]
    (binding,) = [
        d for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["name"] == role["metadata"]["name"]
    ]
    core.create_namespaced_service_account(namespace, account)
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(namespace, binding)
    return account["metadata"]["name"]


def driver_pod(core, namespace: str, cronjob: dict) -> str:
    """The driver's own Pod object (the CronJob's pod template): the chart names it in
    spark.kubernetes.driver.pod.name, and Spark makes it the executors' owner."""
    template = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "drift-batch-driver", **template["metadata"]},
    }
    pod["spec"] = template["spec"]
    core.create_namespaced_pod(namespace, pod)
    return "drift-batch-driver"


def spark_submit_argv(
    container: dict, cluster, directory: Path, pod_name: str, token_file: Path
) -> list[str]:
    """The chart's spark-submit arguments up to the launcher, made local: the driver on 127.0.0.1 with
    free ports, the executor template and launcher from the chart's ConfigMap in `directory`, this
    API server as the master with the driver ServiceAccount's token."""
    replace = {
        "$(POD_IP)": "127.0.0.1",
        "$(POD_NAME)": pod_name,
        "/etc/drift-batch/": f"{directory}/",
        "spark.driver.bindAddress=0.0.0.0": "spark.driver.bindAddress=127.0.0.1",
        "spark.driver.port=7078": f"spark.driver.port={free_port()}",
        "spark.driver.blockManager.port=7079": f"spark.driver.blockManager.port={free_port()}",
    }
    argv = [str(VENV_BIN / "spark-submit")]
    for arg in container["args"]:
        if arg.startswith("--master="):
            arg = f"--master=k8s://{cluster.server}"
        for old, new in replace.items():
            arg = arg.replace(old, new)
        argv.append(arg)
        if arg.endswith("launcher.py"):
            break
    auth = "spark.kubernetes.authenticate"
    argv[1:1] = [f"--conf={auth}.caCertFile={cluster.ca_file}", f"--conf={auth}.oauthTokenFile={token_file}"]
    return argv


class Kubelet:
    """Starts the image's entrypoint for each executor Pod the driver creates, as a kubelet would."""

    def __init__(self, core, namespace: str, directory: Path):
        self.core, self.namespace, self.directory = core, namespace, directory
        self.started: dict[str, subprocess.Popen] = {}
        self.pods: dict[str, dict] = {}
        self.error: Exception | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self._start_new()
            except Exception as exc:  # the test reports it; a dead kubelet thread would only hang the driver
                self.error = exc
                return
            time.sleep(0.3)

    def _start_new(self) -> None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector="spark-role=executor").items
        for pod in pods:
            if pod.metadata.name not in self.started:
                self._start(client.ApiClient().sanitize_for_serialization(pod))

    def _start(self, pod: dict) -> None:
        name = pod["metadata"]["name"]
        (container,) = pod["spec"]["containers"]
        mounts = self._empty_dirs(pod, container)
        env = self._image_env(mounts)
        for var in container.get("env", []):
            env[var["name"]] = self._value(self.core, var, pod, mounts)
        log = (self.directory / f"{name}.log").open("wb")
        print(f"kubelet: starting {name}: {ENTRYPOINT.name} {' '.join(container['args'])}", flush=True)
        self.pods[name] = pod
        self.started[name] = subprocess.Popen(
            ["bash", str(ENTRYPOINT), *container["args"]], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def _empty_dirs(self, pod: dict, container: dict) -> dict[str, str]:
        """mountPath -> a fresh directory for each emptyDir the container mounts."""
        empty = {v["name"] for v in pod["spec"].get("volumes", []) if "emptyDir" in v}
        mounts = {}
        for mount in container.get("volumeMounts", []):
            if mount["name"] in empty:
                path = self.directory / pod["metadata"]["name"] / mount["name"]
                path.mkdir(parents=True, exist_ok=True)
                mounts[mount["mountPath"]] = str(path)
        return mounts

    @staticmethod
    def _image_env(mounts: dict[str, str]) -> dict[str, str]:
        """What the image's ENV gives (Dockerfile.spark): this venv first on PATH, /tmp as home."""
        tmp = mounts.get("/tmp", "/tmp")
        java_home = os.environ.get("JAVA_HOME")
        env = {
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "HOME": tmp,
            "TMPDIR": tmp,
            "PYSPARK_PYTHON": sys.executable,
        }
        return env | ({"JAVA_HOME": java_home} if java_home else {})

    @staticmethod
    def _value(core, var: dict, pod: dict, mounts: dict[str, str]) -> str:
        field = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field == "status.podIP":
            return "127.0.0.1"
        if field == "metadata.name":
            return pod["metadata"]["name"]
        secret = var.get("valueFrom", {}).get("secretKeyRef")
        if secret:
            found = core.read_namespaced_secret(secret["name"], pod["metadata"]["namespace"])
            return base64.b64decode(found.data[secret["key"]]).decode()
        assert "valueFrom" not in var, f"no kubelet rule for {var}"
        value = var.get("value", "")
        for path, local in mounts.items():
            value = value.replace(path, local)
        return value

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for process in self.started.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> tuple[Path, int]:
    """The run's log objects and their number of records."""
    if not (BUILD / "model" / "model.joblib").exists():
        pytest.fail(f"{BUILD}/model is missing: run `make demo-model` (make test-k8s does)")
    directory = tmp_path_factory.mktemp("spark-logs") / "logs"
    return directory, write_logs(directory)


def batch_args(logs_dir: Path, engine: str, master: str, out: Path) -> list[str]:
    argv = ["batch", "--logs", str(logs_dir), "--reference", str(BUILD / "reference.parquet")]
    argv += ["--model-name", MODEL, "--window-size", str(SPARK_RUN["window_size"])]
    return [*argv, "--engine", engine, "--spark-master", master, "--out", str(out)]


@pytest.fixture(scope="module")
def local_results(logs, tmp_path_factory) -> list[dict]:
    """The local engine's results on the same logs: what every Spark run must equal."""
    out = tmp_path_factory.mktemp("local") / "out"
    argv = [sys.executable, "-m", "drift_detector", *batch_args(logs[0], "local", "local[1]", out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = results(out)
    assert len(found) == logs[1] // 2 // SPARK_RUN["window_size"]
    assert {r["dataset_drift"] for r in found} == {False, True}  # clean windows, then drifted ones
    return found


def assert_same(got, want, path: str = "results") -> None:
    """Equal structure and values; floats within 1e-9 relative (BLAS sums in another thread count can
    move the last bit: pyspark's Python workers run with OMP_NUM_THREADS set to their cores)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{path}: keys differ"
        for key in want:
            assert_same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: lengths differ"
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(want, float):
        same = math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(got) and math.isnan(want))
        assert same, f"{path}: {got!r} vs {want!r}"
    else:
        assert got == want, f"{path}: {got!r} vs {want!r}"


def results(out: Path) -> list[dict]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_TIMES} for line in lines]


def test_executor_pods_made_by_the_driver_run_the_image_entrypoint(
    cluster, admin, namespace, tmp_path, logs, local_results
):
    docs = render_chart(set_values=VALUES, release="batch", namespace=namespace)
    core = client.CoreV1Api(admin)
    account = apply_chart_rbac(admin, namespace, docs)
    (cronjob,) = [d for d in docs if d["kind"] == "CronJob" and d["metadata"]["name"].endswith("drift-batch")]
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap" and "executor-pod.yaml" in d.get("data", {})]
    for key, text in configmap["data"].items():
        (tmp_path / key).write_text(text)
    token_file = tmp_path / "token"
    token_file.write_text(request_token(admin, namespace, account))
    # The logs bucket's credentials the chart's pods reference (unused with a local --logs).
    secret = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata={"name": "payload-logs-s3"}, string_data=secret)
    )
    pod_name = driver_pod(core, namespace, cronjob)
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    argv = spark_submit_argv(container, cluster, tmp_path, pod_name, token_file)
    argv += batch_args(logs[0], "spark", f"k8s://{cluster.server}", tmp_path / "spark")
    # No kubeconfig or in-cluster account reaches the driver: only the chart account's token.
    env = {
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PYSPARK_PYTHON": sys.executable,
    }
    env |= {k: v for k, v in os.environ.items() if k == "JAVA_HOME"}

    kubelet = Kubelet(core, namespace, tmp_path)
    kubelet.thread.start()
    print(f"spark-on-k8s: driver against {cluster.server}, {logs[1]} logged events", flush=True)
    try:
        driver = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    finally:
        kubelet.stop()
    assert kubelet.error is None, f"kubelet: {kubelet.error!r}"
    executor_logs = {name: (tmp_path / f"{name}.log").read_text()[-3000:] for name in kubelet.started}
    assert driver.returncode == 0, f"driver failed:\n{driver.stderr[-6000:]}\nexecutors: {executor_logs}"

    # Spark's backend made the executor Pods from the chart's template, owned by the driver's Pod.
    assert len(kubelet.pods) == SPARK_RUN["executors"], driver.stderr[-3000:]
    for pod in kubelet.pods.values():
        assert pod["spec"]["containers"][0]["args"] == ["executor"]
        assert (
            pod["spec"]["containers"][0]["image"]
            == "registry.example.com/drift-detector-spark:0.1.0-spark4.3.0"
        )
        assert pod["metadata"]["ownerReferences"][0]["name"] == pod_name
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # Every executor registered with the driver and ran tasks of the job.
    for name in kubelet.started:
        text = (tmp_path / f"{name}.log").read_text()
        assert "Successfully registered with driver" in text, f"{name}:\n{executor_logs[name]}"
        assert "Finished task" in text, f"{name}:\n{executor_logs[name]}"

    assert_same(results(tmp_path / "spark"), local_results)
    # The driver cleans up: its executor Pods are deleted when the session stops.
    wait_for(
        "executor pods deleted",
        lambda: not core.list_namespaced_pod(namespace, label_selector="spark-role=executor").items,
    )


def test_the_entrypoint_runs_a_cluster_mode_driver(tmp_path, logs, local_results):
    """What the Spark operator's driver pod passes (`driver --properties-file ... --class ... <file>
    <args>`, the pod IP in SPARK_DRIVER_BIND_ADDRESS): the entrypoint finishes the submission in client
    mode. The master is local here (no executor pods): the dispatch and spark-submit are what is tested."""
    properties = tmp_path / "spark.properties"
    properties.write_text("spark.master=local[1]\nspark.app.name=drift-batch\nspark.ui.enabled=false\n")
    launcher = tmp_path / "launcher.py"
    launcher.write_text(
        'import runpy\n\nrunpy.run_module("drift_detector", run_name="__main__", alter_sys=True)\n'
    )
    argv = ["bash", str(ENTRYPOINT), "driver", "--properties-file", str(properties)]
    argv += ["--class", "org.apache.spark.deploy.PythonRunner", str(launcher)]
    argv += batch_args(logs[0], "spark", "local[1]", tmp_path / "out")
    env = Kubelet._image_env({"/tmp": str(tmp_path)}) | {"SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1"}
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    assert_same(results(tmp_path / "out"), local_results)
