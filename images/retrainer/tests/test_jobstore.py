"""The error translation of KubeJobStore and the exit codes of Kubernetes failures.

The client's ApiException objects are built the way the client builds them from an API server
answer (status, reason, Status JSON body); the API server itself is exercised in tests/k8s."""

from __future__ import annotations

import json

import pytest
from helpers import InMemoryJobStore, make_settings, obs
from kubernetes.client.exceptions import ApiException
from retrain_controller.cli import main
from retrain_controller.controller import EXIT_FORBIDDEN, EventLog, one_pass_exit_code, run_pass
from retrain_controller.jobstore import (
    AlreadyExistsError,
    ForbiddenError,
    JobStoreError,
    KubeJobStore,
    load_kube_client_config,
    translate_error,
)
from retrain_controller.prometheus import build_queries


def api_exception(status: int, reason: str, message: str) -> ApiException:
    err = ApiException(status=status, reason=reason)
    err.body = json.dumps(
        {"kind": "Status", "status": "Failure", "message": message, "reason": reason, "code": status}
    )
    return err


def test_forbidden_names_verb_resource_and_namespace():
    message = (
        'jobs.batch is forbidden: User "system:serviceaccount:models:retrainer" cannot create resource "jobs"'
    )
    err = translate_error(api_exception(403, "Forbidden", message), "create", "training")
    assert isinstance(err, ForbiddenError)
    assert (err.verb, err.resource, err.namespace) == ("create", "jobs.batch", "training")
    assert str(err).startswith("forbidden: cannot create jobs.batch in namespace 'training'")
    assert message in str(err)


def test_conflict_on_create_is_already_exists():
    err = translate_error(
        api_exception(409, "AlreadyExists", 'jobs.batch "retrain-m-1" already exists'), "create", "t"
    )
    assert isinstance(err, AlreadyExistsError)


def test_other_answers_are_plain_kubernetes_errors():
    err = translate_error(
        api_exception(422, "Invalid", "spec.template.spec.containers[0].image: Required"), "create", "t"
    )
    assert type(err) is JobStoreError
    assert "422 Invalid" in str(err) and "image: Required" in str(err)


def test_transport_errors_say_unreachable():
    err = translate_error(ConnectionRefusedError("Connection refused"), "list", "t")
    assert type(err) is JobStoreError
    assert "unreachable" in str(err)


class _Source:
    """Observations without Prometheus, for the Kubernetes failure paths only."""

    def __init__(self, settings, observations):
        self.settings, self.observations = settings, observations
        self.ignored_series = 0

    def observe(self, at):
        return self.observations, build_queries(self.settings)


def test_forbidden_on_list_exits_3_before_any_create(capsys):
    import sys

    settings = make_settings()
    store = InMemoryJobStore()

    def refuse(namespace, selector):
        raise ForbiddenError("list", "jobs.batch", namespace, "denied")

    store.list_jobs = refuse
    log = EventLog(sys.stdout)
    code = one_pass_exit_code(
        lambda: run_pass(
            settings, _Source(settings, [obs("m", 0.9)]), store, now=1e9, dry_run=False, log=log
        ),
        log,
        sys.stderr,
    )
    assert code == EXIT_FORBIDDEN
    assert store.created == []
    assert "cannot list jobs.batch in namespace 'training'" in capsys.readouterr().err


def test_kubeconfig_pointing_at_a_closed_port_exits_4(tmp_path, prometheus, monkeypatch, capsys):
    """The real client against a real (closed) socket: the transport error becomes exit 4."""
    from conftest import free_port

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:{free_port()}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    code = main(
        [
            "check",
            "--job-image",
            "x:1",
            "--prometheus-url",
            prometheus.url,
            "--at",
            str(prometheus.at),
            "--kubeconfig",
            str(kubeconfig),
            "--training-namespace",
            "training",
        ]
    )
    assert code == 4
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(
        "retrain-controller: kubernetes: kubernetes API unreachable while trying to list jobs.batch"
    )


def test_store_builds_from_a_kubeconfig(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://10.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: x}}]\n"
    )
    configuration = load_kube_client_config(str(kubeconfig))
    assert configuration.host == "https://10.0.0.1:6443"
    assert isinstance(KubeJobStore(configuration), KubeJobStore)


@pytest.mark.parametrize("missing", ["/nonexistent/kubeconfig"])
def test_no_kubeconfig_is_a_store_error(missing):
    with pytest.raises(JobStoreError, match="no Kubernetes configuration"):
        load_kube_client_config(missing)
