"""The retrain controller against the real API server and a real Prometheus, as the chart deploys it:
the config is the chart's ConfigMap, the credential a TokenRequest token of the chart's retrainer
ServiceAccount, and the only permissions those of the chart's Role in the training namespace.

Prometheus holds backfilled series: one model drifted (0.9) for 40 minutes, one calm (0.2). The
controller evaluates at a fixed time (--at) inside that history.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from chartlib import helm_env, prepared_chart, render_chart, scenario_files
from kube_harness import (
    REPO,
    free_port,
    request_status,
    request_token,
    strict_dry_run_create,
    write_kubeconfig,
)
from kubernetes import client
from prometheus_harness import now_aligned, openmetrics_gauge, start_prometheus

PYTHON = str(REPO / ".venv" / "bin" / "python")
HELM = str(REPO / ".tools" / "bin" / "helm")
RELEASE = "kmm-rt"
DRIFTED, CALM = "fraud-detector", "churn-model"
MANAGED_BY = "app.kubernetes.io/managed-by=kserve-model-monitoring-retrainer"
HISTORY_SECONDS = 40 * 60


def create_namespace(admin, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


@pytest.fixture(scope="module")
def namespaces(admin) -> tuple[str, str]:
    """(release namespace, training namespace)."""
    return create_namespace(admin, "models"), create_namespace(admin, "training")


@pytest.fixture(scope="module")
def evaluation_time() -> int:
    return now_aligned(60) - 60


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, namespaces, evaluation_time):
    models_ns = namespaces[0]
    series = {
        (("model_name", DRIFTED), ("namespace", models_ns)): 0.9,
        (("model_name", CALM), ("namespace", models_ns)): 0.2,
    }
    text = openmetrics_gauge("model_drift_score", series, evaluation_time - HISTORY_SECONDS, evaluation_time)
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"), text)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def release(cluster, admin, crds, namespaces, prometheus, tmp_path_factory) -> dict:
    """The chart installed with the retrainer on (bring-your-own-Prometheus scenario, pointed at the
    test Prometheus); returns the retrainer's config file and a kubeconfig holding its SA token."""
    models_ns, training_ns = namespaces
    scenario = next(p for p in scenario_files() if p.name == "byo-prometheus-values.yaml")
    overrides = {"retrainer.trainingNamespace": training_ns, "retrainer.prometheus.url": prometheus.url}
    cmd = [HELM, "--kubeconfig", str(cluster.admin_kubeconfig), "install", RELEASE, str(prepared_chart())]
    cmd += ["-n", models_ns, "--values", str(scenario)]
    for key, value in overrides.items():
        cmd += ["--set-json", f"{key}={json.dumps(value)}"]
    installed = subprocess.run(cmd, env=helm_env(), capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stderr

    # What the CronJob's pod would have: the ConfigMap's file and its ServiceAccount's token.
    batch = client.BatchV1Api(admin)
    cronjob = batch.list_namespaced_cron_job(
        models_ns, label_selector=f"app.kubernetes.io/instance={RELEASE}"
    )
    (cronjob,) = cronjob.items
    pod_spec = cronjob.spec.job_template.spec.template.spec
    config_map = next(v.config_map.name for v in pod_spec.volumes if v.config_map)
    config_text = (
        client.CoreV1Api(admin).read_namespaced_config_map(config_map, models_ns).data["config.yaml"]
    )
    directory = tmp_path_factory.mktemp("retrainer")
    config_file = directory / "config.yaml"
    config_file.write_text(config_text)
    token = request_token(admin, models_ns, pod_spec.service_account_name)
    kubeconfig = cluster.token_kubeconfig(directory / "retrainer.kubeconfig", token)
    return {
        "config": config_file,
        "kubeconfig": kubeconfig,
        "token": token,
        "service_account": pod_spec.service_account_name,
        "directory": directory,
    }


@pytest.fixture
def no_jobs(admin, namespaces):
    """Each test starts with no Jobs in the training namespace (deleted with the admin credential;
    Background propagation needs no garbage collector for the Job itself)."""
    batch = client.BatchV1Api(admin)
    batch.delete_collection_namespaced_job(namespaces[1], propagation_policy="Background")
    assert batch.list_namespaced_job(namespaces[1]).items == []


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def log(self) -> list[dict]:
        """The JSON log lines (stdout, or stderr in a dry run)."""
        lines = (self.stdout + "\n" + self.stderr).splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def decision(self, model: str) -> dict:
        (entry,) = [e for e in self.log if e.get("event") == "decision" and e["model"] == model]
        return entry


def start_check(release: dict, evaluation_time: int, *extra: str, kubeconfig: Path | None = None):
    """`python -m retrain_controller check` as the CronJob runs it, with the chart's config file."""
    argv = [PYTHON, "-m", "retrain_controller", "check", "--config", str(release["config"])]
    argv += ["--kubeconfig", str(kubeconfig or release["kubeconfig"]), "--at", str(evaluation_time), *extra]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RETRAINER_", "KUBERNETES_", "KUBECONFIG"))
    }
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> Run:
    stdout, stderr = process.communicate(timeout=120)
    return Run(process.returncode, stdout, stderr)


