"""KServe's own controller and admission webhooks, running against the test control plane.

The manager is KServe's cmd/manager built from the pinned kserve Go module (ci/install-tools.sh kserve,
.tools/bin/kserve-manager). Everything it is configured with comes from that module's own install
manifests, changed only where a cluster-less loopback setup needs it:

- CRDs: config/crd/full (installed by the caller before the manager starts: it looks them up once).
- ConfigMap `inferenceservice-config` in namespace `kserve`: config/configmap/inferenceservice.yaml with
  `deploy.defaultDeploymentMode` set to Standard (the shipped default is Serverless, i.e. Knative).
- ClusterStorageContainer `default`: config/storagecontainers/default.yaml with the container security
  context KServe's Helm chart adds (kserve.storage.containerSecurityContext): without it the storage
  initializer KServe injects breaks Pod Security `restricted`.
- Webhook configurations: config/webhook/manifests.yaml with each Service client config replaced by
  `url: https://127.0.0.1:<port><path>` and the test CA as caBundle.

Facts the manager imposes (cmd/manager/main.go, controller-runtime v0.22): POD_NAMESPACE names the
namespace of its ConfigMap; no flag sets the webhook certificate directory, so it reads tls.crt/tls.key
from $TMPDIR/k8s-webhook-server/serving-certs (TMPDIR points into the test directory); the webhook
server has no host flag and listens on every interface (the API server reaches it on 127.0.0.1).
In Standard mode it needs no Knative, Istio, Gateway API, KEDA or OpenTelemetry CRDs: it checks for
each at start and skips what is absent.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import yaml
from kube_harness import (
    REPO,
    Cluster,
    Process,
    free_port,
    kserve_module_dir,
    pinned_module_version,
    serving_certificate,
    wait_until,
)
from kubernetes import client
from kubernetes.dynamic import DynamicClient

KSERVE_MANAGER = REPO / ".tools" / "bin" / "kserve-manager"
KSERVE_NAMESPACE = "kserve"
CONFIG_MAP = "inferenceservice-config"
DEPLOYMENT_MODE = "Standard"
# kserve-resources chart values, kserve.storage.containerSecurityContext (v0.20.0).
STORAGE_INITIALIZER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


@dataclass
class KServe:
    """The running manager and where it listens."""

    manager: Process
    webhook_url: str
    module_dir: Path

    def stop(self) -> None:
        self.manager.stop()


def _load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def inferenceservice_config(module_dir: Path) -> dict:
    """KServe's shipped ConfigMap with the Standard deployment mode as default (key `deploy`)."""
    (config_map,) = _load(module_dir / "config" / "configmap" / "inferenceservice.yaml")
    deploy = json.loads(config_map["data"]["deploy"])
    deploy["defaultDeploymentMode"] = DEPLOYMENT_MODE
    config_map["data"]["deploy"] = json.dumps(deploy)
    config_map["metadata"]["namespace"] = KSERVE_NAMESPACE
    return config_map


def storage_container(module_dir: Path, name: str = "default", security_context: dict | None = None) -> dict:
    """KServe's shipped ClusterStorageContainer (image tagged with the pinned release), with a security
    context for its container when given (KServe's Helm chart sets one; the kustomize manifests do not)."""
    (container,) = _load(module_dir / "config" / "storagecontainers" / "default.yaml")
    container["metadata"]["name"] = name
    spec = container["spec"]["container"]
    spec["image"] = f"kserve/storage-initializer:{pinned_module_version('KSERVE_MODULE_VERSION')}"
    if security_context is not None:
        spec["securityContext"] = security_context
    return container


def webhook_configurations(module_dir: Path, base_url: str, ca_bundle: bytes) -> list[dict]:
    """KServe's webhook configurations with URL client configs on loopback and the test CA."""
    configurations = _load(module_dir / "config" / "webhook" / "manifests.yaml")
    for configuration in configurations:
        configuration["metadata"].pop("creationTimestamp", None)
        for webhook in configuration["webhooks"]:
            path = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = {"url": f"{base_url}{path}", "caBundle": b64encode(ca_bundle).decode()}
    return configurations


def _create(dynamic: DynamicClient, manifest: dict) -> None:
    resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    resource.create(body=manifest, namespace=manifest["metadata"].get("namespace"))


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def start_kserve(cluster: Cluster) -> KServe:
    """Configures the cluster for KServe (namespace, ConfigMap, ClusterStorageContainer), starts its
    manager and registers its webhooks once the webhook server answers. The KServe CRDs must exist."""
    if not KSERVE_MANAGER.exists():
        raise FileNotFoundError(f"{KSERVE_MANAGER} is missing: build it with `ci/install-tools.sh kserve`")
    module_dir = kserve_module_dir()
    api = cluster.admin_client()
    dynamic = DynamicClient(api)
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=KSERVE_NAMESPACE))
    )
    _create(dynamic, inferenceservice_config(module_dir))
    _create(dynamic, storage_container(module_dir, security_context=STORAGE_INITIALIZER_SECURITY_CONTEXT))

    directory = cluster.directory / "kserve"
    cert_dir = directory / "tmp" / "k8s-webhook-server" / "serving-certs"
    cert_dir.mkdir(parents=True)
    cert, key = serving_certificate(cluster.pki, "kserve-webhook")
    (cert_dir / "tls.crt").write_bytes(cert.read_bytes())
    (cert_dir / "tls.key").write_bytes(key.read_bytes())

    webhook_port, probe_port = free_port(), free_port()
    argv = [
        str(KSERVE_MANAGER),
        "--metrics-addr", f"127.0.0.1:{free_port()}",
        "--health-probe-addr", f"127.0.0.1:{probe_port}",
        "--webhook-port", str(webhook_port),
    ]  # fmt: skip
    env = {
        **os.environ,
        "POD_NAMESPACE": KSERVE_NAMESPACE,
        "KUBECONFIG": str(cluster.admin_kubeconfig),
        "TMPDIR": str(directory / "tmp"),
    }
    manager = Process("kserve-manager", argv, directory / "kserve-manager.log", env=env)
    try:
        wait_until("/readyz", manager, lambda: _healthy(f"http://127.0.0.1:{probe_port}/readyz"), timeout=60)
        base_url = f"https://127.0.0.1:{webhook_port}"
        for configuration in webhook_configurations(module_dir, base_url, cluster.ca_file.read_bytes()):
            _create(dynamic, configuration)
    except BaseException:
        manager.stop()
        raise
    return KServe(manager, base_url, module_dir)
