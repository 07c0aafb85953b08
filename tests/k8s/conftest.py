"""Fixtures of the real-Kubernetes tier: one etcd + kube-apiserver + kube-controller-manager for the
whole session, and KServe's manager with its admission webhooks once the CRDs are installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared chartlib
from kserve_harness import KServe, start_kserve
from kube_harness import (
    RESTRICTED,
    Cluster,
    create_namespace,
    ensure_kube_binaries,
    install_crds,
    start_cluster,
    start_controller_manager,
    upstream_crd_files,
)
from kubernetes import client


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, pytestconfig) -> Cluster:
    """kube-apiserver (RBAC, ServiceAccount tokens, TLS, Pod Security) and etcd on loopback, with
    kube-controller-manager reconciling; all stopped after the session."""
    # A cold build takes minutes: let its progress reach the terminal instead of pytest's capture.
    with pytestconfig.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        ensure_kube_binaries()
    directory = tmp_path_factory.mktemp("kube")
    started, etcd = start_cluster(directory)
    try:
        controller_manager = start_controller_manager(started)
    except BaseException:
        started.apiserver.stop()
        etcd.stop()
        raise
    yield started
    controller_manager.stop()
    started.apiserver.stop()
    etcd.stop()


@pytest.fixture(scope="session")
def admin(cluster) -> client.ApiClient:
    return cluster.admin_client()


@pytest.fixture
def namespace(admin) -> str:
    """A fresh namespace per test with Pod Security `restricted` enforced, deleted afterwards (the
    namespace controller removes what is left in it)."""
    name = create_namespace(admin, "t", RESTRICTED)
    yield name
    client.CoreV1Api(admin).delete_namespace(name)


@pytest.fixture(scope="session")
def _kserve_stack(cluster) -> tuple[list[str], KServe]:
    # The manager looks the CRDs up once at start (ClusterServingRuntime webhook, Knative, ...):
    # install them first.
    names = install_crds(cluster.dynamic_admin(), upstream_crd_files())
    kserve = start_kserve(cluster)
    yield names, kserve
    kserve.stop()


@pytest.fixture(scope="session")
def crds(_kserve_stack) -> list[str]:
    """The upstream KServe and prometheus-operator CRDs from the pinned Go modules, Established, and
    KServe's manager admitting and reconciling the KServe kinds (every InferenceService a test creates
    goes through KServe's own webhooks)."""
    return _kserve_stack[0]


@pytest.fixture(scope="session")
def kserve(_kserve_stack) -> KServe:
    return _kserve_stack[1]
