"""A real Kubernetes control plane on loopback for the tests: Debian's etcd, kube-apiserver (Pod
Security admission on) and kube-controller-manager running the controllers the chart's objects need.

Objects are stored, validated, admitted, authorized and reconciled for real by the controllers listed
in CONTROLLERS (Deployments make ReplicaSets, ReplicaSets make Pods, namespaces get their "default"
ServiceAccount and finish deleting, the garbage collector follows owner references). No kubelet and
no scheduler run: Pods stay Pending, Jobs and CronJobs never start (their controllers are off).

kube-apiserver and kube-controller-manager are built from one k8s.io/kubernetes Go module by
ci/build-kube-apiserver.sh; the certificates are made with the openssl CLI: one test CA signs the
serving certificates and the admin client certificate (O=system:masters).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

REPO = Path(__file__).resolve().parents[2]
KUBE_APISERVER = REPO / ".tools" / "bin" / "kube-apiserver"
KUBE_CONTROLLER_MANAGER = REPO / ".tools" / "bin" / "kube-controller-manager"
BUILD_SCRIPT = REPO / "ci" / "build-kube-apiserver.sh"
ETCD = Path(os.environ.get("ETCD", "/usr/bin/etcd"))
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
STARTUP_TIMEOUT_SECONDS = 180
# Namespace labels of the Pod Security admission plugin: reject any Pod below the restricted level.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def free_port() -> int:
    """A loopback port the OS just handed out (closed again, so the server can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What the chart's objects need reconciled; nothing else runs (no Job, CronJob or HPA controller:
# their objects are only stored). PVC protection lets `helm uninstall` delete claims for real.
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "garbage-collector-controller",
    "persistentvolumeclaim-protection-controller",
)


def ensure_kube_binaries() -> None:
    """Builds kube-apiserver and kube-controller-manager when missing or stale (a no-op once built
    from the current pins)."""
    subprocess.run([str(BUILD_SCRIPT)], check=True)


# --- certificates ---------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path


def _ec_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))


def _certificate(directory: Path, name: str, subject: str, extensions: str, ca: tuple[Path, Path] | None):
    """An EC P-256 key and a certificate for it: self-signed when ca is None, else signed by ca."""
    key, csr, ext, cert = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "ext", "crt"))
    _ec_key(key)
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    ext.write_text(extensions)
    signer = ["-signkey", str(key)] if ca is None else ["-CA", str(ca[0]), "-CAkey", str(ca[1])]
    serial = str(int.from_bytes(os.urandom(8), "big"))
    _openssl("x509", "-req", "-in", str(csr), *signer, "-set_serial", serial, "-days", "2",
             "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return cert, key


def serving_certificate(pki: Pki, name: str) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 signed by the test CA (for webhook servers on loopback)."""
    return _certificate(
        pki.ca_cert.parent, name, f"/CN={name}",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1\n",
        (pki.ca_cert, pki.ca_key),
    )  # fmt: skip


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _certificate(
        directory, "ca", "/CN=kserve-model-monitoring-test-ca",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n", None,
    )  # fmt: skip
    serving_cert, serving_key = _certificate(
        directory, "apiserver", "/CN=kube-apiserver",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n",
        (ca_cert, ca_key),
    )  # fmt: skip
    # O=system:masters is the group the API server's bootstrap RBAC binds to cluster-admin.
    admin_cert, admin_key = _certificate(
        directory, "admin", "/O=system:masters/CN=admin",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        (ca_cert, ca_key),
    )  # fmt: skip
    # ServiceAccount tokens: the API server signs with the private key and verifies with the public one.
    service_account_key, service_account_pub = (
        directory / "service-account.key",
        directory / "service-account.pub",
    )
    _ec_key(service_account_key)
    _openssl("pkey", "-in", str(service_account_key), "-pubout", "-out", str(service_account_pub))
    return Pki(
        ca_cert,
        ca_key,
        serving_cert,
        serving_key,
        admin_cert,
        admin_key,
        service_account_key,
        service_account_pub,
    )


# --- processes ------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: kill the server when the test process dies without tearing down (kill -9, OOM)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Process:
    """A child process whose output goes to a log file, stopped gracefully then killed."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            preexec_fn=_die_with_parent,
        )  # fmt: skip

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.running():
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


