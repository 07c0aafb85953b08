"""`helm install`, `helm upgrade` and `helm uninstall` of the chart against the real control plane, for
every chart-testing scenario (charts/kserve-model-monitoring/ci/*-values.yaml), in a namespace that
enforces Pod Security `restricted`, with KServe's webhooks admitting the InferenceService.

helm 3 leaves field validation to the server, whose default only *warns* about unknown fields, so
every rendered object is first created with dryRun=All and fieldValidation=Strict, and any warning
helm relays from the server fails the test. kube-prometheus-stack is the offline stand-in (its
prometheus-operator CRDs only), see tests/chartlib.py.
"""

from __future__ import annotations

import json

import pytest
import yaml
from chartlib import BASE_VALUES, chart_at_version, prepared_chart, render_chart, scenario_files
from helm_cli import helm, helm_result
from kube_harness import RESTRICTED, create_namespace, settle_empty, strict_dry_run_create, wait_for
from kubernetes import client
from kubernetes.dynamic.exceptions import NotFoundError

INSTANCE_LABEL = "app.kubernetes.io/instance"
UPGRADE_LABEL = "kmm-test/upgraded"


def is_hook(doc: dict) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def release_name(scenario) -> str:
    return "kmm-" + scenario.name.split("-")[0]


def ensure_namespaces(admin, docs: list[dict]) -> None:
    """Namespaces the chart writes into besides the release's (the retrainer's training namespace)
    must exist beforehand, as in a real cluster."""
    core = client.CoreV1Api(admin)
    existing = {ns.metadata.name for ns in core.list_namespace().items}
    for name in {d["metadata"].get("namespace") for d in docs} - existing - {None}:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def live(dynamic, doc: dict) -> dict | None:
    resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    try:
        return resource.get(
            name=doc["metadata"]["name"], namespace=doc["metadata"].get("namespace")
        ).to_dict()
    except NotFoundError:
        return None


def leftovers(dynamic, kinds: set[tuple[str, str]], namespaces: set[str], release: str) -> list[str]:
    """Objects of the chart's kinds, and Pods, still carrying the release's instance label (Pods of the
    chart's Deployments go with them through the garbage collector; claims once the PVC protection
    controller sees no Pod using them)."""
    found = []
    for api_version, kind in sorted(kinds | {("v1", "Pod")}):
        resource = dynamic.resources.get(api_version=api_version, kind=kind)
        for namespace in sorted(namespaces):
            items = resource.get(namespace=namespace, label_selector=f"{INSTANCE_LABEL}={release}").items
            found += [f"{kind} {namespace}/{item.metadata.name}" for item in items]
    return found


def rendered(scenario, release: str, namespace: str, set_values: dict | None = None) -> list[dict]:
    docs = render_chart(values_files=[scenario], set_values=set_values, release=release, namespace=namespace)
    for doc in docs:
        doc["metadata"].setdefault("namespace", namespace)
    return docs


def identity(doc: dict) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]


def wait_gone(dynamic, doc: dict, when: str) -> None:
    wait_for(f"{identity(doc)} to be deleted {when}", lambda: live(dynamic, doc) is None, timeout=60)


def pods_of(admin, deployment: dict) -> list[client.V1Pod]:
    """Pods the ReplicaSet controller made for a Deployment (matched by its selector)."""
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    return (
        client.CoreV1Api(admin)
        .list_namespaced_pod(deployment["metadata"]["namespace"], label_selector=selector)
        .items
    )


def upgrade_values(scenario) -> dict:
    """Changed values for the upgrade: a label every object must gain, and the retrainer switched
    the other way, so the upgrade both adds and removes objects."""
    retrainer_on = bool((yaml.safe_load(scenario.read_text()) or {}).get("retrainer", {}).get("enabled"))
    return {
        "commonLabels": {UPGRADE_LABEL: "yes"},
        "retrainer.enabled": not retrainer_on,
        "retrainer.job.image": "registry.example.com/train:2",
        "retrainer.prometheus.url": "http://prometheus-operated.monitoring.svc:9090",
    }


def scenario_id(path) -> str:
    return path.name.removesuffix("-values.yaml")