def run_check(release: dict, evaluation_time: int, *extra: str, kubeconfig: Path | None = None) -> Run:
    return finish(start_check(release, evaluation_time, *extra, kubeconfig=kubeconfig))


def training_jobs(admin, namespaces) -> list[client.V1Job]:
    return client.BatchV1Api(admin).list_namespaced_job(namespaces[1]).items


# --- the happy path, guarded ----------------------------------------------------------------


def test_drift_creates_one_job_in_the_training_namespace(
    admin, namespaces, release, evaluation_time, no_jobs
):
    run = run_check(release, evaluation_time)
    assert run.code == 0, run.stderr
    drifted, calm = run.decision(DRIFTED), run.decision(CALM)
    assert (drifted["action"], drifted["reason"], drifted["outcome"]) == (
        "create",
        "drift_sustained",
        "created",
    )
    assert (calm["action"], calm["reason"]) == ("skip", "below_threshold")

    (job,) = training_jobs(admin, namespaces)
    assert job.metadata.name == drifted["job"]
    assert job.metadata.labels["app.kubernetes.io/instance"] == RELEASE
    assert job.metadata.labels["kserve-model-monitoring/model"] == DRIFTED
    assert float(job.metadata.annotations["kserve-model-monitoring/drift-value"]) == pytest.approx(0.9)
    assert client.BatchV1Api(admin).list_namespaced_job(namespaces[0]).items == []


def test_second_run_skips_the_model_with_an_active_job(admin, namespaces, release, evaluation_time, no_jobs):
    first = run_check(release, evaluation_time)
    assert first.code == 0, first.stderr
    second = run_check(release, evaluation_time)
    assert second.code == 0, second.stderr
    assert (second.decision(DRIFTED)["action"], second.decision(DRIFTED)["reason"]) == ("skip", "job_active")
    assert len(training_jobs(admin, namespaces)) == 1


def test_overlapping_runs_create_one_job(admin, namespaces, release, evaluation_time, no_jobs):
    runs = [finish(p) for p in [start_check(release, evaluation_time) for _ in range(3)]]
    assert [run.code for run in runs] == [0, 0, 0], [run.stderr for run in runs]
    outcomes = sorted(run.decision(DRIFTED).get("outcome") or run.decision(DRIFTED)["reason"] for run in runs)
    assert outcomes.count("created") == 1, outcomes
    assert set(outcomes) <= {"created", "already_exists", "job_active"}, outcomes
    assert len(training_jobs(admin, namespaces)) == 1


def test_job_with_the_same_name_already_present_counts_as_done(
    admin, namespaces, release, evaluation_time, no_jobs
):
    # The Job the controller would create (--dry-run prints it), created first without the
    # controller's labels so the list guard cannot see it: only AlreadyExists stops a duplicate.
    planned_run = run_check(release, evaluation_time, "--dry-run")
    assert planned_run.code == 0, planned_run.stderr
    (planned,) = [doc for doc in yaml.safe_load_all(planned_run.stdout) if doc]
    planned["metadata"]["labels"] = {"created-by": "someone-else"}
    client.BatchV1Api(admin).create_namespaced_job(namespaces[1], client.V1Job.from_dict(planned))

    run = run_check(release, evaluation_time)
    assert run.code == 0, run.stderr
    assert run.decision(DRIFTED)["outcome"] == "already_exists"
    assert [job.metadata.name for job in training_jobs(admin, namespaces)] == [planned["metadata"]["name"]]


# --- RBAC: the chart's Role, really enforced --------------------------------------------------


def training_job(name: str = "rbac-probe") -> dict:
    container = {"name": "train", "image": "registry.example/train:1", "command": ["true"]}
    pod = {"spec": {"restartPolicy": "Never", "containers": [container]}}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {"template": pod}}


