"""KServe itself admits and reconciles the chart: `helm install` into a namespace that enforces Pod
Security `restricted`, with KServe's manager (controller and webhooks, kserve_harness.py) and
kube-controller-manager running against the real API server.

In file order (the module's tests share one release): KServe's webhooks admit the InferenceService;
its controller makes the predictor Deployment; the ReplicaSet controller makes the Pod and KServe's
pod webhook injects the payload logger agent (aimed at the drift detector Service) and the storage
initializer (the model's storageUri); every Pod passes `restricted`; an upgrade rolls the
Deployment; uninstall goes through KServe's finalizer and the garbage collector. Then the settings
KServe refuses, which the chart refuses first, at render time, with a clearer message.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import pytest
import yaml
from chartlib import BASE_VALUES, SPARK_BATCH_VALUES, prepared_chart, render_chart
from helm_cli import helm, helm_result
from kserve_harness import storage_container
from kube_harness import (
    RESTRICTED,
    create_namespace,
    request_status,
    request_token,
    settle_empty,
    status_message,
    strict_dry_run_create,
    wait_for,
)
from kubernetes import client
from kubernetes.client import ApiException
from kubernetes.dynamic import DynamicClient

RELEASE = "fraud"
STORAGE_URI = "s3://models/fraud/v1"
UPGRADED_URI = "s3://models/fraud/v2"
ISVC_LABEL = "serving.kserve.io/inferenceservice"
INTERNAL = "internal.serving.kserve.io"
PREDICTOR = f"{RELEASE}-predictor"  # KServe's name for the predictor's Deployment, Service and HPA


@pytest.fixture(scope="module")
def models_ns(admin) -> str:
    name = create_namespace(admin, "models", RESTRICTED)
    yield name
    client.CoreV1Api(admin).delete_namespace(name)


def install_args(storage_uri: str) -> list[str]:
    return [
        str(prepared_chart()),
        "--values",
        str(BASE_VALUES),
        "--set-json",
        f"predictor.storageUri={json.dumps(storage_uri)}",
    ]


@pytest.fixture(scope="module")
def installed(cluster, kserve, models_ns) -> str:
    helm(cluster, "install", RELEASE, *install_args(STORAGE_URI), "-n", models_ns)
    return models_ns


def inference_service(cluster, namespace: str, name: str = RELEASE) -> dict | None:
    resource = cluster.dynamic_admin().resources.get(
        api_version="serving.kserve.io/v1beta1", kind="InferenceService"
    )
    found = resource.get(namespace=namespace, field_selector=f"metadata.name={name}").items
    return found[0].to_dict() if found else None


def predictor_pods(admin, namespace: str) -> list[client.V1Pod]:
    return (
        client.CoreV1Api(admin).list_namespaced_pod(namespace, label_selector=f"{ISVC_LABEL}={RELEASE}").items
    )


def drift_detector_url(admin, namespace: str) -> str:
    """The logger sink as the chart's drift detector Service defines it, read from the live Service."""
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=drift-detector"
    (service,) = client.CoreV1Api(admin).list_namespaced_service(namespace, label_selector=selector).items
    port = service.spec.ports[0].port
    return f"http://{service.metadata.name}.{namespace}.svc.cluster.local:{port}/"


def flag_value(args: list[str], flag: str) -> str:
    """The value after `flag` in an argument list (KServe writes flags and values as separate items)."""
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def named(containers, name: str):
    (found,) = [c for c in containers or [] if c.name == name]
    return found


def controller_owner(meta: client.V1ObjectMeta) -> client.V1OwnerReference:
    (owner,) = [o for o in meta.owner_references or [] if o.controller]
    return owner


