"""The harness's control plane is the real thing: TLS, client-certificate admin, TokenRequest
tokens for ServiceAccounts, and RBAC deciding what those tokens may do."""

import pytest
from kube_harness import request_token, status_message
from kubernetes import client
from kubernetes.client import ApiException


def job_reader_role(namespace: str) -> tuple[client.V1Role, client.V1RoleBinding]:
    role = client.V1Role(
        metadata=client.V1ObjectMeta(name="job-reader", namespace=namespace),
        rules=[client.V1PolicyRule(api_groups=["batch"], resources=["jobs"], verbs=["get", "list"])],
    )
    binding = client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="job-reader", namespace=namespace),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="job-reader"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
    )
    return role, binding


def test_admin_is_cluster_admin_through_its_client_certificate(admin):
    review = client.AuthenticationV1Api(admin).create_self_subject_review(client.V1SelfSubjectReview())
    assert review.status.user_info.username == "admin"
    assert "system:masters" in review.status.user_info.groups
    assert client.VersionApi(admin).get_code().git_version.startswith("v1.")


def test_token_request_token_is_authenticated_and_bound_by_rbac(cluster, admin, namespace):
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    role, binding = job_reader_role(namespace)
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(namespace, binding)

    as_reader = cluster.token_client(request_token(admin, namespace, "reader"))
    who = client.AuthenticationV1Api(as_reader).create_self_subject_review(client.V1SelfSubjectReview())
    assert who.status.user_info.username == f"system:serviceaccount:{namespace}:reader"

    batch = client.BatchV1Api(as_reader)
    assert batch.list_namespaced_job(namespace).items == []
    with pytest.raises(ApiException) as refused:
        batch.list_namespaced_job("default")
    assert refused.value.status == 403
    assert 'cannot list resource "jobs"' in status_message(refused.value)
    with pytest.raises(ApiException) as refused:
        batch.delete_collection_namespaced_job(namespace)
    assert refused.value.status == 403


def test_invalid_token_is_unauthorized(cluster):
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(cluster.token_client("not-a-token")).list_namespace()
    assert refused.value.status == 401