class Probe(NamedTuple):
    method: str
    path: str
    body: dict | None = None
    query: dict | None = None


def refused_requests(models_ns: str, training_ns: str) -> dict[str, Probe]:
    """What the retrainer's token must not do: the Role grants list and create of Jobs in the
    training namespace, nothing else (authorization answers before any object lookup)."""
    jobs, job = f"/apis/batch/v1/namespaces/{training_ns}/jobs", training_job()
    pods = f"/api/v1/namespaces/{training_ns}/pods"
    return {
        "create jobs in the release namespace": Probe(
            "POST", f"/apis/batch/v1/namespaces/{models_ns}/jobs", job
        ),
        "create jobs in default": Probe("POST", "/apis/batch/v1/namespaces/default/jobs", job),
        "list jobs in the release namespace": Probe("GET", f"/apis/batch/v1/namespaces/{models_ns}/jobs"),
        "list jobs in all namespaces": Probe("GET", "/apis/batch/v1/jobs"),
        "get a job": Probe("GET", f"{jobs}/rbac-probe"),
        "watch jobs": Probe("GET", jobs, query={"watch": "true", "timeoutSeconds": "1"}),
        "update a job": Probe("PUT", f"{jobs}/rbac-probe", job),
        "patch a job": Probe("PATCH", f"{jobs}/rbac-probe", {"metadata": {"labels": {"x": "y"}}}),
        "update job status": Probe("PUT", f"{jobs}/rbac-probe/status", job),
        "delete a job": Probe("DELETE", f"{jobs}/rbac-probe"),
        "delete all jobs": Probe("DELETE", jobs),
        "create cronjobs": Probe("POST", f"/apis/batch/v1/namespaces/{training_ns}/cronjobs"),
        "list pods": Probe("GET", pods),
        "create pods": Probe("POST", pods),
        "exec into a pod": Probe("POST", f"{pods}/trainer/exec", query={"command": "sh"}),
        "read pod logs": Probe("GET", f"{pods}/trainer/log"),
        "list secrets": Probe("GET", f"/api/v1/namespaces/{training_ns}/secrets"),
        "create rolebindings": Probe(
            "POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{training_ns}/rolebindings"
        ),
        "list namespaces": Probe("GET", "/api/v1/namespaces"),
    }


def test_the_role_grants_list_and_create_of_jobs_in_the_training_namespace(cluster, namespaces, release):
    api = cluster.token_client(release["token"])
    jobs = f"/apis/batch/v1/namespaces/{namespaces[1]}/jobs"
    assert request_status(api, "GET", jobs) == 200
    assert request_status(api, "POST", jobs, training_job(), dryRun="All") == 201


@pytest.mark.parametrize("what", list(refused_requests("m", "t")))
def test_the_same_token_is_refused_everything_else(cluster, namespaces, release, what):
    probe = refused_requests(*namespaces)[what]
    api = cluster.token_client(release["token"])
    assert request_status(api, probe.method, probe.path, probe.body, **(probe.query or {})) == 403


# --- reliability: documented exit codes and one-line reasons ---------------------------------


def one_line_reason(run: Run) -> str:
    """The one plain-text line on stderr (the JSON log is on stdout)."""
    lines = [line for line in run.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, run.stderr
    return lines[0]


def test_forbidden_exits_3_naming_the_missing_permission(
    admin, namespaces, release, evaluation_time, no_jobs
):
    # The release namespace has no Role for the retrainer: listing Jobs there is Forbidden.
    run = run_check(release, evaluation_time, "--training-namespace", namespaces[0])
    assert run.code == 3, run.stderr
    reason = one_line_reason(run)
    assert "forbidden" in reason and "list" in reason and "jobs" in reason and namespaces[0] in reason
    assert client.BatchV1Api(admin).list_namespaced_job(namespaces[0]).items == []


def test_role_without_create_exits_3_naming_create(admin, namespaces, release, evaluation_time):
    # A Role that lets the retrainer list Jobs but not create them (a half-configured namespace).
    list_only = create_namespace(admin, "list-only")
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(list_only, client.V1Role(
        metadata=client.V1ObjectMeta(name="list-jobs"),
        rules=[client.V1PolicyRule(api_groups=["batch"], resources=["jobs"], verbs=["list"])],
    ))  # fmt: skip
    rbac.create_namespaced_role_binding(list_only, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="list-jobs"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="list-jobs"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=release["service_account"],
                                       namespace=namespaces[0])],
    ))  # fmt: skip
    run = run_check(release, evaluation_time, "--training-namespace", list_only)
    assert run.code == 3, run.stderr
    reason = one_line_reason(run)
    assert "forbidden" in reason and "create" in reason and "jobs" in reason and list_only in reason
    assert run.decision(DRIFTED)["outcome"] == "forbidden"
    assert client.BatchV1Api(admin).list_namespaced_job(list_only).items == []