def kserve_log(kserve) -> list[dict]:
    lines = kserve.manager.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_kserve_webhooks_admit_the_inference_service(cluster, kserve, installed):
    stored = inference_service(cluster, installed)
    assert stored is not None
    # The defaulter and the validator saw the create: KServe logs each call.
    log = kserve_log(kserve)
    assert any(e.get("msg") == "validate create" and e.get("name") == RELEASE for e in log)
    assert any(e.get("msg") == "Defaulting InferenceService" and e.get("namespace") == installed for e in log)
    # The controller took it over: its finalizer, then the mode it deployed.
    wait_for(
        "KServe's finalizer",
        lambda: (
            "inferenceservice.finalizers"
            in (inference_service(cluster, installed)["metadata"].get("finalizers") or [])
        ),
    )
    status = wait_for(
        "the status KServe writes",
        lambda: inference_service(cluster, installed).get("status", {}).get("deploymentMode"),
    )
    assert status == "Standard"


def test_kserve_makes_the_predictor_deployment_service_and_hpa(cluster, admin, installed):
    apps = client.AppsV1Api(admin)
    deployment = wait_for(
        "the predictor Deployment",
        lambda: apps.list_namespaced_deployment(installed, field_selector=f"metadata.name={PREDICTOR}").items,
    )[0]
    owner = controller_owner(deployment.metadata)
    assert (owner.kind, owner.name) == ("InferenceService", RELEASE)
    annotations = deployment.spec.template.metadata.annotations
    assert annotations[f"{INTERNAL}/logger-sink-url"] == drift_detector_url(admin, installed)
    assert annotations[f"{INTERNAL}/storage-initializer-sourceuri"] == STORAGE_URI
    service = client.CoreV1Api(admin).read_namespaced_service(PREDICTOR, installed)
    hpa = client.AutoscalingV2Api(admin).read_namespaced_horizontal_pod_autoscaler(PREDICTOR, installed)
    for made in (service, hpa):
        assert controller_owner(made.metadata).name == RELEASE
    assert hpa.spec.metrics[0].resource.name == "cpu"
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 3)


def test_replicaset_pod_gets_kserves_agent_and_storage_initializer(cluster, admin, installed):
    (pod,) = wait_for("the predictor Pod", lambda: predictor_pods(admin, installed))
    replica_set_owner = controller_owner(pod.metadata)
    assert replica_set_owner.kind == "ReplicaSet"
    replica_set = client.AppsV1Api(admin).read_namespaced_replica_set(replica_set_owner.name, installed)
    assert controller_owner(replica_set.metadata).name == PREDICTOR

    agent = named(pod.spec.containers, "agent")
    assert flag_value(agent.args, "--log-url") == drift_detector_url(admin, installed)
    assert flag_value(agent.args, "--log-mode") == "all"
    assert flag_value(agent.args, "--metadata-headers") == "X-Request-Id"
    assert flag_value(agent.args, "--inference-service") == RELEASE
    assert flag_value(agent.args, "--namespace") == installed
    assert flag_value(agent.args, "--component-port") == "8080"
    initializer = named(pod.spec.init_containers, "storage-initializer")
    assert initializer.args == [STORAGE_URI, "/mnt/models"]
    model = named(pod.spec.containers, "kserve-container")
    assert model.image.startswith("ghcr.io/kserve-model-monitoring/predictor:")


def test_every_pod_passes_pod_security_restricted(cluster, admin, installed):
    labels = client.CoreV1Api(admin).read_namespace(installed).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=drift-detector"
    assert wait_for(
        "the drift detector Pod",
        lambda: client.CoreV1Api(admin).list_namespaced_pod(installed, label_selector=selector).items,
    )
    assert predictor_pods(admin, installed)
    # The level is enforced, not only labelled: a Pod without a security context is refused.
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "namespace": installed},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    with pytest.raises(ApiException) as refused:
        strict_dry_run_create(cluster.dynamic_admin(), bare)
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in status_message(refused.value)


def predictor_pod_manifest(admin, namespace: str, annotations: dict[str, str]) -> dict:
    """A Pod of the predictor Deployment's template, as the ReplicaSet controller would create it."""
    deployment = client.AppsV1Api(admin).read_namespaced_deployment(PREDICTOR, namespace)
    template = client.ApiClient().sanitize_for_serialization(deployment.spec.template)
    template["metadata"]["annotations"] = {**template["metadata"].get("annotations", {}), **annotations}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": "probe", "namespace": namespace},
        "spec": template["spec"],
    }


