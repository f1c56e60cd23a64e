"""The Kubernetes provider through the real kubernetes client, against the API server double over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from cloudctl.compute.providers.base import QuotaLimits, QuotaUsage, ServerSpec
from cloudctl.compute.providers.kubernetes import KubernetesProvider, namespace_name
from cloudctl.core.errors import Conflict, InvalidInput, NotFound, ProviderError
from tests.support.k8s_apiserver import KubeApiServerDouble, Node

TOKEN = "gov-k8s-cloudctl-token"
NODES = [Node(f"gov-k8s-worker-{i}", cpu="31500m", memory="126Gi", capacity_cpu="32") for i in (1, 2, 3)]
CODE, NAME, NS = "990100-D01", "市公安局", "unit-990100-d01"


@pytest.fixture
def server() -> Iterator[KubeApiServerDouble]:
    with KubeApiServerDouble(nodes=NODES, token=TOKEN) as server:
        yield server


@pytest.fixture
def kubeconfig(server: KubeApiServerDouble, tmp_path: Path) -> str:
    return str(server.write_kubeconfig(tmp_path / "kubeconfig", context="gov-k8s"))


@pytest.fixture
def provider(kubeconfig: str) -> Iterator[KubernetesProvider]:
    provider = KubernetesProvider.from_kubeconfig("gov-k8s", kubeconfig)
    yield provider
    provider.close()


def _quota_by_hand(provider: KubernetesProvider, namespace: str, hard: dict[str, str], *,
                   labels: dict[str, str] | None = None) -> None:
    """A quota the platform team wrote with kubectl, not cloudctl."""
    provider.core.create_namespaced_resource_quota(namespace, k8s.V1ResourceQuota(
        metadata=k8s.V1ObjectMeta(name="cloudctl-quota", labels=labels), spec=k8s.V1ResourceQuotaSpec(hard=hard)))


# ------------------------------------------------------------------ namespaces


def test_a_container_cloud_offers_no_flavors(provider: KubernetesProvider) -> None:
    assert provider.kind == "kubernetes"
    assert provider.list_flavors() == []


@pytest.mark.parametrize(("code", "expected"), [
    ("990100-D01", "unit-990100-d01"), ("3301_02.A", "unit-3301-02-a"), ("330100", "unit-330100")])
def test_namespace_name_is_an_rfc1123_label(code: str, expected: str) -> None:
    assert namespace_name(code) == expected


@pytest.mark.parametrize("code", ["___", "A" * 60])
def test_codes_without_a_namespace_name_are_refused(code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        namespace_name(code)
    assert caught.value.field == "unit_code"


def test_ensure_project_creates_namespace_and_limit_range(provider: KubernetesProvider,
                                                          server: KubeApiServerDouble) -> None:
    assert provider.ensure_project(CODE, NAME) == NS

    namespace = server.get("namespaces", NS)
    assert namespace is not None
    assert namespace["metadata"]["labels"]["cloudctl.io/unit"] == CODE
    assert namespace["metadata"]["annotations"]["cloudctl.io/unit-name"] == NAME
    limit_range = server.get("limitranges", "cloudctl-defaults", NS)
    assert limit_range is not None
    [item] = limit_range["spec"]["limits"]
    assert item["type"] == "Container"
    assert item["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}
    assert item["default"] == {"cpu": "500m", "memory": "512Mi"}


def test_ensure_project_is_idempotent(provider: KubernetesProvider, server: KubeApiServerDouble) -> None:
    provider.ensure_project(CODE, NAME)
    before = server.get("namespaces", NS)

    assert provider.ensure_project(CODE, NAME) == NS
    assert server.get("namespaces", NS) == before
    assert [path for method, path in server.requests if method == "POST"] == [
        "/api/v1/namespaces", f"/api/v1/namespaces/{NS}/limitranges"] * 2  # both answered 409 the second time


def test_two_codes_never_share_a_namespace(provider: KubernetesProvider) -> None:
    provider.ensure_project(CODE, NAME)

    with pytest.raises(Conflict) as caught:
        provider.ensure_project("990100-d01", "另一个单位")
    assert caught.value.field == "unit_code"
    assert CODE in caught.value.detail


def test_invalid_answer_surfaces_as_invalid_input(provider: KubernetesProvider) -> None:
    # "990100-" passes cloudctl's code pattern; the API server refuses it as a label value (422 Invalid).
    with pytest.raises(InvalidInput) as caught:
        provider.ensure_project("990100-", "市某局")
    assert caught.value.field == "request"
    assert "(Invalid)" in caught.value.detail
    assert 'Namespace "unit-990100" is invalid: metadata.labels' in caught.value.detail


# ------------------------------------------------------------------ quotas


def test_missing_quota_reads_as_unlimited_and_unused(provider: KubernetesProvider) -> None:
    project = provider.ensure_project(CODE, NAME)

    assert provider.get_quota(project) == (QuotaLimits(), QuotaUsage())


def test_quota_of_a_missing_namespace_is_not_found(provider: KubernetesProvider) -> None:
    with pytest.raises(NotFound) as caught:
        provider.get_quota("unit-nowhere")
    assert 'namespaces "unit-nowhere" not found' in caught.value.detail


def test_set_then_get_round_trips_limits(provider: KubernetesProvider, server: KubeApiServerDouble) -> None:
    project = provider.ensure_project(CODE, NAME)
    limits = QuotaLimits(vcpus=16, ram_mb=32768, disk_gb=500, instances=40)

    provider.set_quota(project, limits)

    assert provider.get_quota(project) == (limits, QuotaUsage())
    quota = server.get("resourcequotas", "cloudctl-quota", project)
    assert quota is not None
    assert quota["spec"]["hard"] == {"requests.cpu": "16", "limits.cpu": "32", "requests.memory": "32768Mi",
                                     "limits.memory": "32768Mi", "pods": "40", "requests.storage": "500Gi"}
    assert quota["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "cloudctl"}


def test_set_quota_replaces_and_unsets(provider: KubernetesProvider, server: KubeApiServerDouble) -> None:
    project = provider.ensure_project(CODE, NAME)
    provider.set_quota(project, QuotaLimits(vcpus=16, ram_mb=32768, disk_gb=500, instances=40))

    provider.set_quota(project, QuotaLimits(vcpus=24, ram_mb=49152))

    assert provider.get_quota(project)[0] == QuotaLimits(vcpus=24, ram_mb=49152)
    assert [method for method, _ in server.requests].count("PUT") == 1


@pytest.mark.parametrize(("hard", "expected"), [
    ({"requests.cpu": "500m", "requests.memory": "512Mi"}, QuotaLimits(vcpus=1, ram_mb=512)),
    ({"requests.cpu": "2", "requests.memory": "4Gi", "pods": "10"}, QuotaLimits(vcpus=2, ram_mb=4096, instances=10)),
    ({"cpu": "1500m", "memory": "1G", "requests.storage": "1Ti"}, QuotaLimits(vcpus=2, ram_mb=954, disk_gb=1024)),
])
def test_quantities_round_up_to_cores_and_mib(provider: KubernetesProvider, hard: dict[str, str],
                                              expected: QuotaLimits) -> None:
    project = provider.ensure_project(CODE, NAME)
    _quota_by_hand(provider, project, hard)

    assert provider.get_quota(project)[0] == expected


def test_usage_comes_from_status_used(provider: KubernetesProvider, server: KubeApiServerDouble) -> None:
    project = provider.ensure_project(CODE, NAME)
    provider.set_quota(project, QuotaLimits(vcpus=16, ram_mb=32768, disk_gb=500, instances=40))

    server.set_usage(project, {"requests.cpu": "2500m", "requests.memory": "6Gi", "pods": "5",
                               "requests.storage": "120Gi"})

    assert provider.get_quota(project)[1] == QuotaUsage(vcpus=3, ram_mb=6144, disk_gb=120, instances=5)


@pytest.mark.parametrize(("limits", "field", "resource"), [
    (QuotaLimits(vcpus=4, ram_mb=32768, instances=40), "vcpus", "requests.cpu"),
    (QuotaLimits(vcpus=16, ram_mb=4096, instances=40), "ram_mb", "requests.memory"),
    (QuotaLimits(vcpus=16, ram_mb=32768, instances=3), "instances", "pods"),
])
def test_a_limit_below_usage_is_refused(provider: KubernetesProvider, server: KubeApiServerDouble,
                                        limits: QuotaLimits, field: str, resource: str) -> None:
    project = provider.ensure_project(CODE, NAME)
    provider.set_quota(project, QuotaLimits(vcpus=16, ram_mb=32768, instances=40))
    server.set_usage(project, {"requests.cpu": "4500m", "requests.memory": "6Gi", "pods": "5"})

    with pytest.raises(Conflict) as caught:
        provider.set_quota(project, limits)

    assert caught.value.field == field
    assert resource in caught.value.detail
    assert provider.get_quota(project)[0] == QuotaLimits(vcpus=16, ram_mb=32768, instances=40)


def test_a_limit_at_usage_is_taken_and_unmanaged_keys_are_kept(provider: KubernetesProvider,
                                                               server: KubeApiServerDouble) -> None:
    project = provider.ensure_project(CODE, NAME)
    _quota_by_hand(provider, project, {"requests.cpu": "8", "services": "10"})
    server.set_usage(project, {"requests.cpu": "6"})

    provider.set_quota(project, QuotaLimits(vcpus=6))

    quota = server.get("resourcequotas", "cloudctl-quota", project)
    assert quota is not None
    assert quota["spec"]["hard"] == {"services": "10", "requests.cpu": "6", "limits.cpu": "12"}


def test_usage_that_moves_during_set_quota_is_a_conflict(provider: KubernetesProvider, server: KubeApiServerDouble,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    project = provider.ensure_project(CODE, NAME)
    provider.set_quota(project, QuotaLimits(vcpus=16))
    read: Callable[..., Any] = provider.core.read_namespaced_resource_quota

    def read_then_pods_start(*args: Any, **kwargs: Any) -> Any:
        quota = read(*args, **kwargs)
        server.set_usage(project, {"requests.cpu": "10"})  # the quota controller writes status: a new version
        return quota

    monkeypatch.setattr(provider.core, "read_namespaced_resource_quota", read_then_pods_start)

    with pytest.raises(Conflict) as caught:
        provider.set_quota(project, QuotaLimits(vcpus=8))
    assert "the object has been modified" in caught.value.detail
    monkeypatch.undo()
    assert provider.get_quota(project)[0].vcpus == 16


def test_a_negative_limit_is_refused_by_the_server(provider: KubernetesProvider) -> None:
    project = provider.ensure_project(CODE, NAME)

    with pytest.raises(InvalidInput) as caught:
        provider.set_quota(project, QuotaLimits(vcpus=-1))
    assert "(Invalid)" in caught.value.detail
    assert "spec.hard[requests.cpu]" in caught.value.detail


# ------------------------------------------------------------------ servers and capacity


@pytest.mark.parametrize("call", [
    lambda p: p.create_server("unit-x", ServerSpec(name="web-1", flavor="c2m4", tag="cloudctl:1")),
    lambda p: p.find_server_by_tag("unit-x", "cloudctl:1"),
    lambda p: p.get_server("abc"),
    lambda p: p.server_action("abc", "stop"),
    lambda p: p.resize_server("abc", "c4m8"),
    lambda p: p.delete_server("abc"),
])
def test_server_operations_are_refused(provider: KubernetesProvider,
                                       call: Callable[[KubernetesProvider], object]) -> None:
    with pytest.raises(InvalidInput) as caught:
        call(provider)
    assert caught.value.field == "cloud"
    assert caught.value.detail == "a Kubernetes cloud carries namespace quota, not VMs"


def test_listing_servers_finds_none(provider: KubernetesProvider) -> None:
    assert provider.list_servers() == []
    assert provider.list_servers("unit-990100-d01") == []


def test_capacity_from_allocatable_and_quota_usage(tmp_path: Path) -> None:
    cordoned = Node("gov-k8s-worker-4", cpu="31500m", memory="126Gi", unschedulable=True)
    with KubeApiServerDouble(nodes=[*NODES, cordoned]) as server:
        provider = KubernetesProvider.from_kubeconfig(None, str(server.write_kubeconfig(tmp_path / "kc")))
        first, second = provider.ensure_project(CODE, NAME), provider.ensure_project("990100-D02", "市民政局")
        provider.set_quota(first, QuotaLimits(vcpus=16, ram_mb=32768))
        provider.set_quota(second, QuotaLimits(vcpus=8, ram_mb=16384))
        server.set_usage(first, {"requests.cpu": "2500m", "requests.memory": "6Gi"})
        server.set_usage(second, {"requests.cpu": "1250m", "requests.memory": "1536Mi"})
        provider.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="team-ops")))
        _quota_by_hand(provider, "team-ops", {"requests.cpu": "64"})  # not cloudctl's: not counted
        server.set_usage("team-ops", {"requests.cpu": "40"})

        vcpus, ram = provider.capacity()
        provider.close()

    assert (vcpus.resource, vcpus.total, vcpus.reserved, vcpus.allocation_ratio, vcpus.used) == \
        ("vcpus", 94, 0, 1.0, 4)  # 3 × 31.5 cores, rounded down; 3.75 used, rounded up
    assert (ram.resource, ram.total, ram.reserved, ram.allocation_ratio, ram.used) == \
        ("ram_mb", 3 * 126 * 1024, 0, 1.0, 6144 + 1536)
    assert vcpus.headroom == 90


# ------------------------------------------------------------------ failures of the cluster itself


def test_a_stopped_server_is_a_provider_error(provider: KubernetesProvider, server: KubeApiServerDouble) -> None:
    project = provider.ensure_project(CODE, NAME)
    server.stop()

    with pytest.raises(ProviderError) as caught:
        provider.get_quota(project)
    assert caught.value.field == "cloud"
    assert "cannot reach the Kubernetes API server" in caught.value.detail


def test_a_wrong_token_is_a_provider_error(server: KubeApiServerDouble, tmp_path: Path) -> None:
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", token="expired")
    provider = KubernetesProvider.from_kubeconfig("gov-k8s", str(kubeconfig))

    with pytest.raises(ProviderError) as caught:
        provider.capacity()
    assert "401 Unauthorized" in caught.value.detail
    provider.close()


@pytest.mark.parametrize(("code", "reason"), [(403, "Forbidden"), (500, "InternalError"),
                                              (503, "ServiceUnavailable")])
def test_server_failures_are_provider_errors(provider: KubernetesProvider, server: KubeApiServerDouble,
                                             code: int, reason: str) -> None:
    server.fail_next("GET", "/api/v1/nodes", code=code, reason=reason, message="etcdserver: request timed out")

    with pytest.raises(ProviderError) as caught:
        provider.capacity()
    assert f"{code} {reason}" in caught.value.detail
    assert "etcdserver: request timed out" in caught.value.detail


def test_an_unknown_context_is_a_provider_error(kubeconfig: str) -> None:
    with pytest.raises(ProviderError) as caught:
        KubernetesProvider.from_kubeconfig("no-such-context", kubeconfig)
    assert caught.value.field == "connection"


# ------------------------------------------------------------------ the double answers as the API server does


def _failure(call: Callable[[], object]) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        call()
    return int(caught.value.status), json.loads(caught.value.body or "{}")


def test_double_refuses_what_the_api_server_refuses(provider: KubernetesProvider) -> None:
    core = provider.core
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="ns-a")))
    quota = core.create_namespaced_resource_quota("ns-a", k8s.V1ResourceQuota(
        metadata=k8s.V1ObjectMeta(name="q"), spec=k8s.V1ResourceQuotaSpec(hard={"pods": "1"})))

    code, status = _failure(lambda: core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta())))
    assert (code, status["kind"], status["status"], status["reason"]) == (422, "Status", "Failure", "Invalid")
    assert status["message"] == 'Namespace "" is invalid: metadata.name: Required value: name or generateName ' \
                                "is required"
    code, status = _failure(lambda: core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="ns-a"))))
    assert (code, status["reason"], status["message"]) == (409, "AlreadyExists", 'namespaces "ns-a" already exists')
    code, status = _failure(lambda: core.create_namespaced_limit_range("ns-gone", k8s.V1LimitRange(
        metadata=k8s.V1ObjectMeta(name="l"), spec=k8s.V1LimitRangeSpec(limits=[k8s.V1LimitRangeItem(type="Pod")]))))
    assert (code, status["reason"], status["details"]) == (404, "NotFound", {"name": "ns-gone", "kind": "namespaces"})
    code, status = _failure(lambda: core.create_namespaced_resource_quota("ns-a", k8s.V1ResourceQuota(
        metadata=k8s.V1ObjectMeta(name="bad"), spec=k8s.V1ResourceQuotaSpec(hard={"requests.cpu": "two"}))))
    assert (code, status["reason"]) == (400, "BadRequest")  # a quantity is parsed while the body is decoded
    assert "quantities must match the regular expression" in status["message"]

    core.patch_namespaced_resource_quota("q", "ns-a", {"spec": {"hard": {"pods": "2"}}})
    quota.spec = k8s.V1ResourceQuotaSpec(hard={"pods": "3"})  # written against the version read before the patch
    code, status = _failure(lambda: core.replace_namespaced_resource_quota("q", "ns-a", quota))
    assert (code, status["reason"]) == (409, "Conflict")
    assert core.read_namespaced_resource_quota("q", "ns-a").to_dict()["spec"]["hard"] == {"pods": "2"}


def test_double_lists_by_label_selector_and_deletes_namespaces(provider: KubernetesProvider,
                                                              server: KubeApiServerDouble) -> None:
    provider.ensure_project(CODE, NAME)
    provider.ensure_project("990100-D02", "市民政局")
    provider.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="team-ops")))

    def names(selector: str) -> list[str]:
        return [ns.to_dict()["metadata"]["name"] for ns in provider.core.list_namespace(label_selector=selector).items]

    assert names("cloudctl.io/unit") == [NS, "unit-990100-d02"]
    assert names("!cloudctl.io/unit") == ["team-ops"]
    assert names("cloudctl.io/unit in (990100-D02, 990100-D09)") == ["unit-990100-d02"]
    assert names(f"cloudctl.io/unit!={CODE},app.kubernetes.io/managed-by=cloudctl") == ["unit-990100-d02"]

    provider.core.delete_namespace(NS)
    assert server.get("namespaces", NS) is None
    assert server.get("limitranges", "cloudctl-defaults", NS) is None
