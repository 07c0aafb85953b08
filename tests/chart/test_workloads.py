"""Security defaults, resources and wiring of every workload in every scenario."""

from __future__ import annotations

import pytest
import yaml
from conftest import SCENARIOS

SECURE_CONTAINER = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod_specs(docs):
    """(object, pod spec or None, containers) for every object that runs containers."""
    for doc in docs:
        kind = doc["kind"]
        if kind == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            yield doc, spec, spec["containers"] + spec.get("initContainers", [])
        elif kind == "CronJob":
            spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            yield doc, spec, spec["containers"] + spec.get("initContainers", [])
        elif kind == "Pod":
            yield doc, doc["spec"], doc["spec"]["containers"]
        elif kind == "InferenceService":
            predictor = doc["spec"]["predictor"]
            yield doc, predictor, [predictor["model"]]
        elif kind == "ServingRuntime":
            yield doc, None, doc["spec"]["containers"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_container_runs_with_the_secure_defaults(scenario, scenario_docs):
    seen = 0
    for doc, pod, containers in pod_specs(scenario_docs[scenario]):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if pod is not None:
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["runAsUser"] == 1000, where
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            tmp = [v for v in pod.get("volumes", []) if v["name"] == "tmp"]
            assert tmp and "emptyDir" in tmp[0], f"{where}: no emptyDir for /tmp"
        for container in containers:
            seen += 1
            name = f"{where} container {container.get('name', 'model')}"
            for key, value in SECURE_CONTAINER.items():
                assert container["securityContext"].get(key) == value, f"{name}: securityContext.{key}"
            resources = container["resources"]
            assert resources["requests"].keys() >= {"cpu", "memory"}, name
            assert resources["limits"].keys() >= {"cpu", "memory"}, name
            if pod is not None:
                mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                assert mounts.get("/tmp") == "tmp", f"{name}: /tmp is not the emptyDir"
    assert seen, "no workload rendered"


# Each Role of the chart, whole: what its component calls and nothing more.
ROLE_RULES = {
    # the retrain controller lists Jobs for its guards and creates one per decision
    "retrainer": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "create"]}],
    # a Spark driver creates, watches and removes its executor pods and their ConfigMap
    "drift-batch": [
        {
            "apiGroups": [""],
            "resources": ["pods", "configmaps"],
            "verbs": ["create", "get", "list", "watch", "delete", "deletecollection"],
        }
    ],
}


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_selectors_point_at_what_they_mean(scenario, scenario_docs):
    docs = scenario_docs[scenario]
    (deployment,) = by_kind(docs, "Deployment")
    (service,) = by_kind(docs, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels_match(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    assert labels_match(service["spec"]["selector"], pod_labels), "Service selects no drift detector pod"
    container_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in container_ports
    for monitor in by_kind(docs, "ServiceMonitor"):
        assert labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    for monitor in by_kind(docs, "PodMonitor"):
        model = next((d for d in by_kind(docs, "InferenceService")), None)
        name = (
            model["metadata"]["name"]
            if model
            else monitor["spec"]["selector"]["matchLabels"]["serving.kserve.io/inferenceservice"]
        )
        # KServe labels every predictor pod with these two
        # (pkg/constants: InferenceServicePodLabelKey and KServiceComponentLabel).
        kserve_pod_labels = {"serving.kserve.io/inferenceservice": name, "component": "predictor"}
        assert monitor["spec"]["selector"]["matchLabels"] == kserve_pod_labels
    for binding in by_kind(docs, "RoleBinding"):
        (role,) = [r for r in by_kind(docs, "Role") if r["metadata"]["name"] == binding["roleRef"]["name"]]
        (cronjob,) = [
            c for c in by_kind(docs, "CronJob") if c["metadata"]["name"] == binding["metadata"]["name"]
        ]
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": pod["serviceAccountName"],
                "namespace": cronjob["metadata"]["namespace"],
            }
        ]
        component = binding["metadata"]["labels"]["app.kubernetes.io/component"]
        assert role["rules"] == ROLE_RULES[component], component


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_payload_logger_reaches_the_drift_detector_service(scenario, scenario_docs):
    docs = scenario_docs[scenario]
    models = by_kind(docs, "InferenceService")
    if not models or "logger" not in models[0]["spec"]["predictor"]:
        pytest.skip("no payload logger in this scenario")
    logger = models[0]["spec"]["predictor"]["logger"]
    if "storage" in logger:
        pytest.skip("the blob-storage logger writes to a bucket (test_blob_logger_finds_its_credentials)")
    (service,) = by_kind(docs, "Service")
    meta = service["metadata"]
    port = service["spec"]["ports"][0]["port"]
    expected = f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local:{port}/"
    assert logger["url"] == expected


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_blob_logger_finds_its_credentials(scenario, scenario_docs):
    """KServe's pod webhook reads the Secrets listed by the logger's ServiceAccount: the chart's
    ServiceAccount lists the Secret it renders, and the batch job reads the same Secret and bucket."""
    docs = scenario_docs[scenario]
    models = by_kind(docs, "InferenceService")
    logger = models[0]["spec"]["predictor"].get("logger", {}) if models else {}
    if "storage" not in logger:
        pytest.skip("no blob-storage logger in this scenario")
    assert logger["url"].split("://")[0] == logger["storage"]["parameters"]["type"]
    (account,) = [
        a
        for a in by_kind(docs, "ServiceAccount")
        if a["metadata"]["name"] == logger["storage"]["serviceAccountName"]
    ]
    (secret,) = by_kind(docs, "Secret")
    assert account["secrets"] == [{"name": secret["metadata"]["name"]}]
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}  # as KServe ships its config
    for cronjob in by_kind(docs, "CronJob"):
        if cronjob["metadata"]["name"].endswith("-drift-batch"):
            container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            refs = {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container["env"]
                if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
            }
            assert refs == {secret["metadata"]["name"]}
            model = models[0]["metadata"]["name"]
            namespace = cronjob["metadata"]["namespace"]
            prefix = f"--logs={logger['url'].rstrip('/')}/{namespace}/{model}/"
            assert prefix in container["args"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_render_is_tidy(scenario, scenario_text):
    """No whitespace-only lines (an empty optional block must leave nothing behind)."""
    ragged = [
        n for n, line in enumerate(scenario_text[scenario].splitlines(), 1) if line and not line.strip()
    ]
    assert not ragged, f"whitespace-only lines at {ragged[:10]}"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_image_pull_secrets_reach_every_pod(scenario, scenario_docs):
    values = yaml.safe_load(SCENARIOS[scenario].read_text()) or {}
    secrets = values.get("imagePullSecrets", [])
    for doc, pod, _ in pod_specs(scenario_docs[scenario]):
        spec = pod if pod is not None else doc["spec"]
        assert spec.get("imagePullSecrets", []) == secrets, f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_object_is_labelled_and_namespaced(scenario, scenario_docs):
    values = yaml.safe_load(SCENARIOS[scenario].read_text()) or {}
    common = values.get("commonLabels", {})
    for doc in scenario_docs[scenario]:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "kmm", where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert labels.items() >= common.items(), f"{where}: commonLabels missing"
        assert doc["metadata"]["namespace"], f"{where}: no namespace"