def test_storage_initializer_needs_kserves_security_context_under_restricted(
    cluster, admin, kserve, installed
):
    """KServe copies the storage initializer's security context from the ClusterStorageContainer that
    serves the URI; the kustomize install's `default` has none, and restricted then refuses the Pod."""
    dynamic = cluster.dynamic_admin()
    containers = dynamic.resources.get(
        api_version="serving.kserve.io/v1alpha1", kind="ClusterStorageContainer"
    )
    # KServe's Helm chart's default passes restricted.
    strict_dry_run_create(dynamic, predictor_pod_manifest(admin, installed, {}))
    # The bare container serves only its own URI prefix: KServe's webhook lists containers from an
    # informer cache in no fixed order, so one that also served s3:// could be picked for other Pods.
    bare = storage_container(kserve.module_dir, name="without-security-context")
    bare["spec"]["supportedUriFormats"] = [{"prefix": "kmm-bare://"}]
    containers.create(body=bare)
    try:
        chosen = {
            f"{INTERNAL}/storage-container-name": "without-security-context",
            f"{INTERNAL}/storage-initializer-sourceuri": "kmm-bare://models/breast-cancer",
        }
        with pytest.raises(ApiException) as refused:
            strict_dry_run_create(dynamic, predictor_pod_manifest(admin, installed, chosen))
    finally:
        containers.delete(name="without-security-context")
    message = status_message(refused.value)
    assert 'violates PodSecurity "restricted:latest"' in message
    assert (
        'container "storage-initializer" must set securityContext.allowPrivilegeEscalation=false' in message
    )


def test_upgrade_rolls_the_predictor_deployment(cluster, admin, installed):
    helm(cluster, "upgrade", RELEASE, *install_args(UPGRADED_URI), "-n", installed)
    apps = client.AppsV1Api(admin)

    def template_uri() -> str:
        template = apps.read_namespaced_deployment(PREDICTOR, installed).spec.template
        return template.metadata.annotations[f"{INTERNAL}/storage-initializer-sourceuri"]

    wait_for("KServe to update the Deployment", lambda: template_uri() == UPGRADED_URI)

    def upgraded_pods() -> list:
        return [
            p
            for p in predictor_pods(admin, installed)
            if named(p.spec.init_containers, "storage-initializer").args[0] == UPGRADED_URI
        ]

    (pod,) = wait_for("a Pod of the new ReplicaSet", upgraded_pods)
    assert flag_value(named(pod.spec.containers, "agent").args, "--log-url") == drift_detector_url(
        admin, installed
    )


def test_changing_the_deployment_mode_is_refused_by_kserve_and_first_by_the_chart(cluster, installed):
    knative = {"predictor.deploymentMode": "Knative", "predictor.scaleMetric": "concurrency"}
    set_json = [arg for key, value in knative.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]
    done = helm_result(cluster, "upgrade", RELEASE, *install_args(UPGRADED_URI), *set_json, "-n", installed)
    assert done.returncode == 1
    assert "predictor.deploymentMode cannot change from Standard to Knative on upgrade" in done.stderr
    assert "admission webhook" not in done.stderr

    resource = cluster.dynamic_admin().resources.get(
        api_version="serving.kserve.io/v1beta1", kind="InferenceService"
    )
    patch = {
        "metadata": {"annotations": {"serving.kserve.io/deploymentMode": "Knative"}},
        "spec": {"predictor": {"scaleMetric": "concurrency"}},
    }
    with pytest.raises(ApiException) as refused:
        resource.patch(
            name=RELEASE, namespace=installed, body=patch, content_type="application/merge-patch+json"
        )
    assert "update rejected: deploymentMode cannot be changed from 'Standard' to 'Knative'" in status_message(
        refused.value
    )