@pytest.mark.parametrize("scenario", scenario_files(), ids=scenario_id)
def test_scenario_installs_upgrades_and_uninstalls(cluster, admin, crds, namespace, scenario):
    release = release_name(scenario)
    changes = upgrade_values(scenario)
    docs = rendered(scenario, release, namespace)
    upgraded_docs = rendered(scenario, release, namespace, changes)
    objects = [d for d in docs if not is_hook(d)]
    upgraded = [d for d in upgraded_docs if not is_hook(d)]
    assert objects, "the scenario renders nothing"
    ensure_namespaces(admin, docs + upgraded_docs)
    dynamic = cluster.dynamic_admin()

    # 1. The API server accepts every object of both revisions as rendered, strictly.
    for doc in objects + upgraded:
        strict_dry_run_create(dynamic, doc)

    # 2. helm install: every object exists, labelled with the release.
    chart = str(prepared_chart())
    helm(cluster, "install", release, chart, "-n", namespace, "--values", str(scenario))
    for doc in objects:
        stored = live(dynamic, doc)
        assert stored is not None, f"{identity(doc)} missing after install"
        assert stored["metadata"]["labels"][INSTANCE_LABEL] == release
    # Test hooks are Pods: admission needs their ServiceAccounts, which exist now.
    for doc in docs:
        if is_hook(doc):
            strict_dry_run_create(dynamic, doc)
    # The chart's Deployments get Pods from the controllers, admitted under Pod Security `restricted`.
    for doc in objects:
        if doc["kind"] == "Deployment":
            wait_for(f"Pods of {identity(doc)}", lambda doc=doc: pods_of(admin, doc), timeout=60)

    # 3. helm upgrade with changed values: every object updated, the ones no longer rendered gone.
    set_json = [arg for key, value in changes.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]
    helm(cluster, "upgrade", release, chart, "-n", namespace, "--values", str(scenario), *set_json)
    status = json.loads(helm(cluster, "status", release, "-n", namespace, "-o", "json").stdout)
    assert (status["version"], status["info"]["status"]) == (2, "deployed")
    for doc in upgraded:
        stored = live(dynamic, doc)
        assert stored is not None, f"{identity(doc)} missing after upgrade"
        assert stored["metadata"]["labels"].get(UPGRADE_LABEL) == "yes", f"{identity(doc)} not upgraded"
    before, after = {identity(d) for d in objects}, {identity(d) for d in upgraded}
    assert before != after, "the upgrade was meant to add or remove objects"
    for doc in objects:
        if identity(doc) not in after:
            wait_gone(dynamic, doc, "after the upgrade dropped it")

    # 4. helm uninstall leaves nothing of ours, in any namespace the chart wrote to.
    helm(cluster, "uninstall", release, "-n", namespace)
    every = docs + upgraded_docs
    kinds = {(d["apiVersion"], d["kind"]) for d in every}
    namespaces = {d["metadata"]["namespace"] for d in every}
    assert settle_empty(lambda: leftovers(dynamic, kinds, namespaces, release)) == []
    for doc in objects + upgraded:
        assert live(dynamic, doc) is None, f"{identity(doc)} left behind"


def install(cluster, release: str, namespace: str, values: dict) -> list[dict]:
    """helm install of the default scenario with `values` set; returns the objects it rendered."""
    set_json = [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]
    helm(
        cluster,
        "install",
        release,
        str(prepared_chart()),
        "-n",
        namespace,
        "--values",
        str(BASE_VALUES),
        *set_json,
    )
    return [d for d in rendered(BASE_VALUES, release, namespace, values) if not is_hook(d)]


def test_model_releases_side_by_side_and_uninstalling_one_leaves_the_others_whole(
    cluster, admin, crds, namespace
):
    """The catalog shape: one release per model. Two releases in one namespace (the first ships the
    shared dashboards) and the second's name again in another namespace install side by side with no
    object in common; a second release shipping the dashboards is refused rather than taking them
    over; uninstalling a model release leaves every object of the others, dashboards included."""
    other = create_namespace(admin, "t", RESTRICTED)
    dynamic = cluster.dynamic_admin()
    try:
        releases = {
            ("kmm-a", namespace): install(cluster, "kmm-a", namespace, {"grafanaDashboards.enabled": True}),
            ("kmm-b", namespace): install(cluster, "kmm-b", namespace, {}),
            ("kmm-b", other): install(cluster, "kmm-b", other, {}),
        }
        owner: dict[tuple[str, str, str], tuple[str, str]] = {}
        for key, objects in releases.items():
            for doc in objects:
                assert identity(doc) not in owner, (
                    f"{identity(doc)} rendered by {owner[identity(doc)]} and {key}"
                )
                owner[identity(doc)] = key
        assert any(kind == "ConfigMap" and "-dashboard-" in name for kind, _, name in owner)

        second = ["--values", str(BASE_VALUES), "--set", "grafanaDashboards.enabled=true"]
        refused = helm_result(cluster, "install", "kmm-c", str(prepared_chart()), "-n", namespace, *second)
        assert refused.returncode != 0, "a second release took over the shared dashboards"
        assert "invalid ownership metadata" in refused.stderr, refused.stderr

        uninstalled = ("kmm-b", namespace)
        helm(cluster, "uninstall", "kmm-b", "-n", namespace)
        for doc in releases[uninstalled]:
            wait_gone(dynamic, doc, "after its release was uninstalled")
        for key, objects in releases.items():
            if key == uninstalled:
                continue
            for doc in objects:
                stored = live(dynamic, doc)
                assert stored is not None, f"{identity(doc)} of {key} gone with another release"
                assert stored["metadata"]["labels"][INSTANCE_LABEL] == key[0]
    finally:
        for release, ns in (("kmm-a", namespace), ("kmm-b", other)):
            helm_result(cluster, "uninstall", release, "-n", ns)
        client.CoreV1Api(admin).delete_namespace(other)


