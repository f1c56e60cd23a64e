"""A Kubernetes cloud through the compute service: quotas pushed to and synced from the cluster.

The provider registry builds the real adapter from the cloud's kubeconfig context, and the
real kubernetes client talks over HTTP to the API-server double in the test tree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning, service, volumes
from cloudctl.compute.models import CloudKind
from cloudctl.compute.schemas import CloudCreate, QuotaSet, RequestCreate
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.errors import Conflict, InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.reclaim import service as reclaim
from tests.factories import ADMIN, MiniCity, build_mini_city
from tests.support.k8s_apiserver import KubeApiServerDouble, Node

NAMESPACE = "unit-990100-d01"


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[KubeApiServerDouble]:
    with KubeApiServerDouble(nodes=[Node(f"worker-{i}", cpu="31500m", memory="126Gi") for i in (1, 2)]) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", context="gov-k8s")
        reset_settings(settings.model_copy(update={"kubeconfig": kubeconfig}))
        yield server


@pytest.fixture
def city(session: Session, cluster: KubeApiServerDouble) -> MiniCity:
    city = build_mini_city(session)
    service.create_cloud(session, ADMIN, CloudCreate(name="container-cloud", display_name="政务容器云",
                                                     kind=CloudKind.KUBERNETES, connection="gov-k8s",
                                                     cpu_allocation_ratio=1.0))
    return city


def test_setting_a_quota_creates_the_namespace_and_pushes_the_limits(session: Session, city: MiniCity,
                                                                    cluster: KubeApiServerDouble) -> None:
    quota = service.set_quota(session, ADMIN, "990100-D01", "container-cloud",
                              QuotaSet(vcpus=16, ram_gib=32, instances=40))
    assert (quota.limit_vcpus, quota.limit_ram_mb, quota.limit_instances) == (16, 32768, 40)
    hard = cluster.get("resourcequotas", "cloudctl-quota", NAMESPACE)["spec"]["hard"]
    assert hard["requests.cpu"] == "16"
    assert hard["requests.memory"] == "32768Mi"
    assert hard["pods"] == "40"
    assert cluster.get("limitranges", "cloudctl-defaults", NAMESPACE) is not None


def test_sync_reads_usage_from_the_quota_status(session: Session, city: MiniCity,
                                                cluster: KubeApiServerDouble) -> None:
    service.set_quota(session, ADMIN, "990100-D01", "container-cloud", QuotaSet(vcpus=16, ram_gib=32, instances=40))
    cluster.set_usage(NAMESPACE, {"requests.cpu": "5500m", "requests.memory": "12Gi", "pods": "11"})
    quota = service.sync_quota(session, ADMIN, "990100-D01", "container-cloud")
    assert (quota.used_vcpus, quota.used_ram_mb, quota.used_instances) == (6, 12288, 11)  # 5.5 cores round up
    # Below what the namespace uses: refused, by cloudctl and by the adapter, never forced.
    with pytest.raises(Conflict):
        service.set_quota(session, ADMIN, "990100-D01", "container-cloud", QuotaSet(vcpus=4))


def test_capacity_is_node_allocatable(session: Session, city: MiniCity) -> None:
    service.set_quota(session, ADMIN, "990100-D01", "container-cloud", QuotaSet(vcpus=16, ram_gib=32))
    rows = {row.resource: row for row in service.capacity(session, ADMIN, "container-cloud")}
    assert rows["vcpus"].capacity == 63  # 2 × 31.5 allocatable cores, whole cores only
    assert rows["vcpus"].allocated == 16
    assert rows["ram"].capacity == 2 * 126


def test_a_container_cloud_takes_quota_requests_not_vms(session: Session, city: MiniCity) -> None:
    service.set_quota(session, ADMIN, "990100-D01", "container-cloud", QuotaSet(vcpus=16, ram_gib=32, instances=40))
    vm = RequestCreate.model_validate({"business_system": city.systems["own"], "cloud": "container-cloud",
                                       "justification": "容器化改造", "items": [{"flavor": "c4m8", "count": 1}]})
    with pytest.raises(InvalidInput) as caught:
        provisioning.submit_request(session, city.principals["dept"], vm)
    assert caught.value.field == "items.0.kind"
    more = RequestCreate.model_validate({"business_system": city.systems["own"], "cloud": "container-cloud",
                                         "justification": "容器化改造，扩容命名空间",
                                         "items": [{"kind": "quota", "vcpus": 8, "ram_gib": 16, "instances": 20}]})
    request = provisioning.submit_request(session, city.principals["dept"], more)
    provisioning.approve_request(session, city.principals["dept_leader"], request.id)  # more quota: leader first
    provisioning.approve_request(session, city.principals["ops"], request.id)
    quota = service.get_quota(session, ADMIN, "990100-D01", "container-cloud")
    assert (quota.limit_vcpus, quota.limit_ram_mb, quota.limit_instances) == (24, 49152, 60)


def _post(cluster: KubeApiServerDouble, path: str, body: dict[str, object]) -> None:
    code, answer = cluster.handle("POST", path, {"Content-Type": "application/json"}, json.dumps(body).encode())
    assert code == 201, answer


def test_claims_are_synced_as_volumes_with_the_storage_class_as_type(session: Session, city: MiniCity,
                                                                    cluster: KubeApiServerDouble) -> None:
    service.set_quota(session, ADMIN, "990100-D01", "container-cloud", QuotaSet(vcpus=16, ram_gib=32))
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pg-data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ceph-rbd",
                      "resources": {"requests": {"storage": "20Gi"}}}}
    _post(cluster, f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims", claim)
    cluster.bind_claim(NAMESPACE, "pg-data", "21Gi")
    pending = {**claim, "metadata": {"name": "logs"},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1500Mi"}}}}
    _post(cluster, f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims", pending)
    # A namespace cloudctl does not manage (the cluster's own) is not read.
    _post(cluster, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}})
    _post(cluster, "/api/v1/namespaces/monitoring/persistentvolumeclaims", {**claim, "metadata": {"name": "tsdb"}})
    counts = volumes.sync_volumes(session, ADMIN, "container-cloud")
    assert (counts["volumes"], counts["orphans"], counts["snapshots"]) == (2, 0, 0)
    found, total = volumes.list_volumes(session, city.principals["dept"], cloud="container-cloud")
    assert total == 2
    assert sorted((v.name, v.volume_type, v.size_gib, v.status, v.unit_code) for v in found) == [
        ("logs", "(default)", 2, "pending", "990100-D01"),  # 1500 MiB asked: whole GiB, rounded up
        ("pg-data", "ceph-rbd", 21, "bound", "990100-D01")]
    # Inventory only: nothing is made, attached or reclaimed through cloudctl there.
    with pytest.raises(InvalidInput) as caught:
        volumes.volume_types(session, ADMIN, service.get_cloud(session, ADMIN, "container-cloud"))
    assert caught.value.field == "cloud"
    assert "inventory" in str(caught.value)
    # Unattached for months (pods are no servers), yet no reclaim finding: it could not be executed there.
    for volume in found:
        volume.detached_since = utcnow() - timedelta(days=200)
    session.flush()
    assert reclaim.analyze(session, ADMIN).counts.get("volumes_created", 0) == 0
    # A claim deleted on the cluster is marked deleted at the next sync.
    code, _ = cluster.handle("DELETE", f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/logs", {}, b"")
    assert code == 200
    assert volumes.sync_volumes(session, ADMIN, "container-cloud")["gone"] == 1
