"""The upstream CRDs install into a real API server, and their schemas are enforced there."""

import pytest
from kube_harness import status_message, strict_dry_run_create
from kubernetes.client import ApiException

EXPECTED_CRDS = {
    "inferenceservices.serving.kserve.io",
    "servingruntimes.serving.kserve.io",
    "clusterservingruntimes.serving.kserve.io",
    "inferencegraphs.serving.kserve.io",
    "trainedmodels.serving.kserve.io",
    "clusterstoragecontainers.serving.kserve.io",
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
}


def inference_service(namespace: str, **predictor_extra) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": namespace},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "pvc://models/iris"},
                **predictor_extra,
            }
        },
    }


def test_upstream_crds_are_established_and_served(cluster, crds):
    assert set(crds) == EXPECTED_CRDS
    dynamic = cluster.dynamic_admin()
    for kind, api_version in [
        ("InferenceService", "serving.kserve.io/v1beta1"),
        ("ServingRuntime", "serving.kserve.io/v1alpha1"),
        ("ServiceMonitor", "monitoring.coreos.com/v1"),
        ("PodMonitor", "monitoring.coreos.com/v1"),
        ("PrometheusRule", "monitoring.coreos.com/v1"),
    ]:
        assert dynamic.resources.get(api_version=api_version, kind=kind).namespaced


def test_valid_inference_service_is_accepted(cluster, crds, namespace):
    logger = {"logger": {"mode": "all", "url": "http://drift-detector.models.svc:8080/"}}
    strict_dry_run_create(cluster.dynamic_admin(), inference_service(namespace, **logger))


@pytest.mark.parametrize(
    ("manifest_change", "complaint"),
    [
        ({"predictorTypo": True}, 'unknown field "spec.predictor.predictorTypo"'),
        ({"logger": {"mode": "sometimes"}}, "spec.predictor.logger.mode"),
    ],
)
def test_inference_service_schema_is_enforced(cluster, crds, namespace, manifest_change, complaint):
    with pytest.raises(ApiException) as refused:
        strict_dry_run_create(cluster.dynamic_admin(), inference_service(namespace, **manifest_change))
    assert refused.value.status in (400, 422)
    assert complaint in status_message(refused.value)


def test_service_monitor_schema_is_enforced(cluster, crds, namespace):
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "drift-detector", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "endpoints": [{"port": "http", "intervall": "30s"}],
        },
    }
    with pytest.raises(ApiException) as refused:
        strict_dry_run_create(cluster.dynamic_admin(), monitor)
    assert 'unknown field "spec.endpoints[0].intervall"' in status_message(refused.value)
    del monitor["spec"]["endpoints"][0]["intervall"]
    strict_dry_run_create(cluster.dynamic_admin(), monitor)
