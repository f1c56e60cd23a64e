"""Resource requests from submission to ACTIVE VMs: validation, approval, quota, idempotent provisioning."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning, service
from cloudctl.compute.models import ItemStatus, Quota, RequestStatus, ResourceRequest, Server
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.base import ServerSpec
from cloudctl.compute.providers.simulator import SimulatorProvider
from cloudctl.compute.schemas import QuotaSet, RequestCreate
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from cloudctl.core.jobs import Job, JobRunner, JobStatus
from cloudctl.org.models import User
from cloudctl.org.service import principal_for_user
from tests.factories import ADMIN, MiniCity, build_mini_city


def ask(city: MiniCity, flavor: str = "c4m8", count: int = 1, cloud: str = "test-cloud",
        system: str = "own") -> RequestCreate:
    return RequestCreate.model_validate({"business_system": city.systems[system], "cloud": cloud,
                                         "justification": "新系统上线，需要应用服务器",
                                         "items": [{"flavor": flavor, "count": count}]})


@pytest.fixture
def city(session: Session) -> MiniCity:
    return build_mini_city(session, with_cloud=True)  # quotas: 32 vCPU, 64 GB, 8 instances per department


def test_small_request_within_quota_is_approved_at_once(session: Session, city: MiniCity) -> None:
    request = provisioning.submit_request(session, city.principals["dept"], ask(city, count=2))
    assert request.status is RequestStatus.APPROVED
    assert request.auto_approved
    assert request.decided_by == "system:auto-approval"
    assert request.items[0].status is ItemStatus.RESERVED
    assert request.items[0].image is None  # the test cloud has no default image
    quota = service.get_quota(session, ADMIN, "990100-D01", "test-cloud")
    assert (quota.reserved_vcpus, quota.reserved_ram_mb, quota.reserved_instances) == (8, 16384, 2)
    job = session.get(Job, request.job_id)
    assert job is not None
    assert (job.kind, job.status) == ("compute.provision", JobStatus.QUEUED)


def test_large_request_waits_for_ops_and_is_refused_whole_if_it_does_not_fit(session: Session,
                                                                             city: MiniCity) -> None:
    # Filed by the department's leader: the leader's step is taken, ops' is not (20 vCPU > the auto tier).
    leader = city.principals["dept_leader"]
    big = provisioning.submit_request(session, leader, ask(city, count=5))
    assert big.status is RequestStatus.SUBMITTED
    too_big = provisioning.submit_request(session, leader, ask(city, count=9))
    with pytest.raises(Conflict) as caught, session.begin_nested():
        provisioning.approve_request(session, city.principals["ops"], too_big.id)
    assert caught.value.field in ("vcpus", "instances")
    session.refresh(too_big)
    assert too_big.status is RequestStatus.SUBMITTED  # never half-admitted
    assert service.get_quota(session, ADMIN, "990100-D01", "test-cloud").reserved_vcpus == 0
    approved = provisioning.approve_request(session, city.principals["ops"], big.id)
    assert approved.status is RequestStatus.APPROVED
    with pytest.raises(Conflict):
        provisioning.approve_request(session, city.principals["ops"], big.id)  # twice: refused


def test_bad_requests_name_the_field(session: Session, city: MiniCity) -> None:
    dept = city.principals["dept"]
    cases = [
        (ask(city, system="other"), "business_system"),  # another unit's system reads as no system
        (ask(city, flavor="c64m512"), "items.0.flavor"),
        (ask(city, cloud="nowhere"), "cloud"),
    ]
    for data, field in cases:
        with pytest.raises(InvalidInput) as caught:
            provisioning.submit_request(session, dept, data)
        assert caught.value.field == field
    with pytest.raises(PermissionDenied):
        provisioning.submit_request(session, city.principals["auditor"], ask(city))
    with pytest.raises(PermissionDenied):
        provisioning.approve_request(session, dept, 1)


def test_a_request_to_a_cloud_without_the_units_quota_is_refused_at_submission(session: Session,
                                                                             city: MiniCity) -> None:
    from tests.factories import make_cloud

    make_cloud(session, "bare-cloud")  # offers the same flavors, but 市公安局 holds no quota on it
    dept = city.principals["dept"]
    with pytest.raises(InvalidInput) as caught:
        provisioning.submit_request(session, dept, ask(city, cloud="bare-cloud"))
    assert caught.value.field == "cloud"
    assert "no quota on bare-cloud" in str(caught.value)
    assert session.scalar(select(func.count()).select_from(ResourceRequest)) == 0
    # "any" picks only among the clouds where the unit has a quota.
    anywhere = provisioning.submit_request(session, dept, ask(city, cloud="any"))
    assert anywhere.cloud_name == "test-cloud"
    # A quota increase is how a unit gets its first quota on a cloud: that one is taken.
    increase = provisioning.submit_request(session, dept, RequestCreate.model_validate({
        "business_system": city.systems["own"], "cloud": "bare-cloud", "justification": "新云上首次申请配额",
        "items": [{"kind": "quota", "vcpus": 8, "ram_gib": 16}]}))
    assert (increase.status, increase.cloud_name, increase.job_id) == (RequestStatus.AWAITING_LEADER, "bare-cloud",
                                                                       None)


def test_quota_increase_needs_the_leader_then_ops_and_raises_the_limits(session: Session, city: MiniCity) -> None:
    data = RequestCreate.model_validate({
        "business_system": city.systems["own"], "cloud": "test-cloud", "justification": "新增系统需要更多配额",
        "items": [{"kind": "quota", "vcpus": 16, "ram_gib": 32, "instances": 4}]})
    request = provisioning.submit_request(session, city.principals["dept"], data)
    assert request.status is RequestStatus.AWAITING_LEADER  # never automatic, however small: both approve
    with pytest.raises(PermissionDenied):
        provisioning.approve_request(session, city.principals["dept"], request.id)
    with pytest.raises(Conflict), session.begin_nested():
        provisioning.approve_request(session, city.principals["ops"], request.id)  # the leader comes first
    led = provisioning.approve_request(session, city.principals["dept_leader"], request.id, "同意")
    assert led.status is RequestStatus.SUBMITTED
    with pytest.raises(PermissionDenied):
        provisioning.approve_request(session, city.principals["dept_leader"], request.id)  # ops' step is not theirs
    done = provisioning.approve_request(session, city.principals["ops"], request.id, "同意扩容")
    assert done.status is RequestStatus.FULFILLED
    quota = service.get_quota(session, ADMIN, "990100-D01", "test-cloud")
    assert (quota.limit_vcpus, quota.limit_ram_mb, quota.limit_instances) == (48, 96 * 1024, 12)


@pytest.mark.parametrize(("items", "cloud"), [
    ([{"kind": "quota"}], "test-cloud"),
    ([{"kind": "quota", "vcpus": 4, "flavor": "c4m8"}], "test-cloud"),
    ([{"kind": "quota", "vcpus": 4}, {"flavor": "c4m8"}], "test-cloud"),
    ([{"kind": "vm"}], "test-cloud"),
])
def test_malformed_items_are_refused(items: list[dict[str, object]], cloud: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        RequestCreate.model_validate({"business_system": 1, "cloud": cloud, "justification": "配额申请",
                                      "items": items})


def test_any_cloud_picks_the_one_with_room(session: Session, city: MiniCity) -> None:
    request = provisioning.submit_request(session, city.principals["dept"], ask(city, cloud="any"))
    assert request.cloud_name == "test-cloud"


def test_reject_needs_a_reason_and_cancel_gives_back_the_reservation(session: Session, city: MiniCity) -> None:
    big = provisioning.submit_request(session, city.principals["dept_leader"], ask(city, count=5))
    with pytest.raises(InvalidInput) as caught:
        provisioning.reject_request(session, city.principals["ops"], big.id, None)
    assert caught.value.field == "reason"
    rejected = provisioning.reject_request(session, city.principals["ops"], big.id, "请先完成等保测评")
    assert (rejected.status, rejected.decision_reason) == (RequestStatus.REJECTED, "请先完成等保测评")
    small = provisioning.submit_request(session, city.principals["dept"], ask(city))
    provisioning.cancel_request(session, city.principals["dept"], small.id)
    assert service.get_quota(session, ADMIN, "990100-D01", "test-cloud").reserved_vcpus == 0
    other = session.scalar(select(User).where(User.username == "dept-other"))
    assert other is not None
    with pytest.raises(NotFound):
        provisioning.get_request(session, principal_for_user(other), small.id)


# ---------------------------------------------------------------- provisioning, with real commits


@pytest.fixture
def committed(fresh_url: str, fresh_engine: Engine, tmp_path: Path) -> Iterator[tuple[Engine, MiniCity]]:
    reset_settings(Settings(data_dir=tmp_path / "d", database_url=fresh_url, simulator_build_seconds=0,
                            simulator_database_url=f"sqlite:///{tmp_path / 'sim.db'}", provision_poll_seconds=0.01))
    with Session(fresh_engine) as session:
        city = build_mini_city(session, with_cloud=True)
        session.commit()
    yield fresh_engine, city
    reset_settings()
    dispose_engines()


def _submit(engine: Engine, city: MiniCity, count: int) -> int:
    with Session(engine) as session:
        request = provisioning.submit_request(session, city.principals["dept"], ask(city, count=count))
        if request.status is RequestStatus.SUBMITTED:
            provisioning.approve_request(session, city.principals["ops"], request.id)
        session.commit()
        return request.id


def _state(engine: Engine, request_id: int) -> tuple[ResourceRequest, Quota, list[Server]]:
    with Session(engine) as session:
        request = session.get(ResourceRequest, request_id)
        assert request is not None
        quota = service.get_quota(session, ADMIN, "990100-D01", "test-cloud")
        servers = list(session.scalars(select(Server).order_by(Server.id)))
        return request, quota, servers


def test_provisioning_builds_active_vms_and_turns_reservation_into_usage(committed: tuple[Engine, MiniCity]) -> None:
    engine, city = committed
    request_id = _submit(engine, city, 3)
    job = JobRunner(engine).run_once()
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED, job.error
    request, quota, servers = _state(engine, request_id)
    assert request.status is RequestStatus.FULFILLED
    assert [s.status for s in servers] == ["ACTIVE"] * 3
    assert {s.unit_code for s in servers} == {"990100-D01"}
    assert (quota.used_vcpus, quota.used_instances, quota.reserved_vcpus, quota.reserved_instances) == (12, 3, 0, 0)


def test_a_resumed_job_finds_what_it_built_and_creates_nothing_twice(committed: tuple[Engine, MiniCity]) -> None:
    engine, city = committed
    request_id = _submit(engine, city, 3)
    with Session(engine) as session:
        request = session.get(ResourceRequest, request_id)
        assert request is not None
        cloud = request.cloud
        provider = provider_for(cloud)
        project = service.ensure_project(session, request.unit, cloud, provider)
        item_id = request.items[0].id
        session.commit()
    # The first worker created VM 0 and died before recording it.
    provider.create_server(project, ServerSpec("orphaned", "c4m8", tag=provisioning.server_tag(request_id, item_id, 0)))
    JobRunner(engine).run_once()
    request, quota, servers = _state(engine, request_id)
    assert request.status is RequestStatus.FULFILLED
    assert len(provider.list_servers(project)) == 3
    assert len(servers) == 3
    assert (quota.used_instances, quota.reserved_instances) == (3, 0)


def test_a_failed_build_marks_the_item_and_releases_its_share(committed: tuple[Engine, MiniCity]) -> None:
    engine, city = committed
    request_id = _submit(engine, city, 2)
    with Session(engine) as session:
        cloud = service.get_cloud(session, ADMIN, "test-cloud")
        provider = provider_for(cloud)
        assert isinstance(provider, SimulatorProvider)
        provider.inject_fault("create_fails", message="compute node unreachable")
    JobRunner(engine).run_once()
    request, quota, _ = _state(engine, request_id)
    assert request.status is RequestStatus.PARTIALLY_FAILED
    assert request.items[0].status is ItemStatus.PARTIAL
    assert "compute node unreachable" in (request.items[0].error or "")
    assert (quota.reserved_vcpus, quota.reserved_instances) == (0, 0)


def test_concurrent_approvals_never_oversubscribe(committed: tuple[Engine, MiniCity]) -> None:
    """Twice the quota asked for in parallel: exactly what fits is approved (32 vCPU = 8 × c4m8)."""
    engine, city = committed
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def department() -> None:
        barrier.wait()
        with Session(engine) as session:
            request = provisioning.submit_request(session, city.principals["dept"], ask(city, count=1))
            session.commit()
            with lock:
                outcomes.append(request.status.value)

    threads = [threading.Thread(target=department) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("approved") == 8
    assert outcomes.count("submitted") == 8
    with Session(engine) as session:
        quota = service.get_quota(session, ADMIN, "990100-D01", "test-cloud")
        assert (quota.reserved_vcpus, quota.reserved_instances) == (32, 8)
        assert session.scalar(select(func.count(Job.id))) == 8


def test_decommission_stops_now_deletes_after_grace_and_frees_quota(committed: tuple[Engine, MiniCity]) -> None:
    from datetime import timedelta

    from cloudctl.core.models import utcnow

    engine, city = committed
    request_id = _submit(engine, city, 2)
    JobRunner(engine).run_once()
    _, _, servers = _state(engine, request_id)
    first = servers[0].id
    with Session(engine) as session:
        dept = city.principals["dept"]
        server = provisioning.decommission_server(session, dept, first, grace_days=7)
        assert server.status == "SHUTOFF"
        with pytest.raises(Conflict):
            provisioning.decommission_server(session, dept, first)
        assert provisioning.delete_due_servers(session, ADMIN) == []  # grace period not over
        provisioning.withdraw_decommission(session, dept, first)
        provisioning.decommission_server(session, dept, first, grace_days=0)
        with pytest.raises(PermissionDenied):
            provisioning.delete_due_servers(session, dept)
        deleted = provisioning.delete_due_servers(session, ADMIN, now=utcnow() + timedelta(seconds=1))
        assert [s.id for s in deleted] == [first]
        session.commit()
    _, quota, servers = _state(engine, request_id)
    assert [s.status for s in servers] == ["DELETED", "ACTIVE"]
    assert (quota.used_vcpus, quota.used_instances) == (4, 1)


def test_operating_a_server_records_what_the_cloud_says(committed: tuple[Engine, MiniCity]) -> None:
    engine, city = committed
    request_id = _submit(engine, city, 1)
    JobRunner(engine).run_once()
    _, _, servers = _state(engine, request_id)
    with Session(engine) as session:
        dept = city.principals["dept"]
        assert provisioning.operate_server(session, dept, servers[0].id, "stop").status == "SHUTOFF"
        with pytest.raises(Conflict) as caught:
            provisioning.operate_server(session, dept, servers[0].id, "stop")
        assert caught.value.field == "status"
        assert provisioning.operate_server(session, dept, servers[0].id, "start").status == "ACTIVE"
        with pytest.raises(PermissionDenied):
            provisioning.operate_server(session, city.principals["auditor"], servers[0].id, "stop")


def test_a_built_vm_claims_the_asset_already_scanned_on_its_address(committed: tuple[Engine, MiniCity]) -> None:
    from cloudctl.security.models import Asset
    from cloudctl.security.scanners.base import ScanFinding, ScanReport
    from cloudctl.security.service import findings

    engine, city = committed
    address = "10.192.0.10"  # the simulator's first fixed address: scanned while nothing held it
    with Session(engine) as session:
        findings.store_report(session, ADMIN, ScanReport(
            scanner="nessus", started_at=None, finished_at=None, hosts=(address,), file_sha256="c" * 64,
            findings=(ScanFinding(scanner="nessus", plugin_id="1", title="t", severity="high", ip=address, port=22,
                                  protocol="tcp", service="ssh"),)), scope="pre", source="pre")
        session.commit()
    _submit(engine, city, 1)
    job = JobRunner(engine).run_once()
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED, job.error
    with Session(engine) as session:
        server = session.scalars(select(Server)).one()
        asset = session.scalars(select(Asset).where(Asset.ip == address)).one()
        assert [a.ip for a in server.addresses] == [address]
        assert (asset.server_id, asset.business_system_id, asset.unit_id) == (
            server.id, city.systems["own"], server.unit_id)


def test_volumes_are_asked_for_with_vms_held_against_the_disk_quota_and_attached(
        committed: tuple[Engine, MiniCity]) -> None:
    from cloudctl.compute import volumes
    from cloudctl.compute.models import Volume

    engine, city = committed
    with Session(engine) as session:
        service.set_quota(session, ADMIN, "990100-D01", "test-cloud", QuotaSet(disk_gib=1000))
        data = RequestCreate.model_validate({
            "business_system": city.systems["own"], "cloud": "test-cloud", "justification": "视频存储扩容",
            "items": [{"flavor": "c2m4", "count": 2}, {"kind": "volume", "volume_type": "ssd", "size_gib": 300,
                                                       "count": 2}]})
        request = provisioning.submit_request(session, city.principals["dept"], data)
        assert request.status is RequestStatus.APPROVED  # 4 vCPU: the automatic tier
        quota = service.get_quota(session, ADMIN, "990100-D01", "test-cloud")
        # Two VMs' 40 GiB disks and two 300 GiB volumes held; volumes are no instances.
        assert (quota.reserved_disk_gb, quota.reserved_instances) == (680, 2)
        too_big = RequestCreate.model_validate({
            "business_system": city.systems["own"], "cloud": "test-cloud", "justification": "归档存储",
            "items": [{"kind": "volume", "volume_type": "hdd", "size_gib": 400}]})
        waiting = provisioning.submit_request(session, city.principals["dept_leader"], too_big)
        with pytest.raises(Conflict) as caught, session.begin_nested():
            provisioning.approve_request(session, city.principals["ops"], waiting.id)
        assert caught.value.field == "disk_gib"
        with pytest.raises(InvalidInput) as refused:
            provisioning.submit_request(session, city.principals["dept"], RequestCreate.model_validate({
                "business_system": city.systems["own"], "cloud": "test-cloud", "justification": "高速存储",
                "items": [{"kind": "volume", "volume_type": "nvme", "size_gib": 10}]}))
        assert refused.value.field == "items.0.volume_type"
        session.commit()
        request_id = request.id
    job = JobRunner(engine).run_once()
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED, job.error
    request, quota, servers = _state(engine, request_id)
    assert request.status is RequestStatus.FULFILLED
    with Session(engine) as session:
        made = list(session.scalars(select(Volume).order_by(Volume.id)))
        assert [(v.volume_type, v.size_gib, v.status) for v in made] == [("ssd", 300, "in-use")] * 2
        assert {v.server_id for v in made} == {s.id for s in servers}  # one volume on each new VM
        assert volumes.list_volumes(session, city.principals["dept"])[1] == 2
    assert (quota.used_disk_gb, quota.reserved_disk_gb) == (680, 0)


def test_concurrent_approvals_never_pass_a_volume_types_quota(committed: tuple[Engine, MiniCity]) -> None:
    """Sixteen 100 GiB ssd volumes asked for in parallel against a 1,000 GiB ssd quota: exactly ten are approved;
    a cancel gives its GiB back and a made volume moves them from reserved to used."""
    from cloudctl.compute import volumes

    engine, city = committed
    with Session(engine) as session:
        service.set_quota(session, ADMIN, "990100-D01", "test-cloud", QuotaSet(disk_gib=100_000))
        volumes.set_volume_quota(session, ADMIN, "990100-D01", "test-cloud", "ssd", 1000)
        session.commit()
    data = RequestCreate.model_validate({
        "business_system": city.systems["own"], "cloud": "test-cloud", "justification": "影像归档",
        "items": [{"kind": "volume", "volume_type": "ssd", "size_gib": 100}]})
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def department() -> None:
        barrier.wait()
        with Session(engine) as session:
            request = provisioning.submit_request(session, city.principals["dept"], data)
            session.commit()
            with lock:
                outcomes.append((request.id, request.status.value))

    threads = [threading.Thread(target=department) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [status for _, status in outcomes]
    assert (statuses.count("approved"), statuses.count("submitted")) == (10, 6)

    def ssd() -> tuple[int, int]:
        with Session(engine) as session:
            quotas, _ = volumes.list_volume_quotas(session, ADMIN, unit="990100-D01", cloud="test-cloud")
            row = next(q for q in quotas if q.volume_type == "ssd")
            return row.used_gib, row.reserved_gib

    assert ssd() == (0, 1000)
    # The limit cannot be lowered under what approvals hold.
    with Session(engine) as session, pytest.raises(Conflict) as lowered:
        volumes.set_volume_quota(session, ADMIN, "990100-D01", "test-cloud", "ssd", 900)
    assert lowered.value.field == "limit_gib"
    # Ops cannot approve a waiting one past the limit either.
    waiting = next(i for i, status in outcomes if status == "submitted")
    with Session(engine) as session, pytest.raises(Conflict) as caught:
        provisioning.approve_request(session, city.principals["ops"], waiting)
    assert caught.value.field == "size_gib"
    approved = [i for i, status in outcomes if status == "approved"]
    with Session(engine) as session:
        provisioning.cancel_request(session, city.principals["dept"], approved[0])
        session.commit()
    assert ssd() == (0, 900)
    job = JobRunner(engine).run_once()
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED, job.error
    used, reserved = ssd()
    assert reserved == 800
    assert used >= 100  # the made volume's GiB, until a quota sync reads the cloud's count
