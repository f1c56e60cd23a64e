"""Assets on both databases: linked to the cloud servers holding their addresses, their business systems and MLPS
levels; the cloud outranks the extranet plan; a hand-set level survives every later link."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning
from cloudctl.compute.models import Server
from cloudctl.compute.providers.base import ServerSpec
from cloudctl.core.audit import AuditEntry
from cloudctl.core.errors import InvalidInput, NotFound, PermissionDenied
from cloudctl.extranet.models import PrefixStatus, Zone
from cloudctl.extranet.schemas import AggregateCreate, PrefixCreate
from cloudctl.extranet.service import ipam
from cloudctl.org.models import Unit
from cloudctl.security.models import Asset, LevelSource
from cloudctl.security.scanners.base import ScanFinding, ScanReport
from cloudctl.security.schemas import AssetPublic, FindingPublic
from cloudctl.security.service import assets
from cloudctl.security.service import findings as service
from tests.factories import ADMIN, MiniCity, build_mini_city, make_server, make_system, simulator_of

PLAN_D01, PLAN_D02 = "10.64.1.20", "10.64.2.40"  # in 市公安局's and 市人社局's extranet blocks
WEB, DB = "10.192.0.10", "10.192.0.11"  # the simulator's first two fixed addresses


@pytest.fixture
def city(session: Session) -> MiniCity:
    city = build_mini_city(session, with_cloud=True)
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.0.0/14", zone=Zone.PUBLIC,
                                                    status=PrefixStatus.CONTAINER))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.1.0/24", zone=Zone.PUBLIC, unit_code="990100-D01"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.2.0/24", zone=Zone.PUBLIC, unit_code="990100-D02"))
    # 市公安局's level-3 video platform has the web server; 市人社局's level-3 card system the database.
    make_server(session, "990100-D01", city.systems["own"], name="d01-web")
    make_server(session, "990100-D02", city.systems["other"], name="d02-db")
    return city


def _report(sha: str, *ips: str) -> ScanReport:
    found = tuple(ScanFinding(scanner="nessus", plugin_id="42873", title="SWEET32", severity="high", ip=ip, port=443,
                              protocol="tcp", service="www") for ip in ips)
    return ScanReport(scanner="nessus", started_at=None, finished_at=None, hosts=ips, findings=found,
                      file_sha256=sha * 64)


def _asset(session: Session, ip: str) -> Asset:
    asset = session.scalar(select(Asset).where(Asset.ip == ip))
    assert asset is not None
    return asset


def _server(session: Session, name: str) -> Server:
    server = session.scalar(select(Server).where(Server.name == name))
    assert server is not None
    return server


def _unit_id(session: Session, code: str) -> int:
    unit_id = session.scalar(select(Unit.id).where(Unit.code == code))
    assert unit_id is not None
    return unit_id


def test_an_import_links_assets_to_server_business_system_and_level(session: Session, city: MiniCity) -> None:
    service.store_report(session, city.principals["secops"], _report("1", WEB, PLAN_D01), scope="q4", source="q4")
    web = _asset(session, WEB)
    assert (web.server_id, web.business_system_id, web.unit_id) == (
        _server(session, "d01-web").id, city.systems["own"], _unit_id(session, "990100-D01"))
    assert (web.mlps_level, web.mlps_level_source) == (3, LevelSource.SYSTEM)
    public = AssetPublic.model_validate(web).model_dump(mode="json")
    assert (public["server_name"], public["business_system"], public["unit_code"], public["mlps_level_source"]) == (
        "d01-web", "城市视频监控联网平台", "990100-D01", "system")
    # An extranet terminal no cloud claims: owned through the plan, no server, no level.
    terminal = _asset(session, PLAN_D01)
    assert (terminal.server_id, terminal.business_system_id, terminal.mlps_level, terminal.unit_id) == (
        None, None, None, _unit_id(session, "990100-D01"))

    # Findings can be narrowed to a business system or a level.
    rows, total = service.list_findings(session, ADMIN, scope="q4", business_system=city.systems["own"])
    assert (total, rows[0].ip) == (1, WEB)
    assert FindingPublic.model_validate(rows[0]).mlps_level == 3
    assert service.list_findings(session, ADMIN, scope="q4", mlps_level=3)[1] == 1
    assert service.list_findings(session, ADMIN, scope="q4", mlps_level=2)[1] == 0


def test_the_cloud_outranks_the_plan_and_an_orphan_vm_leaves_the_plans_guess(session: Session,
                                                                               city: MiniCity) -> None:
    sim = simulator_of(session)
    # 市公安局's server holds an address of 市人社局's extranet block (a floating IP from the wrong pool).
    sim.add_floating_ip(_server(session, "d01-web").provider_id, PLAN_D02)
    # A VM in a project no unit maps to (built by hand on the cloud), holding an address of 市公安局's block.
    orphan = sim.create_server(sim.ensure_project("stray", "手工创建"), ServerSpec("stray-vm", "c2m4", tag="x:1"))
    sim.add_floating_ip(orphan.provider_id, PLAN_D01)
    provisioning.sync_servers(session, ADMIN, "test-cloud")
    service.store_report(session, ADMIN, _report("2", PLAN_D02, PLAN_D01), scope="q4", source="q4")

    held = _asset(session, PLAN_D02)
    assert (held.server_id, held.unit_id) == (_server(session, "d01-web").id, _unit_id(session, "990100-D01"))
    stray = _asset(session, PLAN_D01)
    assert stray.server_id == _server(session, "stray-vm").id
    assert (stray.unit_id, stray.business_system_id, stray.mlps_level) == (_unit_id(session, "990100-D01"), None,
                                                                           None)


def test_a_hand_set_level_survives_reimports_and_syncs(session: Session, city: MiniCity) -> None:
    secops = city.principals["secops"]
    service.store_report(session, secops, _report("3", WEB), scope="q4", source="q4")
    web = _asset(session, WEB)
    assets.set_mlps_level(session, secops, web.id, 2, "测试环境主机，按二级管理")
    assert (web.mlps_level, web.mlps_level_source) == (2, LevelSource.MANUAL)
    service.store_report(session, secops, _report("4", WEB), scope="q4", source="q4b")
    provisioning.sync_servers(session, ADMIN, "test-cloud")
    session.expire_all()
    assert (web.mlps_level, web.mlps_level_source) == (2, LevelSource.MANUAL)
    assert web.business_system_id == city.systems["own"]  # the link itself still follows the cloud

    # Handed back: the business system's level again.
    assets.set_mlps_level(session, secops, web.id, None, "恢复按业务系统定级")
    assert (web.mlps_level, web.mlps_level_source) == (3, LevelSource.SYSTEM)
    audited = session.scalars(select(AuditEntry).where(AuditEntry.entity == "security_asset",
                                                       AuditEntry.action == "set-mlps-level")
                              .order_by(AuditEntry.id)).all()
    assert [(a.before, a.after) for a in audited] == [
        ({"mlps_level": 3, "mlps_level_source": "system", "reason": None},
         {"mlps_level": 2, "mlps_level_source": "manual", "reason": "测试环境主机，按二级管理"}),
        ({"mlps_level": 2, "mlps_level_source": "manual", "reason": None},
         {"mlps_level": 3, "mlps_level_source": "system", "reason": "恢复按业务系统定级"})]
    with pytest.raises(InvalidInput) as caught:
        assets.set_mlps_level(session, secops, web.id, 5, "五级不存在")
    assert caught.value.field == "mlps_level"


def test_a_sync_links_and_unlinks_existing_assets_in_a_few_statements(session: Session, city: MiniCity) -> None:
    level2 = make_system(session, "990100-D01", "内部办公系统", 2).id
    extra = make_server(session, "990100-D01", level2, name="d01-oa")  # 10.192.0.12
    service.store_report(session, ADMIN, _report("5", "59.110.8.21", "59.110.8.22", "10.192.0.12"), scope="q4",
                         source="q4")
    assert _asset(session, "59.110.8.21").server_id is None  # no server holds the public addresses yet
    sim = simulator_of(session)
    sim.add_floating_ip(_server(session, "d01-web").provider_id, "59.110.8.21")
    sim.add_floating_ip(extra.provider_id, "59.110.8.22")

    statements: list[str] = []

    def count(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    bind = session.connection()
    event.listen(bind, "before_cursor_execute", count)
    try:
        # The servers first, as a sync records them; then one read and one bulk write, whatever the number.
        for server in (_server(session, "d01-web"), extra):
            provisioning.record_server(session, server.cloud_id, server.unit_id, server.business_system_id, None,
                                       sim.get_server(server.provider_id))
        statements.clear()
        changed = assets.link_assets(session, ADMIN)
        linking = list(statements)
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert changed == 2
    assert len(linking) == 2, linking
    first, second = _asset(session, "59.110.8.21"), _asset(session, "59.110.8.22")
    assert (first.server_id, first.mlps_level) == (_server(session, "d01-web").id, 3)
    assert (second.server_id, second.business_system_id, second.mlps_level) == (extra.id, level2, 2)

    # The server is deleted on the cloud: the sync unlinks its assets; the unit stays the last one known.
    sim.delete_server(extra.provider_id)
    counts = provisioning.sync_servers(session, ADMIN, "test-cloud")
    assert counts["assets_linked"] == 2  # its fixed and its floating address
    session.expire_all()
    for ip in ("59.110.8.22", "10.192.0.12"):
        gone = _asset(session, ip)
        assert (gone.server_id, gone.business_system_id, gone.mlps_level, gone.mlps_level_source) == (
            None, None, None, None)
        assert gone.unit_id == _unit_id(session, "990100-D01")
    assert _asset(session, "59.110.8.21").server_id == _server(session, "d01-web").id
    logged = session.scalars(select(AuditEntry).where(AuditEntry.action == "link").order_by(AuditEntry.id)).all()
    assert logged
    assert logged[-1].after is not None
    assert logged[-1].after["changed"] == 2


def test_a_department_sees_only_its_own_assets_and_grades_none(session: Session, city: MiniCity) -> None:
    service.store_report(session, ADMIN, _report("6", WEB, DB, PLAN_D02), scope="q4", source="q4")
    dept = city.principals["dept"]
    mine, total = assets.list_assets(session, dept)
    assert (total, [a.ip for a in mine]) == (1, [WEB])
    everyone = assets.list_assets(session, ADMIN)[0]
    assert sorted(a.ip for a in everyone) == sorted([WEB, DB, PLAN_D02])
    assert [a.ip for a in assets.list_assets(session, ADMIN, unit="990100-D02")[0]] == [DB, PLAN_D02]
    assert [a.ip for a in assets.list_assets(session, ADMIN, linked=False)[0]] == [PLAN_D02]
    assert [a.ip for a in assets.list_assets(session, ADMIN, business_system=city.systems["other"])[0]] == [DB]
    theirs = _asset(session, DB)
    with pytest.raises(NotFound):
        assets.get_asset(session, dept, theirs.id)
    with pytest.raises(PermissionDenied):
        assets.set_mlps_level(session, dept, mine[0].id, 2, "我们觉得是二级")


def test_an_alert_belongs_to_the_unit_of_the_server_it_targets(session: Session, city: MiniCity) -> None:
    from cloudctl.security.service import alerts

    received = alerts.receive(session, ADMIN, [
        {"source": "ids", "source_ref": "c-1", "title": "SQL 注入", "dst_ip": DB},  # 市人社局's cloud database
        {"source": "ids", "source_ref": "c-2", "title": "端口扫描", "dst_ip": PLAN_D01},  # a 市公安局 terminal
        {"source": "ids", "source_ref": "c-3", "title": "探测", "dst_ip": "203.0.113.9"}])  # nobody's
    assert [a.unit_code for a in received] == ["990100-D02", "990100-D01", None]
    assert assets.owner(session, "not an address") is None
