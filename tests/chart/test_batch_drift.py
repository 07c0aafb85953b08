"""The batch drift job's Spark operator object validates strictly against the operator's own CRD (the
scenarios render the spark-submit CronJob, since `helm template` sees no operator), and the blob-logger
fields of the InferenceService against KServe's."""

from __future__ import annotations

import pytest
import yaml
from chartlib import render_chart
from test_kubeconform import assert_misspelt_field_rejected, kubeconform

SCENARIO = "charts/kserve-model-monitoring/ci/blob-batch-values.yaml"
OPERATOR = {"batchDrift.spark.launcher": "operator"}


def operator_docs() -> list[dict]:
    return render_chart(values_files=[SCENARIO], set_values=OPERATOR)


def test_the_scheduled_spark_application_is_valid_against_the_spark_operators_schema(crd_schemas, tmp_path):
    docs = operator_docs()
    (app,) = [d for d in docs if d["kind"] == "ScheduledSparkApplication"]
    assert not [d for d in docs if d["kind"] == "CronJob"]
    manifest = tmp_path / "operator.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    result = kubeconform(crd_schemas, manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Errors: 0, Skipped: 0" in result.stdout, result.stdout
    assert f"Valid: {len(docs)}," in result.stdout, result.stdout
    assert app["spec"]["template"]["driver"]["serviceAccount"].endswith("-drift-batch")


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("ScheduledSparkApplication", ["spec", "template", "driver"]),
        ("ScheduledSparkApplication", ["spec", "template", "executor", "securityContext"]),
        ("InferenceService", ["spec", "predictor", "logger", "storage"]),
    ],
)
def test_a_misspelt_field_is_rejected(kind, path, crd_schemas, tmp_path):
    (obj,) = [d for d in operator_docs() if d["kind"] == kind]
    assert_misspelt_field_rejected(obj, path, crd_schemas, tmp_path)


def test_the_spark_submit_launcher_passes_the_executor_pod_template_that_the_chart_renders():
    """The file spark-submit is pointed at exists in the ConfigMap mounted where it looks, and parses
    as a Pod with the chart's security defaults."""
    docs = render_chart(values_files=[SCENARIO])
    (cronjob,) = [d for d in docs if d["kind"] == "CronJob"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    conf = dict(a.removeprefix("--conf=").split("=", 1) for a in container["args"] if a.startswith("--conf="))
    template_path = conf["spark.kubernetes.executor.podTemplateFile"]
    mount = next(m for m in container["volumeMounts"] if template_path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    (config_map,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
    ]
    executor = yaml.safe_load(config_map["data"][template_path.rsplit("/", 1)[1]])
    assert executor["kind"] == "Pod"
    assert executor["spec"]["automountServiceAccountToken"] is False
    (executor_container,) = executor["spec"]["containers"]
    assert executor_container["securityContext"]["readOnlyRootFilesystem"] is True
    assert executor_container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert executor["spec"]["securityContext"]["runAsNonRoot"] is True
    launcher = container["args"][container["args"].index("batch") - 1]
    assert launcher.rsplit("/", 1)[1] in config_map["data"]