def wait_until(what: str, process: Process, probe, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    """Wait for a starting `process` to pass `probe`; when it never does (or the wait is interrupted),
    stop it before raising, so a failed start-up leaves nothing running."""
    try:
        _wait_for_probe(what, process, probe, timeout)
    except BaseException:
        process.stop()
        raise


def _wait_for_probe(what: str, process: Process, probe, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running():
            raise RuntimeError(f"{process.name} exited before {what}:\n{process.log_tail()}")
        if probe():
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"{process.name}: timed out after {timeout:.0f}s waiting for {what}:\n{process.log_tail()}"
    )


def start_etcd(directory: Path) -> tuple[Process, str]:
    client_port, peer_port = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    argv = [
        str(ETCD), "--name", "test", "--data-dir", str(directory / "etcd-data"),
        "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"test={peer_url}", "--log-level", "warn", "--logger", "zap",
    ]  # fmt: skip
    etcd = Process("etcd", argv, directory / "etcd.log")

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{client_url}/health", timeout=2) as response:
                return json.load(response).get("health") == "true"
        except (OSError, ValueError):
            return False

    wait_until("/health", etcd, healthy, timeout=60)
    return etcd, client_url


@dataclass
class Cluster:
    """The running control plane and what clients need to reach it."""

    server: str
    ca_file: Path
    admin_kubeconfig: Path
    apiserver: Process
    directory: Path
    pki: Pki

    def admin_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.admin_kubeconfig))

    def dynamic_admin(self) -> DynamicClient:
        return DynamicClient(self.admin_client())

    def token_client(self, token: str) -> client.ApiClient:
        configuration = client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(configuration)

    def token_kubeconfig(self, path: Path, token: str, namespace: str = "default") -> Path:
        """A kubeconfig that authenticates with a bearer token only (what a CronJob pod would have)."""
        write_kubeconfig(path, self.server, self.ca_file, {"token": token}, namespace)
        return path


def write_kubeconfig(path: Path, server: str, ca_file: Path, user: dict, namespace: str = "default") -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "test-user", "user": user}],
        "contexts": [
            {"name": "test", "context": {"cluster": "test", "user": "test-user", "namespace": namespace}}
        ],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)