def test_uninstall_goes_through_kserve_and_the_garbage_collector(cluster, admin, installed):
    helm(cluster, "uninstall", RELEASE, "-n", installed)
    wait_for(
        "KServe to release and the API server to delete the InferenceService",
        lambda: inference_service(cluster, installed) is None,
    )
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    by_isvc = f"{ISVC_LABEL}={RELEASE}"

    def kserve_made() -> list[str]:
        deployments = apps.list_namespaced_deployment(
            installed, field_selector=f"metadata.name={PREDICTOR}"
        ).items
        found = [f"Deployment {d.metadata.name}" for d in deployments]
        found += [
            f"ReplicaSet {r.metadata.name}"
            for r in apps.list_namespaced_replica_set(installed, label_selector=by_isvc).items
        ]
        found += [
            f"Pod {p.metadata.name}"
            for p in core.list_namespaced_pod(installed, label_selector=by_isvc).items
        ]
        found += [
            f"Service {s.metadata.name}"
            for s in core.list_namespaced_service(
                installed, field_selector=f"metadata.name={PREDICTOR}"
            ).items
        ]
        hpas = client.AutoscalingV2Api(admin).list_namespaced_horizontal_pod_autoscaler(installed).items
        return found + [f"HPA {h.metadata.name}" for h in hpas]

    assert settle_empty(kserve_made) == []


def hpa_targets(admin, namespace: str, name: str) -> list[tuple[str, int]]:
    """(resource, target utilization) of each metric of an HPA; empty while there is no HPA."""
    found = client.AutoscalingV2Api(admin).list_namespaced_horizontal_pod_autoscaler(
        namespace, field_selector=f"metadata.name={name}"
    )
    return [
        (m.resource.name, m.resource.target.average_utilization) for h in found.items for m in h.spec.metrics
    ]


def test_kserve_accepts_rps_in_standard_mode_and_scales_on_cpu_instead(cluster, admin, kserve, namespace):
    """Why the chart refuses concurrency/rps in Standard mode even where KServe's webhook lets them
    through (no autoscaler class annotation): the HPA KServe makes then ignores them."""
    release, scale_target = "rps", ["--set-json", "predictor.scaleTarget=50"]
    helm(cluster, "install", release, *install_args(STORAGE_URI), *scale_target, "-n", namespace)
    hpa = f"{release}-predictor"
    assert wait_for("KServe's HPA", lambda: hpa_targets(admin, namespace, hpa)) == [("cpu", 50)]

    isvc = cluster.dynamic_admin().resources.get(
        api_version="serving.kserve.io/v1beta1", kind="InferenceService"
    )
    patch = {"spec": {"predictor": {"scaleMetric": "rps", "scaleTarget": 5}}}
    isvc.patch(name=release, namespace=namespace, body=patch, content_type="application/merge-patch+json")
    wait_for("KServe to update its HPA", lambda: hpa_targets(admin, namespace, hpa) != [("cpu", 50)])
    assert hpa_targets(admin, namespace, hpa) == [("cpu", 80)]  # Kubernetes' default, not rps 5
    helm(cluster, "uninstall", release, "-n", namespace)


# --- settings KServe refuses, and the chart refuses first ------------------------------------


@dataclass(frozen=True)
class Refusal:
    values: dict
    chart_says: str
    kserve_says: str
    annotations: dict = field(default_factory=dict)
    predictor: dict = field(default_factory=dict)
    release: str = "refused"