def test_api_server_unreachable_exits_4_and_creates_nothing(
    cluster, admin, namespaces, release, evaluation_time, no_jobs
):
    kubeconfig = release["directory"] / "unreachable.kubeconfig"
    write_kubeconfig(
        kubeconfig, f"https://127.0.0.1:{free_port()}", cluster.ca_file, {"token": release["token"]}
    )
    run = run_check(release, evaluation_time, kubeconfig=kubeconfig)
    assert run.code == 4, run.stderr
    assert "unreachable" in one_line_reason(run)
    assert training_jobs(admin, namespaces) == []


def test_rejected_token_exits_4(cluster, admin, namespaces, release, evaluation_time, no_jobs):
    kubeconfig = cluster.token_kubeconfig(release["directory"] / "bad-token.kubeconfig", "not-a-token")
    run = run_check(release, evaluation_time, kubeconfig=kubeconfig)
    assert run.code == 4, run.stderr
    assert "401" in one_line_reason(run)
    assert training_jobs(admin, namespaces) == []


def test_prometheus_unreachable_exits_2_and_creates_nothing(
    admin, namespaces, release, evaluation_time, no_jobs
):
    run = run_check(release, evaluation_time, "--prometheus-url", f"http://127.0.0.1:{free_port()}")
    assert run.code == 2, run.stderr
    assert one_line_reason(run)
    assert training_jobs(admin, namespaces) == []


def test_no_model_over_threshold_exits_0_without_calling_kubernetes(cluster, release, evaluation_time):
    # An unreachable API server proves the pass never needed it.
    kubeconfig = release["directory"] / "never-called.kubeconfig"
    write_kubeconfig(kubeconfig, f"https://127.0.0.1:{free_port()}", cluster.ca_file, {"token": "unused"})
    run = run_check(
        release, evaluation_time, "--query", 'model_drift_score{model_name="absent"}', kubeconfig=kubeconfig
    )
    assert run.code == 0, run.stderr
    summary = [entry for entry in run.log if entry.get("event") == "summary"]
    assert summary and "no model over the threshold" in summary[-1]["message"]


# --- the Jobs the chart's job templates produce are valid Kubernetes objects ------------------


def retrainer_scenarios() -> list[Path]:
    return [
        p
        for p in scenario_files()
        if (yaml.safe_load(p.read_text()) or {}).get("retrainer", {}).get("enabled")
    ]


@pytest.mark.parametrize("scenario", retrainer_scenarios(), ids=lambda p: p.name.removesuffix("-values.yaml"))
def test_jobs_from_each_scenarios_template_pass_strict_validation(
    cluster, crds, namespaces, prometheus, evaluation_time, tmp_path, scenario
):
    models_ns, training_ns = namespaces
    docs = render_chart(values_files=[scenario], release=RELEASE, namespace=models_ns)
    pod_spec = next(d for d in docs if d["kind"] == "CronJob")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]
    mounted = next(v["configMap"]["name"] for v in pod_spec["volumes"] if "configMap" in v)
    config_map = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == mounted)
    config = tmp_path / "config.yaml"
    config.write_text(config_map["data"]["config.yaml"])
    # The scenario's own query may select other namespaces than the test series': use the default.
    flags = {
        "--config": config, "--prometheus-url": prometheus.url, "--training-namespace": training_ns,
        "--at": evaluation_time, "--query": "max by (model_name, namespace) (model_drift_score)",
        "--kubeconfig": tmp_path / "absent.kubeconfig",
    }  # fmt: skip
    argv = [PYTHON, "-m", "retrain_controller", "check", "--dry-run"]
    argv += [str(part) for flag in flags.items() for part in flag]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    jobs = [doc for doc in yaml.safe_load_all(run.stdout) if doc]
    assert [job["metadata"]["labels"]["kserve-model-monitoring/model"] for job in jobs] == [DRIFTED]
    for job in jobs:
        strict_dry_run_create(cluster.dynamic_admin(), job, training_ns)