def start_cluster(directory: Path) -> tuple[Cluster, Process]:
    """Starts etcd and kube-apiserver in directory; returns the cluster and the etcd process."""
    ensure_kube_binaries()
    pki = make_pki(directory / "pki")
    etcd, etcd_url = start_etcd(directory)
    port = free_port()
    argv = [
        str(KUBE_APISERVER),
        "--etcd-servers", etcd_url,
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(port),
        "--tls-cert-file", str(pki.serving_cert), "--tls-private-key-file", str(pki.serving_key),
        "--client-ca-file", str(pki.ca_cert),
        # Node authorization is only for kubelets, none run here: RBAC alone decides every request.
        "--authorization-mode", "RBAC",
        # On by default since v1.25; named so the restricted-namespace tests never depend on a default.
        "--enable-admission-plugins", "PodSecurity",
        "--service-account-issuer", SERVICE_ACCOUNT_ISSUER,
        "--service-account-key-file", str(pki.service_account_pub),
        "--service-account-signing-key-file", str(pki.service_account_key),
        "--api-audiences", SERVICE_ACCOUNT_ISSUER,
        "--service-cluster-ip-range", "10.96.0.0/24",
        # The "kubernetes" Service cannot point at a loopback address: leave its endpoints alone.
        "--endpoint-reconciler-type", "none",
        "--cert-dir", str(directory / "apiserver-certs"),
        "--profiling=false", "--v", "1",
    ]  # fmt: skip
    apiserver = Process("kube-apiserver", argv, directory / "kube-apiserver.log")
    server = f"https://127.0.0.1:{port}"
    kubeconfig = directory / "admin.kubeconfig"
    write_kubeconfig(
        kubeconfig, server, pki.ca_cert,
        {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{server}/readyz", context=context, timeout=5) as response:
                return response.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    try:
        wait_until("/readyz", apiserver, ready)
    except BaseException:
        etcd.stop()
        raise
    return Cluster(server, pki.ca_cert, kubeconfig, apiserver, directory, pki), etcd


def start_controller_manager(cluster: Cluster) -> Process:
    """kube-controller-manager on loopback with the admin kubeconfig, running CONTROLLERS only.

    Ready once the ServiceAccount controller has given the "default" namespace its "default"
    ServiceAccount: proof that the controllers run, not only that the process answers /healthz."""
    pki, directory = cluster.pki, cluster.directory
    kubeconfig = str(cluster.admin_kubeconfig)
    argv = [
        str(KUBE_CONTROLLER_MANAGER),
        "--kubeconfig", kubeconfig,
        "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
        "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
        "--tls-cert-file", str(pki.serving_cert), "--tls-private-key-file", str(pki.serving_key),
        "--controllers", ",".join(CONTROLLERS),
        # Signs the legacy token Secrets (serviceaccount-token-controller) with kube-apiserver's key.
        "--service-account-private-key-file", str(pki.service_account_key),
        "--root-ca-file", str(pki.ca_cert),
        "--leader-elect=false", "--profiling=false", "--v", "1",
    ]  # fmt: skip
    manager = Process("kube-controller-manager", argv, directory / "kube-controller-manager.log")
    core = client.CoreV1Api(cluster.admin_client())

    def default_service_account_exists() -> bool:
        try:
            return bool(
                core.list_namespaced_service_account("default", field_selector="metadata.name=default").items
            )
        except client.ApiException:
            return False

    wait_until("the default ServiceAccount", manager, default_service_account_exists, timeout=60)
    return manager


# --- API helpers ----------------------------------------------------------------------------


def wait_for(what: str, probe, timeout: float = 60, interval: float = 0.2):
    """Polls probe() until it returns something truthy, and returns that; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def settle_empty(probe, timeout: float = 60, interval: float = 0.2) -> list:
    """Polls probe() until it returns an empty list or the time is up; returns its last answer, so
    `assert settle_empty(...) == []` names what is left."""
    deadline = time.monotonic() + timeout
    while (found := probe()) and time.monotonic() < deadline:
        time.sleep(interval)
    return found


def create_namespace(api: client.ApiClient, prefix: str, labels: dict[str, str] | None = None) -> str:
    """A fresh namespace, returned once the ServiceAccount controller has made its "default"
    ServiceAccount (Pod admission needs it)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    wait_for(
        f"the default ServiceAccount of {name}",
        lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
    )
    return name


def request_token(api: client.ApiClient, namespace: str, service_account: str, seconds: int = 3600) -> str:
    """Mints a ServiceAccount token through the TokenRequest API (no token Secrets exist here)."""
    spec = client.V1TokenRequestSpec(audiences=[SERVICE_ACCOUNT_ISSUER], expiration_seconds=seconds)
    answer = client.CoreV1Api(api).create_namespaced_service_account_token(
        service_account, namespace, client.AuthenticationV1TokenRequest(spec=spec)
    )
    return answer.status.token


def strict_dry_run_create(dynamic: DynamicClient, manifest: dict, namespace: str | None = None) -> None:
    """POST with dryRun=All and fieldValidation=Strict: the API server's full verdict on creating the
    object (schema, unknown and duplicate fields, defaulting, admission) without storing it.

    Raises kubernetes.client.ApiException with the server's Status when the object is refused.
    """
    resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    if resource.namespaced:
        namespace = manifest["metadata"].get("namespace") or namespace or "default"
        manifest = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
    path = resource.path(namespace=namespace if resource.namespaced else None)
    api = dynamic.client
    method, url, headers, body, post = api.param_serialize(
        "POST", path, query_params=[("dryRun", "All"), ("fieldValidation", "Strict")], body=manifest,
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        auth_settings=["BearerToken"],
    )  # fmt: skip
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post)
    response.read()
    if not 200 <= response.status < 300:
        raise client.ApiException(http_resp=response)


# --- upstream CRDs --------------------------------------------------------------------------

PROMETHEUS_OPERATOR_CRDS = tuple(
    f"monitoring.coreos.com_{plural}.yaml" for plural in ("servicemonitors", "podmonitors", "prometheusrules")
)


def pinned_module_version(variable: str) -> str:
    """A module version pinned in ci/install-tools.sh (the one place versions are written down)."""
    for line in (REPO / "ci" / "install-tools.sh").read_text().splitlines():
        if line.startswith(f"{variable}="):
            return line.split("=", 1)[1].strip()
    raise LookupError(f"{variable} is not pinned in ci/install-tools.sh")


def _module_dir(module: str, version: str) -> Path:
    """The module's directory in the Go module cache, downloaded when absent."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        check=True, capture_output=True, text=True, env={**os.environ, "GOFLAGS": "-mod=mod"},
    )  # fmt: skip
    return Path(json.loads(out.stdout)["Dir"])


def kserve_module_dir() -> Path:
    """The kserve Go module at the pinned version: CRDs, webhook manifests, default ConfigMap."""
    return _module_dir("github.com/kserve/kserve", pinned_module_version("KSERVE_MODULE_VERSION"))


def kustomization_files(directory: Path) -> list[Path]:
    """The YAML files a kustomization lists, following nested kustomization directories."""
    listed = yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
    files = []
    for entry in listed:
        path = (directory / entry).resolve()
        files += kustomization_files(path) if path.is_dir() else [path]
    return files


def upstream_crd_files() -> list[Path]:
    """Every CRD of KServe's own install (config/crd/full) plus the prometheus-operator ones."""
    operator = _module_dir(
        "github.com/prometheus-operator/prometheus-operator",
        pinned_module_version("PROMETHEUS_OPERATOR_VERSION"),
    )
    return kustomization_files(kserve_module_dir() / "config" / "crd" / "full") + [
        operator / "example/prometheus-operator-crd" / name for name in PROMETHEUS_OPERATOR_CRDS
    ]


def spark_operator_crd_files() -> list[Path]:
    """The Spark operator's SparkApplication and ScheduledSparkApplication CRDs, from its Go module."""
    module = _module_dir(
        "github.com/kubeflow/spark-operator/v2", pinned_module_version("SPARK_OPERATOR_VERSION")
    )
    bases = module / "config" / "crd" / "bases"
    return [
        bases / f"sparkoperator.k8s.io_{plural}.yaml"
        for plural in ("sparkapplications", "scheduledsparkapplications")
    ]


def install_crds(dynamic: DynamicClient, files: list[Path], timeout: float = 60) -> list[str]:
    """Creates the CRDs and waits until the API server reports each Established; returns their names."""
    crds = dynamic.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    names = []
    for path in files:
        manifest = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)  # 2 MB of YAML: use libyaml
        crds.create(body=manifest)
        names.append(manifest["metadata"]["name"])
    deadline = time.monotonic() + timeout
    for name in names:
        while not crd_established(crds.get(name=name).to_dict()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout:.0f}s")
            time.sleep(0.2)
    # The dynamic client caches discovery: forget it so the new kinds resolve.
    dynamic.resources.invalidate_cache()
    return names


def crd_established(crd: dict) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def status_message(error: client.ApiException) -> str:
    """The message of the Status object the API server answered with."""
    return json.loads(error.body)["message"]


def request_status(api: client.ApiClient, method: str, path: str, body: dict | None = None, **query) -> int:
    """HTTP status of one raw API request (any verb, any subresource) made with api's credential."""
    content = "application/merge-patch+json" if method == "PATCH" else "application/json"
    method, url, headers, body, post = api.param_serialize(
        method, path, query_params=list(query.items()), body=body,
        header_params={"Content-Type": content, "Accept": "application/json"}, auth_settings=["BearerToken"],
    )  # fmt: skip
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post)
    response.read()
    return response.status