def claim(objects: list[dict], suffix: str) -> dict:
    (found,) = [
        d for d in objects if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"].endswith(suffix)
    ]
    return found


def test_keep_on_uninstall_keeps_the_claim_asked_for_and_a_reinstall_takes_it_back(
    cluster, admin, crds, namespace
):
    """`driftDetector.persistence.data.keepOnUninstall` keeps the write-ahead log's claim (and its
    volume) through `helm uninstall`; the reports claim, without it, goes with everything else. A
    reinstall under the same name and namespace adopts the kept claim instead of failing on it."""
    release, keep = "kmm-keep", {"driftDetector.persistence.data.keepOnUninstall": True}
    dynamic = cluster.dynamic_admin()
    objects = install(cluster, release, namespace, keep)
    data, reports = claim(objects, "-data"), claim(objects, "-reports")
    kept_uid = live(dynamic, data)["metadata"]["uid"]

    helm(cluster, "uninstall", release, "-n", namespace)
    for doc in objects:
        if identity(doc) != identity(data):
            wait_gone(dynamic, doc, "after uninstall")
    assert identity(reports) != identity(data)
    stored = live(dynamic, data)
    assert stored is not None, "the claim with keepOnUninstall went with the release"
    assert stored["metadata"]["uid"] == kept_uid
    assert stored["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    install(cluster, release, namespace, keep)
    assert live(dynamic, data)["metadata"]["uid"] == kept_uid, "the reinstall made a new claim"
    assert live(dynamic, reports) is not None
    helm(cluster, "uninstall", release, "-n", namespace)
    wait_gone(dynamic, reports, "after the second uninstall")
    client.CoreV1Api(admin).delete_namespaced_persistent_volume_claim(data["metadata"]["name"], namespace)


def drift_detector_state(admin, namespace: str, release: str) -> tuple[dict, int, set[str], set[str]]:
    """The drift detector Deployment's labels and generation, its ReplicaSets and its Pods' uids."""
    apps = client.AppsV1Api(admin)
    selector = f"{INSTANCE_LABEL}={release},app.kubernetes.io/component=drift-detector"
    (deployment,) = apps.list_namespaced_deployment(namespace, label_selector=selector).items
    replica_sets = {
        r.metadata.name for r in apps.list_namespaced_replica_set(namespace, label_selector=selector).items
    }
    pods = {
        p.metadata.uid
        for p in client.CoreV1Api(admin).list_namespaced_pod(namespace, label_selector=selector).items
    }
    return deployment.metadata.labels, deployment.metadata.generation, replica_sets, pods


def test_a_chart_version_bump_upgrade_leaves_the_drift_detector_pod_alone(
    cluster, admin, crds, namespace, tmp_path
):
    """KServe's logger never retries: a `helm upgrade` to a new chart version with the same values must
    not replace the drift detector Pod. The Deployment takes the new chart label, its pod template does
    not change, so no new ReplicaSet and the same Pod; a config change does roll it (the control)."""
    release = "kmm-bump"
    base = ["-n", namespace, "--values", str(BASE_VALUES)]
    helm(cluster, "install", release, str(chart_at_version(tmp_path, "0.1.0")), *base)
    wait_for("the drift detector Pod", lambda: drift_detector_state(admin, namespace, release)[3])
    labels, generation, replica_sets, pods = drift_detector_state(admin, namespace, release)
    assert labels["helm.sh/chart"] == "kserve-model-monitoring-0.1.0"

    bumped = str(chart_at_version(tmp_path, "0.2.0"))
    helm(cluster, "upgrade", release, bumped, *base)
    after_labels, after_generation, after_sets, after_pods = drift_detector_state(admin, namespace, release)
    assert after_labels["helm.sh/chart"] == "kserve-model-monitoring-0.2.0", "the upgrade did not reach it"
    assert after_generation == generation, "the pod template changed with the chart version"
    assert (after_sets, after_pods) == (replica_sets, pods)

    helm(cluster, "upgrade", release, bumped, *base, "--set-json", "driftDetector.config.drift_share=0.3")
    _, rolled_generation, _, _ = drift_detector_state(admin, namespace, release)
    assert rolled_generation == generation + 1
    assert wait_for(
        "a new ReplicaSet", lambda: drift_detector_state(admin, namespace, release)[2] - replica_sets
    )
    helm(cluster, "uninstall", release, "-n", namespace)