REFUSALS = {
    "knative-with-cpu": Refusal(
        values={"predictor.deploymentMode": "Knative", "predictor.scaleMetric": "cpu"},
        chart_says="predictor.scaleMetric=cpu does not work with predictor.deploymentMode=Knative",
        kserve_says="[cpu] is not a supported metric",
        annotations={"serving.kserve.io/deploymentMode": "Knative"},
        predictor={"scaleMetric": "cpu"},
    ),
    "standard-hpa-with-rps": Refusal(
        values={
            "predictor.scaleMetric": "rps",
            "predictor.annotations": {"serving.kserve.io/autoscalerClass": "hpa"},
        },
        chart_says="predictor.scaleMetric=rps does not work with predictor.deploymentMode=Standard",
        kserve_says="[rps] is not a supported metric",
        annotations={"serving.kserve.io/autoscalerClass": "hpa"},
        predictor={"scaleMetric": "rps"},
    ),
    "keda-with-scale-metric": Refusal(
        values={"predictor.annotations": {"serving.kserve.io/autoscalerClass": "keda"}},
        chart_says="autoscalerClass=keda in predictor.annotations: KServe refuses scaleMetric with KEDA",
        kserve_says="ScaleMetric is not supported for KEDA",
        annotations={"serving.kserve.io/autoscalerClass": "keda"},
    ),
    "min-replicas-over-max": Refusal(
        values={"predictor.minReplicas": 4, "predictor.maxReplicas": 2},
        chart_says="predictor.minReplicas (4) must not exceed predictor.maxReplicas (2)",
        kserve_says="'MinReplicas' cannot be greater than MaxReplicas",
        predictor={"minReplicas": 4, "maxReplicas": 2},
    ),
    "name-starting-with-a-digit": Refusal(
        values={},
        release="7fraud",
        chart_says='InferenceService name "7fraud" (modelName, default: the release name) must start with',
        kserve_says="must start with alphabetical character",
    ),
}


def raw_inference_service(case: Refusal, namespace: str) -> dict:
    """The chart's own InferenceService (valid values) with the refused change made by hand."""
    docs = render_chart(
        set_values={"predictor.storageUri": STORAGE_URI}, release="refused", namespace=namespace
    )
    (isvc,) = [copy.deepcopy(d) for d in docs if d["kind"] == "InferenceService"]
    isvc["metadata"]["name"] = case.release
    isvc["metadata"]["annotations"].update(case.annotations)
    isvc["spec"]["predictor"].update(case.predictor)
    return isvc


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_kserve_refuses_the_raw_object(cluster, kserve, namespace, case):
    resource = cluster.dynamic_admin().resources.get(
        api_version="serving.kserve.io/v1beta1", kind="InferenceService"
    )
    with pytest.raises(ApiException) as refused:
        resource.create(body=raw_inference_service(case, namespace), namespace=namespace)
    message = status_message(refused.value)
    assert (
        'admission webhook "inferenceservice.kserve-webhook-server.validator" denied the request' in message
    )
    assert case.kserve_says in message


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_the_chart_refuses_first_with_a_clearer_message(cluster, admin, kserve, namespace, case):
    set_json = [
        arg for key, value in case.values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")
    ]
    done = helm_result(
        cluster, "install", case.release, *install_args(STORAGE_URI), *set_json, "-n", namespace
    )
    assert done.returncode == 1
    assert case.chart_says in done.stderr
    assert "admission webhook" not in done.stderr  # refused at render time, before KServe saw anything
    assert inference_service(cluster, namespace, case.release) is None


# --- the predictor's escape hatches, carried by KServe into the Pod ---------------------------


def set_json_args(values: dict) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def pods_of_release(admin, namespace: str, release: str) -> list[client.V1Pod]:
    return (
        client.CoreV1Api(admin).list_namespaced_pod(namespace, label_selector=f"{ISVC_LABEL}={release}").items
    )


HATCHES = {
    "predictor.env": [{"name": "LOG_LEVEL", "value": "debug"}],
    "predictor.envFrom": [{"secretRef": {"name": "predictor-settings", "optional": True}}],
    "predictor.extraVolumes": [
        {"name": "corporate-ca", "configMap": {"name": "corporate-ca", "optional": True}}
    ],
    "predictor.extraVolumeMounts": [
        {"name": "corporate-ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}
    ],
    "predictor.priorityClassName": "kmm-serving",
    "predictor.topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {ISVC_LABEL: "hatch"}},
        }
    ],
    "predictor.podSecurityContext": {"fsGroup": None},
    "predictor.containerSecurityContext": {"runAsUser": 1001, "runAsGroup": 1001},
}


