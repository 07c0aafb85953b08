"""With the Spark operator's CRDs installed (from its Go module, SPARK_OPERATOR_VERSION in
ci/install-tools.sh), `helm install` of the batch drift job with `batchDrift.spark.launcher: auto` sees
the SparkApplication API through discovery and stores a ScheduledSparkApplication, valid against the
operator's schema, instead of the CronJob.

Runs after the other files of the tier: the CRDs stay in the session's API server. No operator runs
here, so nothing is scheduled; the object is stored and checked.
"""

from __future__ import annotations

import json

import pytest
from chartlib import BASE_VALUES, SPARK_BATCH_VALUES, prepared_chart, render_chart
from helm_cli import helm
from kube_harness import install_crds, spark_operator_crd_files, strict_dry_run_create

VALUES = {
    **SPARK_BATCH_VALUES,
    "predictor.storageUri": "s3://models/fraud/v1",
    "predictor.logger.blob.credentials.existingSecret": "payload-logs-s3",
}


@pytest.fixture(scope="module")
def spark_crds(cluster, crds) -> list[str]:
    return install_crds(cluster.dynamic_admin(), spark_operator_crd_files())


def test_the_operator_api_switches_the_batch_job_to_a_scheduled_spark_application(
    cluster, kserve, spark_crds, namespace
):
    assert "scheduledsparkapplications.sparkoperator.k8s.io" in spark_crds
    # What helm will send, checked strictly against the operator's schema first.
    docs = render_chart(
        set_values={**VALUES, "batchDrift.spark.launcher": "operator"}, release="spark", namespace=namespace
    )
    (app,) = [d for d in docs if d["kind"] == "ScheduledSparkApplication"]
    dynamic = cluster.dynamic_admin()
    strict_dry_run_create(dynamic, app)

    set_json = [arg for key, value in VALUES.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]
    helm(
        cluster,
        "install",
        "spark",
        str(prepared_chart()),
        "--values",
        str(BASE_VALUES),
        *set_json,
        "-n",
        namespace,
    )
    apps = dynamic.resources.get(api_version="sparkoperator.k8s.io/v1beta2", kind="ScheduledSparkApplication")
    stored = apps.get(name=app["metadata"]["name"], namespace=namespace).to_dict()
    template = stored["spec"]["template"]
    assert (template["type"], template["mode"]) == ("Python", "cluster")
    assert template["mainApplicationFile"] == "local:///etc/drift-batch/launcher.py"
    assert template["driver"]["serviceAccount"] == app["spec"]["template"]["driver"]["serviceAccount"]
    cronjobs = dynamic.resources.get(api_version="batch/v1", kind="CronJob").get(namespace=namespace).items
    assert cronjobs == [], "auto launched spark-submit although the operator's API is served"
    helm(cluster, "uninstall", "spark", "-n", namespace)
    assert apps.get(namespace=namespace).items == []
