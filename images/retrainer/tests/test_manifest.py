import math

import pytest
from helpers import TRAIN_IMAGE, make_settings
from kubernetes import client
from retrain_controller.config import ConfigError
from retrain_controller.manifest import build_job, release_selector
from retrain_controller.naming import is_label_value, job_name

NOW = 1_800_000_000.0
QUERY = "min_over_time((max by (model_name, namespace) (model_drift_score))[900s:60s])"


def build(model="sustained", namespace="ml", value=0.8, settings=None, **overrides):
    settings = settings or make_settings(**overrides)
    name = job_name(settings.job["namePrefix"], namespace, model, 1)
    return build_job(
        settings,
        name=name,
        model_namespace=namespace,
        model_name=model,
        value=value,
        current=0.9,
        query=QUERY,
        decided_at=NOW,
    )


def pod_spec(job):
    return job["spec"]["template"]["spec"]


def test_labels_follow_the_contract_and_select_with_the_release_selector():
    job = build()
    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "kserve-model-monitoring-retrainer"
    assert labels["app.kubernetes.io/instance"] == "demo"
    assert labels["kserve-model-monitoring/model"] == "sustained"
    assert labels["kserve-model-monitoring/model-namespace"] == "ml"
    for pair in release_selector("demo").split(","):
        key, value = pair.split("=")
        assert labels[key] == value
    assert job["spec"]["template"]["metadata"]["labels"]["kserve-model-monitoring/model"] == "sustained"


def test_nasty_model_names_get_valid_labels_and_the_real_name_in_an_annotation():
    model = "Fraud_Model.v2/EU ünïcode " + "x" * 80
    job = build(model=model, namespace="team-a")
    for key, value in job["metadata"]["labels"].items():
        assert is_label_value(value), (key, value)
    assert job["metadata"]["annotations"]["kserve-model-monitoring/model-name"] == model
    assert job["metadata"]["name"].startswith("retrain-fraud-model-v2-eu-")


def test_annotations_explain_the_decision():
    annotations = build(driftReportUrl="http://drift:8080/reports/?model={model_name}&ns={namespace}")[
        "metadata"
    ]["annotations"]
    assert annotations["kserve-model-monitoring/drift-value"] == "0.8"
    assert annotations["kserve-model-monitoring/drift-current"] == "0.9"
    assert annotations["kserve-model-monitoring/drift-threshold"] == "0.5"
    assert annotations["kserve-model-monitoring/drift-query"] == QUERY
    assert annotations["kserve-model-monitoring/decided-at"] == "2027-01-15T08:00:00Z"
    assert annotations["kserve-model-monitoring/sustained-for"] == "900s"
    assert (
        annotations["kserve-model-monitoring/drift-report-url"]
        == "http://drift:8080/reports/?model=sustained&ns=ml"
    )


def test_report_url_annotation_is_absent_when_not_configured():
    assert "kserve-model-monitoring/drift-report-url" not in build()["metadata"]["annotations"]


def test_secure_defaults_on_pod_and_container():
    job = build()
    pod = pod_spec(job)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    # A read-only root needs a scratch /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_template_overrides_merge_over_the_secure_defaults():
    job = build(
        **{
            "job.podSecurityContext": {"runAsUser": 2000},
            "job.securityContext": {"readOnlyRootFilesystem": False},
        }
    )
    pod = pod_spec(job)
    assert pod["securityContext"]["runAsUser"] == 2000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_job_template_fields_reach_the_manifest():
    job = build(
        **{
            "job.command": ["python", "-m", "train"],
            "job.args": ["--model", "$(RETRAIN_MODEL_NAME)"],
            "job.env": [{"name": "MLFLOW_URI", "value": "http://mlflow"}],
            "job.resources": {"limits": {"nvidia.com/gpu": "1", "cpu": None}},
            "job.serviceAccountName": "trainer",
            "job.automountServiceAccountToken": True,
            "job.volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "training-data"}}],
            "job.volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "job.backoffLimit": 2,
            "job.ttlSecondsAfterFinished": 604800,
            "job.activeDeadlineSeconds": 3600,
            "job.labels": {"team": "fraud", "app.kubernetes.io/instance": "spoofed"},
            "job.annotations": {"owner": "ml-platform"},
            "job.nodeSelector": {"pool": "gpu"},
            "job.tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }
    )
    spec, pod = job["spec"], pod_spec(job)
    container = pod["containers"][0]
    assert container["image"] == TRAIN_IMAGE
    assert container["command"] == ["python", "-m", "train"]
    assert container["args"] == ["--model", "$(RETRAIN_MODEL_NAME)"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_URI"] == "http://mlflow"
    assert env["RETRAIN_MODEL_NAME"] == "sustained"
    assert env["RETRAIN_MODEL_NAMESPACE"] == "ml"
    assert env["RETRAIN_DRIFT_VALUE"] == "0.8"
    # Injected variables come first so the template's can refer to them with $(...).
    assert [e["name"] for e in container["env"]][-1] == "MLFLOW_URI"
    assert container["resources"]["limits"] == {"memory": "4Gi", "nvidia.com/gpu": "1"}
    assert pod["serviceAccountName"] == "trainer"
    assert pod["automountServiceAccountToken"] is True
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "training-data"}} in pod["volumes"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert (spec["backoffLimit"], spec["ttlSecondsAfterFinished"], spec["activeDeadlineSeconds"]) == (
        2,
        604800,
        3600,
    )
    assert job["metadata"]["labels"]["team"] == "fraud"
    assert job["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"  # the guard's label wins
    assert job["metadata"]["annotations"]["owner"] == "ml-platform"
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"][0]["key"] == "gpu"


def test_template_env_overrides_an_injected_variable():
    job = build(**{"job.env": [{"name": "RETRAIN_MODEL_NAME", "value": "fixed"}]})
    env = pod_spec(job)["containers"][0]["env"]
    assert [e for e in env if e["name"] == "RETRAIN_MODEL_NAME"] == [
        {"name": "RETRAIN_MODEL_NAME", "value": "fixed"}
    ]


def test_nan_value_is_written_as_nan():
    assert build(value=math.nan)["metadata"]["annotations"]["kserve-model-monitoring/drift-value"] == "NaN"


def test_manifest_round_trips_through_the_official_client_models():
    """Every field name and type is one the batch/v1 Job schema of the kubernetes client knows."""
    job = build(
        **{
            "job.volumes": [{"name": "d", "emptyDir": {}}],
            "job.volumeMounts": [{"name": "d", "mountPath": "/d"}],
        }
    )
    model = client.V1Job.from_dict(job)
    assert client.ApiClient().sanitize_for_serialization(model) == job


def test_a_short_ttl_is_rejected_because_it_would_reopen_the_cooldown():
    with pytest.raises(ConfigError) as err:
        make_settings(cooldown="6h", **{"job.ttlSecondsAfterFinished": 60})
    assert err.value.key == "job.ttlSecondsAfterFinished"