def test_predictor_escape_hatches_reach_the_pod_kserve_makes(cluster, admin, kserve, namespace):
    """Each predictor knob lands in the InferenceService field KServe takes for it, KServe's webhook
    admits it and KServe's Deployment carries it into the Pod (Pod Security `restricted` included);
    KServe's agent gets the predictor container's security context."""
    scheduling = client.SchedulingV1Api(admin)
    if not scheduling.list_priority_class(field_selector="metadata.name=kmm-serving").items:
        scheduling.create_priority_class(
            client.V1PriorityClass(metadata=client.V1ObjectMeta(name="kmm-serving"), value=1000)
        )
    helm(cluster, "install", "hatch", *install_args(STORAGE_URI), *set_json_args(HATCHES), "-n", namespace)
    (pod,) = wait_for("the predictor Pod", lambda: pods_of_release(admin, namespace, "hatch"))
    spec = pod.spec
    assert (spec.priority_class_name, spec.priority) == ("kmm-serving", 1000)
    (spread,) = spec.topology_spread_constraints
    assert (spread.topology_key, spread.label_selector.match_labels) == (
        "topology.kubernetes.io/zone",
        {ISVC_LABEL: "hatch"},
    )
    assert [v.config_map.name for v in spec.volumes if v.name == "corporate-ca"] == ["corporate-ca"]
    assert spec.security_context.fs_group is None and spec.security_context.run_as_non_root is True
    model = named(spec.containers, "kserve-container")
    assert {m.name: m.mount_path for m in model.volume_mounts}["corporate-ca"] == "/etc/ssl/corporate"
    assert [e.secret_ref.name for e in model.env_from] == ["predictor-settings"]
    assert {"HOME": "/tmp", "LOG_LEVEL": "debug"}.items() <= {e.name: e.value for e in model.env}.items()
    assert (model.security_context.run_as_user, model.security_context.read_only_root_filesystem) == (
        1001,
        True,
    )
    agent = named(spec.containers, "agent")
    assert agent.security_context.run_as_user == 1001
    helm(cluster, "uninstall", "hatch", "-n", namespace)


# --- the blob-storage logger and the batch drift job -------------------------------------------

BLOB = {
    **SPARK_BATCH_VALUES,
    "predictor.logger.blob.batchSize": 200,
    "predictor.logger.blob.batchInterval": "10s",
    "predictor.logger.blob.credentials.create": True,
    "predictor.logger.blob.credentials.accessKeyId": "k8s-tier-access-key",
    "predictor.logger.blob.credentials.secretAccessKey": "k8s-tier-secret-key",
    "predictor.logger.blob.s3.endpoint": "http://seaweedfs.storage.svc.cluster.local:8333",
    "predictor.logger.blob.s3.region": "eu-west-1",
    "batchDrift.spark.launcher": "spark-submit",
}


def env_by_name(container) -> dict:
    return {e.name: e for e in container.env or []}


def pod_from_template(template: dict, name: str, namespace: str) -> dict:
    """The Pod a controller would create from a pod template (the Job controller does not run here)."""
    metadata = {**template.get("metadata", {}), "name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def test_blob_logger_is_admitted_by_kserve_and_its_agent_gets_the_secrets_credentials(
    cluster, admin, kserve, namespace
):
    """KServe's webhook admits the InferenceService with `logger.storage`; its pod webhook gives the agent
    the blob flags and, through the ServiceAccount the chart names, the chart's Secret as S3 environment
    (keys by reference, endpoint and region from the Secret's annotations)."""
    helm(cluster, "install", "blob", *install_args(STORAGE_URI), *set_json_args(BLOB), "-n", namespace)
    isvc = inference_service(cluster, namespace, "blob")
    assert isvc["spec"]["predictor"]["logger"]["storage"]["parameters"] == {"type": "s3", "format": "parquet"}
    assert any(e.get("msg") == "validate create" and e.get("name") == "blob" for e in kserve_log(kserve))

    (pod,) = wait_for("the predictor Pod", lambda: pods_of_release(admin, namespace, "blob"))
    agent = named(pod.spec.containers, "agent")
    assert flag_value(agent.args, "--log-url") == "s3://payload-logs/kserve"
    assert flag_value(agent.args, "--log-store-path") == "logs"
    assert flag_value(agent.args, "--log-store-format") == "parquet"
    assert flag_value(agent.args, "--log-batch-size") == "200"
    assert flag_value(agent.args, "--log-batch-interval") == "10s"
    env = env_by_name(agent)
    secret = "blob-kserve-model-monitoring-blob-logger"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # the key names of KServe's shipped config
        ref = env[name].value_from.secret_key_ref
        assert (ref.name, ref.key) == (secret, name), name
    assert env["AWS_ENDPOINT_URL"].value == "http://seaweedfs.storage.svc.cluster.local:8333"
    assert (env["S3_ENDPOINT"].value, env["S3_USE_HTTPS"].value) == (
        "seaweedfs.storage.svc.cluster.local:8333",
        "0",
    )
    assert env["AWS_DEFAULT_REGION"].value == "eu-west-1"
    helm(cluster, "uninstall", "blob", "-n", namespace)


