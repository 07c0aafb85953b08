"""Fixtures of the real-Kubernetes-API tier: one etcd + kube-apiserver for the whole session."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared chartlib
from kube_harness import Cluster, ensure_kube_apiserver, install_crds, start_cluster, upstream_crd_files
from kubernetes import client


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, pytestconfig) -> Cluster:
    """kube-apiserver (RBAC, ServiceAccount tokens, TLS) and etcd on loopback, stopped after the session."""
    # A cold build takes minutes: let its progress reach the terminal instead of pytest's capture.
    with pytestconfig.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        ensure_kube_apiserver()
    directory = tmp_path_factory.mktemp("kube")
    started, etcd = start_cluster(directory)
    yield started
    started.apiserver.stop()
    etcd.stop()


@pytest.fixture(scope="session")
def admin(cluster) -> client.ApiClient:
    return cluster.admin_client()


@pytest.fixture
def namespace(admin) -> str:
    """A fresh namespace per test. Nothing deletes namespaces here (no namespace controller runs),
    so each test gets its own instead of cleaning up. Its "default" ServiceAccount is created here,
    as kube-controller-manager would: Pod admission requires the ServiceAccount to exist."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_service_account(
        name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
    )
    return name


@pytest.fixture(scope="session")
def crds(cluster) -> list[str]:
    """The upstream KServe and prometheus-operator CRDs from the pinned Go modules, Established."""
    return install_crds(cluster.dynamic_admin(), upstream_crd_files())