def test_batch_drift_cronjob_is_admitted_and_its_driver_may_only_run_executors(
    cluster, admin, kserve, namespace
):
    """The spark-submit CronJob is stored; the Pod its Job would make, and an executor Pod from the
    chart's executor template, pass Pod Security `restricted`; the driver's token may create and delete
    executor pods and their ConfigMaps in the release namespace, and nothing else."""
    helm(cluster, "install", "batch", *install_args(STORAGE_URI), *set_json_args(BLOB), "-n", namespace)
    dynamic = cluster.dynamic_admin()
    docs = render_chart(
        set_values={"predictor.storageUri": STORAGE_URI, **BLOB}, release="batch", namespace=namespace
    )
    (cronjob,) = [d for d in docs if d["kind"] == "CronJob"]
    stored = client.BatchV1Api(admin).read_namespaced_cron_job(cronjob["metadata"]["name"], namespace)
    assert stored.spec.job_template.spec.template.spec.containers[0].command == ["spark-submit"]
    strict_dry_run_create(
        dynamic, pod_from_template(cronjob["spec"]["jobTemplate"]["spec"]["template"], "batch-run", namespace)
    )

    (config_map,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-drift-batch")
    ]
    executor = yaml.safe_load(config_map["data"]["executor-pod.yaml"])
    executor["spec"]["containers"][0].update(image=BLOB["batchDrift.spark.image.repository"] + ":1")
    executor["metadata"].update(name="batch-exec-1", namespace=namespace)
    driver_sa = stored.spec.job_template.spec.template.spec.service_account_name
    driver = cluster.token_client(request_token(admin, namespace, driver_sa))
    strict_dry_run_create(DynamicClient(driver), executor)  # authorized and admitted under restricted

    allowed = [
        ("POST", f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "spark-exec-conf"}}),
        ("GET", f"/api/v1/namespaces/{namespace}/pods", None),
        ("DELETE", f"/api/v1/namespaces/{namespace}/pods", None),
        ("DELETE", f"/api/v1/namespaces/{namespace}/configmaps", None),
    ]
    refused = [
        ("GET", f"/api/v1/namespaces/{namespace}/secrets", None),
        ("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", {"metadata": {"name": "x"}}),
        ("GET", "/api/v1/namespaces/default/pods", None),
        ("POST", f"/api/v1/namespaces/{namespace}/services", {"metadata": {"name": "x"}}),
    ]

    def status(method: str, path: str, body: dict | None) -> int:
        dry_run = {} if method == "GET" else {"dryRun": "All"}  # writes stay dry runs
        return request_status(driver, method, path, body, **dry_run)

    assert {(m, p): status(m, p, b) < 300 for m, p, b in allowed} == {(m, p): True for m, p, _ in allowed}
    assert {(m, p): status(m, p, b) for m, p, b in refused} == {(m, p): 403 for m, p, _ in refused}
    helm(cluster, "uninstall", "batch", "-n", namespace)
