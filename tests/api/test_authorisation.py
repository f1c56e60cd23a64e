"""Every route of the app × every role, generated from the app's routes: one table of expected answers.

A route the app serves that has no row here fails :func:`test_every_route_is_in_the_matrix` (and a row without
a route fails it too), so a new endpoint cannot ship without saying who may call it.

For each route: the answer per role (``anonymous`` has no token); for a record or filter that belongs to a unit,
the same probe against another unit's, where a department answers 404, never 403, so nothing leaks; and for every
answer a department gets, none of another unit's codes or names appears in it (lists, summaries, the big screen,
HTML and CSV outputs alike). A department token is bound to 市公安局 (990100-D01, with 市公安局交通警察支队
under it); "other" names 市人社局's records (990100-D02).

One city is built per module (and database) and every probe runs in a savepoint rolled back after it: a probe
that changes something (an approval, a verdict) never shows in the next. A role that passes the gate may still
meet a rule (409 for a request already decided, 422 for a resize to the same flavor); the table says which, and
no probe asks a cloud to change state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import get_session
from cloudctl.core import jobs
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.org.models import Unit
from tests.factories import ADMIN, build_reclaim_fleet, make_officers, make_server

# A department's leader (dept_leader) is bound to 市公安局 as the dept user is: it answers as the department does
# unless a row says otherwise.
ROLES = ("admin", "ops", "secops", "duty", "auditor", "dept", "dept_leader", "anonymous")
DEPARTMENT_ROLES = ("dept", "dept_leader")
DEPT_SEES = {"990100-D01", "990100-M001"}
CITY = "990100"


@jobs.job_handler("test.api")
def _noop(ctx: jobs.JobContext) -> None:
    return None


# ---------------------------------------------------------------- the city, once per module


@dataclass
class World:
    tokens: dict[str, str]
    # Placeholder values of the routes' path parameters (and a few more), per target.
    own: dict[str, str]
    other: dict[str, str]
    # Codes and names of the units a department of 990100-D01 must never see.
    foreign: set[str]
    own_jobs: set[int]


class _Current:
    session: Session | None = None


current = _Current()


def _build(session: Session) -> World:
    """The mini city with a reclaim fleet, the extranet plan, scans, alerts, duty, a drill and jobs."""
    from cloudctl.compute import provisioning
    from cloudctl.compute import service as compute
    from cloudctl.compute.schemas import QuotaSet, RequestCreate
    from cloudctl.core import attachments
    from cloudctl.extranet.devices import ArpEntry, DeviceTables, MacEntry
    from cloudctl.extranet.models import NetworkDevice, PrefixStatus, Violation, Zone
    from cloudctl.extranet.schemas import AggregateCreate, ApplicationCreate, LinkCreate, PrefixCreate
    from cloudctl.extranet.service import access, collection, compliance, ipam
    from cloudctl.extranet.service import rectification as extranet_rectification
    from cloudctl.notify import service as notices
    from cloudctl.notify.models import ChannelKind, Delivery, DeliveryStatus
    from cloudctl.reclaim import service as reclaim
    from cloudctl.reclaim.models import Recommendation
    from cloudctl.security.models import (
        Asset,
        DrillPhase,
        DutyKind,
        Finding,
        IncidentLevel,
        ItemStatus,
        Ticket,
        Verdict,
    )
    from cloudctl.security.scanners.base import ScanFinding, ScanReport
    from cloudctl.security.service import alerts, drills, duty, findings, incidents
    from cloudctl.security.service import rectification as security_rectification

    fleet = build_reclaim_fleet(session)
    city = fleet.city
    units = {u.code: u for u in session.scalars(select(Unit))}
    own: dict[str, str] = {"unit": "990100-D01", "system": str(city.systems["own"])}
    other: dict[str, str] = {"unit": "990100-D02", "system": str(city.systems["other"])}

    # Notifications: the bureau's mail server, and each department's contact subscribed, so what follows is told.
    notices.create_channel(session, ADMIN, name="matrix-mail", kind=ChannelKind.SMTP,
                           config={"host": "127.0.0.1", "port": 9, "security": "none", "sender": "noc@example.gov.cn"})
    for target, code in ((own, "990100-D01"), (other, "990100-D02")):
        target["subscription"] = str(notices.create_subscription(
            session, ADMIN, channel="matrix-mail", unit=code, address=f"{code.lower()}@example.gov.cn").id)

    # The government cloud: room for a request that waits for ops, and one server due for deletion each.
    for code in ("990100-D01", "990100-D02"):
        compute.set_quota(session, ADMIN, code, "test-cloud", QuotaSet(vcpus=96, ram_gib=192, instances=20))
    for target, system in ((own, city.systems["own"]), (other, city.systems["other"])):
        request = provisioning.submit_request(session, ADMIN, RequestCreate.model_validate(
            {"business_system": system, "cloud": "test-cloud", "justification": "业务扩容",
             "items": [{"flavor": "c4m8", "count": 5}]}))
        target["request"] = str(request.id)
    due = make_server(session, "990100-D02", city.systems["other"], "c2m4", name="990100-d02-due")
    for target, server in ((own, fleet.servers["batch"]), (other, due)):
        provisioning.decommission_server(session, ADMIN, server.id)
        target["due_server"] = str(server.id)
    compute.capacity(session, ADMIN, "test-cloud")  # the snapshot the big screen reads
    # A data volume each, attached to a server of the unit.
    from cloudctl.compute import volumes
    from cloudctl.compute.models import Volume
    from tests.factories import simulator_of

    sim = simulator_of(session)
    for server in (fleet.servers["busy"], fleet.servers["other-idle"]):
        made = sim.create_volume(sim.get_server(server.provider_id).project, f"{server.name}-data", "ssd", 100)
        sim.attach_volume(made.provider_id, server.provider_id)
    volumes.sync_volumes(session, ADMIN, "test-cloud")
    for target, server in ((own, fleet.servers["busy"]), (other, fleet.servers["other-idle"])):
        target["volume"] = str(session.scalars(select(Volume.id).where(Volume.server_id == server.id)).one())
    own["server"], other["server"] = str(fleet.servers["busy"].id), str(fleet.servers["other-idle"].id)
    own["flavor"], other["flavor"] = fleet.servers["busy"].flavor, fleet.servers["other-idle"].flavor

    # Reclaim: notified recommendations, one appealed, one still open.
    reclaim.analyze(session, ADMIN)
    recs = {r.server.name.split("-", 2)[-1]: r for r in session.scalars(select(Recommendation))}
    reclaim.notify(session, ADMIN, [recs["idle"].id, recs["oversized"].id, recs["other-idle"].id])
    reclaim.appeal(session, city.principals["dept"], recs["oversized"].id, "业务高峰需要保留")
    own |= {"rec": str(recs["idle"].id), "appealed": str(recs["oversized"].id), "open_rec": str(recs["zombie"].id)}
    other |= {"rec": str(recs["other-idle"].id), "appealed": str(recs["other-idle"].id),
              "open_rec": str(recs["other-idle"].id)}

    # The extranet: the plan, a line each, a switch each whose tables break rules, an IP application each.
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.0.0/14", zone=Zone.PUBLIC,
                                                    status=PrefixStatus.CONTAINER))
    now = utcnow()
    for target, code, n in ((own, "990100-D01", 1), (other, "990100-D02", 2)):
        ipam.create_prefix(session, ADMIN, PrefixCreate(prefix=f"10.64.{n}.0/24", zone=Zone.PUBLIC, unit_code=code,
                                                        vlan=10))
        target["link"] = str(access.create_link(session, ADMIN, LinkCreate(
            unit_code=code, carrier="中国电信", line_type="MSTP", bandwidth_mbps=100)).id)
        device = NetworkDevice(name=f"{code.lower()}-sw1", host="127.0.0.1", device_type="huawei_vrp", role="access",
                               unit_id=units[code].id, zone=Zone.PUBLIC)
        session.add(device)
        session.flush()
        collection.store_tables(session, device, DeviceTables(
            device.name, arp=[ArpEntry(f"10.64.{n}.77", f"02:00:00:00:0{n}:77", "Vlanif10", 10)],
            mac=[MacEntry(f"02:00:00:00:0{n}:0{i}", 10, "GigabitEthernet0/0/3", "dynamic") for i in range(6)]),
            now - timedelta(minutes=5))
        target["app"] = str(ipam.submit_application(session, ADMIN, ApplicationCreate.model_validate(
            {"zone": "public", "count": 1, "purpose": "业务终端接入", "unit_code": code,
             "commitment": {"signer": "张伟", "accepted": True}})).id)
    compliance.check(session, ADMIN)
    for target, code in ((own, "990100-D01"), (other, "990100-D02")):
        target["violation"] = str(session.scalars(select(Violation.id).where(
            Violation.unit_id == units[code].id).order_by(Violation.id)).first())

    # Security: a critical finding on each unit's host, ticketed; alerts in each state; a block.
    for target, n in ((own, 1), (other, 2)):
        host = f"10.64.{n}.20"
        findings.store_report(session, ADMIN, ScanReport(
            scanner="nessus", started_at=None, finished_at=None, hosts=(host,), file_sha256=f"{n}" * 64,
            findings=(ScanFinding(scanner="nessus", plugin_id="97833", title="MS17-010", severity="critical",
                                  ip=host, port=445, protocol="tcp", service="cifs"),)), scope="matrix", source="test")
        asset = session.scalars(select(Asset).where(Asset.ip == host)).one()
        target["asset"] = str(asset.id)
        target["finding"] = str(session.scalars(select(Finding.id).where(Finding.asset_id == asset.id)).one())
        alert = alerts.receive(session, ADMIN, {"source": "态势感知", "source_ref": f"evt-{n}", "title": "Webshell",
                                                "severity": "high", "src_ip": "203.0.113.7", "dst_ip": host})[0]
        target["alert"] = str(alert.id)
    findings.open_tickets(session, ADMIN, scope="matrix")
    # An incident on each unit's asset, and an attack on each not yet in one.
    for target, n in ((own, 1), (other, 2)):
        for ref in ("incident", "new_attack"):
            judged_attack = alerts.receive(session, ADMIN, {
                "source": "态势感知", "source_ref": f"{ref}-{n}", "title": "SQL 注入", "severity": "high",
                "src_ip": "203.0.113.20", "dst_ip": f"10.64.{n}.20"})[0]
            alerts.set_verdict(session, ADMIN, judged_attack.id, Verdict.ATTACK)
            target[ref] = str(judged_attack.id)
        target["incident"] = str(incidents.open_incident(session, ADMIN, int(target["incident"]),
                                                         incidents.IncidentOpen(level=IncidentLevel.LARGE)).id)
    for target, code in ((own, "990100-D01"), (other, "990100-D02")):
        target["ticket"] = str(session.scalars(select(Ticket.id).where(Ticket.unit_id == units[code].id)).one())
    attack = alerts.receive(session, ADMIN, {"source": "态势感知", "source_ref": "evt-attack", "title": "扫描",
                                             "severity": "high", "src_ip": "203.0.113.8"})[0]
    alerts.set_verdict(session, ADMIN, attack.id, Verdict.ATTACK)
    judged = alerts.receive(session, ADMIN, {"source": "态势感知", "source_ref": "evt-judged", "title": "误报",
                                             "severity": "low", "src_ip": "203.0.113.9"})[0]
    alerts.set_verdict(session, ADMIN, judged.id, Verdict.FALSE_POSITIVE)
    alerts.block(session, ADMIN, "203.0.113.7", reason="webshell 上传")

    # Duty: a period with hourly reports (each unit has reported an earlier slot), a shift on now.
    period = duty.create_period(session, ADMIN, duty.PeriodCreate(
        name="护网值守", kind=DutyKind.DRILL, starts_at=now - timedelta(hours=3), ends_at=now + timedelta(days=2),
        every_hours=1))
    make_officers(session, "王值班", "周夜班")
    shift = duty.add_shift(session, ADMIN, period.id, duty.ShiftCreate(
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=11), officer="王值班", backup="duty-user"))
    for code in ("990100-D01", "990100-D02"):
        duty.submit_report(session, ADMIN, period.id, duty.ReportCreate(zero=True, unit_code=code,
                                                                         slot_at=duty.slots(period)[0]))

    # A drill over both departments: each has an item done (to verify) and one waiting (to move on).
    drill = drills.create_drill(session, ADMIN, drills.DrillCreate(
        name="2026 护网行动", organiser="市委网信办", starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=20), units=["990100-D01", "990100-D02"]))
    for target, code in ((own, "990100-D01"), (other, "990100-D02")):
        done, waiting = drills.list_items(session, ADMIN, drill.id, unit=code)[:2]
        drills.update_item(session, ADMIN, drill.id, done.id, ItemStatus.DONE, evidence="资产台账 v3")
        target["done_item"], target["item"] = str(done.id), str(waiting.id)
        target["waivable_item"] = str(drills.list_items(session, ADMIN, drill.id, unit=code)[2].id)
    # A drill whose preparation is done, ready to move to its self-inspection.
    ready = drills.create_drill(session, ADMIN, drills.DrillCreate(
        name="专项护网", organiser="市委网信办", starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=20), units=["990100-D01"]))
    for item in drills.list_items(session, ADMIN, ready.id):
        if item.phase is DrillPhase.PREPARE:
            drills.update_item(session, ADMIN, ready.id, item.id, ItemStatus.DONE, evidence="已完成")

    # Evidence on each ticket, an extension request waiting on each ticket and violation, a failed message each.
    for target, code in ((own, "990100-D01"), (other, "990100-D02")):
        ticket_id, violation_id = int(target["ticket"]), int(target["violation"])
        target["attachment"] = str(attachments.add_attachment(session, ADMIN, "security_ticket", ticket_id,
                                                              "补丁安装记录".encode(), filename="补丁.txt").id)
        target["extension"] = str(security_rectification.request_extension(
            session, ADMIN, ticket_id, to=beijing_today() + timedelta(days=60), reason="等待厂商补丁").id)
        target["vextension"] = str(extranet_rectification.request_extension(
            session, ADMIN, violation_id, to=beijing_today() + timedelta(days=60), reason="设备采购中").id)
        delivery = session.scalars(select(Delivery).where(Delivery.unit_id == units[code].id)
                                   .order_by(Delivery.id)).first()
        assert delivery is not None
        delivery.status = DeliveryStatus.FAILED
        target["notification"] = str(delivery.id)

    own_jobs = set()
    for target, code in ((own, "990100-D01"), (other, "990100-D02")):
        job = jobs.submit_job(session, ADMIN, "test.api", unit_id=units[code].id)
        session.flush()
        target["job"] = str(job.id)
        if target is own:
            own_jobs.add(job.id)

    common = {"cloud": "test-cloud", "period": str(period.id), "shift": str(shift.id), "drill": str(drill.id),
              "ready_drill": str(ready.id),
              "attack": str(attack.id), "judged": str(judged.id), "action": "start", "step": "block",
              "phase": "self_check", "next_shift": (shift.ends_at + timedelta(hours=1)).isoformat(),
              "next_shift_ends": (shift.ends_at + timedelta(hours=9)).isoformat(),
              "later": (beijing_today() + timedelta(days=30)).isoformat(), "channel": "matrix-mail",
              "template_kind": "reclaim.notice", "volume_type": "ssd", "month": beijing_today().strftime("%Y-%m"),
              "last_month": (beijing_today().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")}
    own |= common
    other |= common
    foreign = {code for code in units if code not in DEPT_SEES | {CITY}}
    foreign |= {units[code].name for code in foreign}
    return World(tokens=dict(city.tokens), own=own, other=other, foreign=foreign, own_jobs=own_jobs)


@pytest.fixture(scope="module")
def world(engine: Engine, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Connection]]:
    data = tmp_path_factory.mktemp("matrix")
    reset_settings(Settings(data_dir=data / "data", database_url=db_url, simulator_build_seconds=0,
                            simulator_database_url=f"sqlite:///{data / 'simulator.db'}"))
    connection = engine.connect()
    outer = connection.begin()
    try:
        with Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as session:
            built = _build(session)
            session.commit()
        yield built, connection
    finally:
        outer.rollback()
        connection.close()
        reset_settings()
        dispose_engines()


@contextmanager
def _session() -> Iterator[Session]:
    assert current.session is not None
    yield current.session


def _app() -> FastAPI:
    app = create_app(metrics_sessions=_session)

    def test_session() -> Iterator[Session]:
        # The request commits to a savepoint inside the probe's, rolled back after the probe.
        assert current.session is not None
        try:
            yield current.session
            current.session.commit()
        except BaseException:
            current.session.rollback()
            raise

    app.dependency_overrides[get_session] = test_session
    return app


@pytest.fixture(scope="module")
def shared_client(world: tuple[World, Connection]) -> Iterator[TestClient]:
    with TestClient(_app()) as client:
        yield client


@pytest.fixture
def probe_session(world: tuple[World, Connection]) -> Iterator[Session]:
    _, connection = world
    savepoint = connection.begin_nested()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    current.session = session
    try:
        yield session
    finally:
        current.session = None
        session.close()
        savepoint.rollback()


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Probe:
    method: str
    route: str  # the path as the app declares it
    expect: dict[str, int]
    query: str = ""
    body: dict[str, Any] | None = None
    # Path parameters taken from another key of the target than the parameter's own (server_id ← due_server).
    params: dict[str, str] = field(default_factory=dict)
    target: str = "own"
    media: str | None = None  # the content type of a 2xx answer, where it is not JSON
    label: str = ""
    # More to assert on a department's answer, beyond "nothing of another unit in it".
    dept_check: Callable[[Any, World], None] | None = None

    @property
    def name(self) -> str:
        return f"{self.method} {self.route}{self.query}{' ' + self.label if self.label else ''} [{self.target}]"


def may(*roles: str, ok: int = 200, **special: int) -> dict[str, int]:
    """``ok`` for the roles named (every role with a token when none is), 403 for the others, 401 without a token;
    ``special`` overrides one role's answer. A department's leader answers as the department unless named."""
    allowed = set(roles or ROLES[:-1])
    if "dept" in allowed:
        allowed.add("dept_leader")
    if "dept" in special:
        special.setdefault("dept_leader", special["dept"])
    answers = {role: ok if role in allowed else 403 for role in ROLES[:-1]} | {"anonymous": 401}
    return answers | special


PUBLIC = {role: 200 for role in ROLES}
WRITE = ("admin", "ops")
SECURITY = ("admin", "secops")
TRIAGE = ("admin", "secops", "duty")
# A statement is the bureau's and each department's own (its subtree's); security and duty have no bill to read.
STATEMENT = ("admin", "ops", "auditor", "dept")
PARAM_KEYS = {"code": "unit", "system_id": "system", "request_id": "request", "server_id": "server",
              "rec_id": "rec", "app_id": "app", "link_id": "link", "violation_id": "violation", "asset_id": "asset",
              "finding_id": "finding", "ticket_id": "ticket", "alert_id": "alert", "period_id": "period",
              "shift_id": "shift", "drill_id": "drill", "item_id": "item", "job_id": "job", "name": "cloud",
              "unit": "unit", "cloud": "cloud", "action": "action", "step": "step", "phase": "phase",
              "notification_id": "notification", "subscription_id": "subscription", "extension_id": "extension",
              "attachment_id": "attachment", "kind": "template_kind", "volume_id": "volume",
              "incident_id": "incident", "volume_type": "volume_type"}


def _units_only_own(body: Any, world: World) -> None:
    assert {u["code"] for u in body["items"]} <= DEPT_SEES


def _jobs_only_own(body: Any, world: World) -> None:
    assert {j["id"] for j in body["items"]} <= world.own_jobs


def _campaign_counts_hidden(body: Any, world: World) -> None:
    assert body["counts"] == {}


def _screen_is_the_department(body: Any, world: World) -> None:
    assert body["unit"] == "990100-D01"
    assert body["clouds"] is None
    assert body["security"]["on_shift"] is None
    assert body["security"]["blocked_24h"] is None
    assert body["security"]["alerts_new"] == 1  # its own asset's alert; the city has more
    assert {u["unit"] for u in body["security"]["units"]} <= DEPT_SEES
    assert body["requests_pending"] == 1  # its own request only; the city has two


def _statement_own(body: Any, world: World) -> None:
    assert body["lines"]
    assert {line["unit_code"] for line in body["lines"]} <= DEPT_SEES
    assert {row["unit_code"] for row in body["totals"]} <= DEPT_SEES


def _reclaim_summary_own(body: Any, world: World) -> None:
    assert {row["key"] for row in body} <= DEPT_SEES


def scoped(probe: Probe, **other: int) -> list[Probe]:
    """The probe against the department's own record and against another unit's: there a department that may call
    the route answers 404, everyone else as on its own (``other`` overrides a role's answer there: another
    unit's record in another state, a body naming another unit)."""
    hidden = {role: 404 if probe.expect[role] != 403 else 403 for role in DEPARTMENT_ROLES}
    if "dept" in other:
        other.setdefault("dept_leader", other["dept"])
    return [probe, replace(probe, target="other", expect=probe.expect | hidden | other)]


def lists(route: str, *, expect: dict[str, int] | None = None, unit_filter: bool = True,
          dept_check: Callable[[Any, World], None] | None = None) -> list[Probe]:
    """A list: everyone who may read it, a department only its own; with its ``unit`` filter, another unit is 404."""
    expect = expect or may()
    probes = [Probe("GET", route, expect, dept_check=dept_check)]
    if unit_filter:
        probes += scoped(Probe("GET", route, expect, query="?unit={unit}", label="unit filter"))
    return probes


PROBES: list[Probe] = [
    # ------------------------------------------------------------ the app itself, no token needed
    Probe("GET", "/healthz", PUBLIC),
    # Not ready for anyone: no job worker runs beside these tests (the readiness tests start one).
    Probe("GET", "/readyz", {role: 503 for role in ROLES}),
    Probe("GET", "/metrics", PUBLIC, media="text/plain"),
    Probe("GET", "/openapi.json", PUBLIC),
    Probe("GET", "/docs", PUBLIC, media="text/html"),
    Probe("GET", "/redoc", PUBLIC, media="text/html"),
    Probe("GET", "/screen", PUBLIC, media="text/html"),
    Probe("GET", "/static/screen.js", PUBLIC, media="text/javascript"),
    # The docs pages' files, served by the API itself (a mount: the file's name follows the route).
    Probe("GET", "/static/docs", PUBLIC, query="/swagger-ui-bundle.js", media="text/javascript"),
    Probe("GET", "/static/api", PUBLIC, query="/swagger-init.js", media="text/javascript"),
    Probe("GET", "/api/v1/screen/summary", may(), dept_check=_screen_is_the_department),
    # ------------------------------------------------------------ organisation
    Probe("GET", "/api/v1/me", may()),
    *lists("/api/v1/units", unit_filter=False, dept_check=_units_only_own),
    Probe("POST", "/api/v1/units", may(*WRITE, ok=201),
          body={"code": "990100-D09", "name": "市新设局", "kind": "department", "parent": "990100"}),
    *scoped(Probe("GET", "/api/v1/units/{code}", may())),
    *scoped(Probe("PATCH", "/api/v1/units/{code}", may(*WRITE, "dept"), body={"contact_name": "刘洋"},
                  label="contacts")),
    Probe("PATCH", "/api/v1/units/{code}", may(*WRITE), body={"name": "市公安局新名"}, label="structure"),
    *lists("/api/v1/business-systems"),
    *scoped(Probe("POST", "/api/v1/business-systems", may(*WRITE, "dept", ok=201),
                  body={"unit_code": "{unit}", "name": "移动警务平台", "mlps_level": 3}), dept=422),
    *scoped(Probe("GET", "/api/v1/business-systems/{system_id}", may())),
    *scoped(Probe("PATCH", "/api/v1/business-systems/{system_id}", may(*WRITE, "dept"), body={"user_facing": True})),
    # Lowering the MLPS level is the security team's decision; another unit's system stays not found.
    *scoped(Probe("PATCH", "/api/v1/business-systems/{system_id}", may(*SECURITY), body={"mlps_level": 2},
                  label="lower the MLPS level"), dept=404),
    # ------------------------------------------------------------ government cloud
    Probe("GET", "/api/v1/clouds", may()),
    Probe("GET", "/api/v1/clouds/{name}", may()),
    Probe("GET", "/api/v1/clouds/{name}/flavors", may()),
    Probe("GET", "/api/v1/clouds/{name}/capacity", may(dept=403)),
    *lists("/api/v1/quotas"),
    *scoped(Probe("PUT", "/api/v1/quotas/{unit}/{cloud}", may(*WRITE), body={"vcpus": 96})),
    *lists("/api/v1/volume-quotas"),
    *scoped(Probe("PUT", "/api/v1/volume-quotas/{unit}/{cloud}/{volume_type}", may(*WRITE), body={"limit_gib": 5000})),
    *lists("/api/v1/requests"),
    *scoped(Probe("POST", "/api/v1/requests", may(*WRITE, "dept", ok=201),
                  body={"business_system": "{system}", "cloud": "test-cloud", "justification": "业务扩容",
                        "items": [{"flavor": "c2m4"}]}), dept=422),
    *scoped(Probe("GET", "/api/v1/requests/{request_id}", may())),
    # A leader passes the gate of the leader's step: another unit's request is not found, its own is past that step.
    *scoped(Probe("POST", "/api/v1/requests/{request_id}/approve", may(*WRITE)), dept_leader=404),
    *scoped(Probe("POST", "/api/v1/requests/{request_id}/reject", may(*WRITE), body={"reason": "预算不足"}),
            dept_leader=404),
    *scoped(Probe("POST", "/api/v1/requests/{request_id}/cancel", may(*WRITE, "dept"))),
    *lists("/api/v1/servers"),
    *scoped(Probe("GET", "/api/v1/servers/{server_id}", may())),
    # Already due for deletion: a rule's 409 for whoever passes the gate, and the cloud is not asked.
    *scoped(Probe("POST", "/api/v1/servers/{server_id}/decommission", may(*WRITE, "dept", ok=409),
                  params={"server_id": "due_server"})),
    *scoped(Probe("DELETE", "/api/v1/servers/{server_id}/decommission", may(*WRITE, "dept"),
                  params={"server_id": "due_server"})),
    # Starting a running server: the cloud's own 409, and nothing changes there.
    *scoped(Probe("POST", "/api/v1/servers/{server_id}/actions/{action}", may(*WRITE, "dept", ok=409))),
    *scoped(Probe("POST", "/api/v1/servers/{server_id}/resize", may(*WRITE, "dept", ok=422),
                  body={"flavor": "{flavor}"}, label="to its own flavor")),
    *lists("/api/v1/volumes"),
    *scoped(Probe("GET", "/api/v1/volumes/{volume_id}", may())),
    # ------------------------------------------------------------ money
    Probe("GET", "/api/v1/tariffs", may()),
    Probe("POST", "/api/v1/tariffs", may(*WRITE, ok=201),
          body={"cloud": "test-cloud", "resource": "vcpu", "price": "45.50", "effective_from": "{later}"}),
    Probe("GET", "/api/v1/showback", may(*STATEMENT), query="?month={month}", dept_check=_statement_own),
    *scoped(Probe("GET", "/api/v1/showback", may(*STATEMENT), query="?month={month}&unit={unit}", label="unit filter",
                  dept_check=_statement_own)),
    Probe("GET", "/api/v1/showback", may(*STATEMENT), query="?month={month}&format=csv", media="text/csv", label="csv"),
    Probe("GET", "/api/v1/showback", may(*STATEMENT), query="?month={month}&format=xlsx", label="xlsx",
          media="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    Probe("POST", "/api/v1/showback/closed-months", may(*WRITE, ok=201), body={"month": "{last_month}"}),
    *lists("/api/v1/budgets", expect=may(*STATEMENT)),
    *scoped(Probe("PUT", "/api/v1/budgets", may(*WRITE), body={"unit": "{unit}", "year": 2026, "amount": "1200000"})),
    # ------------------------------------------------------------ reclaim
    *lists("/api/v1/reclaim/recommendations"),
    *scoped(Probe("GET", "/api/v1/reclaim/recommendations/{rec_id}", may())),
    *scoped(Probe("POST", "/api/v1/reclaim/recommendations/{rec_id}/appeal", may(*WRITE, "dept"),
                  body={"reason": "业务高峰需要保留"})),
    # 市人社局 has one recommendation, notified and not appealed: there the rules answer 409.
    *scoped(Probe("POST", "/api/v1/reclaim/recommendations/{rec_id}/appeal/decision", may(*WRITE),
                  body={"accept": True, "note": "年底结算系统"}, params={"rec_id": "appealed"}), admin=409, ops=409),
    *scoped(Probe("POST", "/api/v1/reclaim/recommendations/{rec_id}/notify", may(*WRITE),
                  params={"rec_id": "open_rec"}), admin=409, ops=409),
    Probe("GET", "/api/v1/reclaim/campaigns/latest", may(), dept_check=_campaign_counts_hidden),
    Probe("GET", "/api/v1/reclaim/summary", may(), dept_check=_reclaim_summary_own),
    Probe("GET", "/api/v1/reclaim/summary", may(), query="?by=system"),
    Probe("GET", "/api/v1/reclaim/summary", may(), query="?by=cloud"),
    # Purchase planning is the city's capacity: not a department's figure.
    Probe("GET", "/api/v1/reclaim/purchase-plan", may(dept=403)),
    # ------------------------------------------------------------ extranet
    Probe("GET", "/api/v1/extranet/access-rate", may()),
    *lists("/api/v1/extranet/links"),
    Probe("POST", "/api/v1/extranet/links", may(*WRITE, ok=201),
          body={"unit_code": "990100-M001", "carrier": "中国联通", "line_type": "MSTP", "bandwidth_mbps": 50}),
    *scoped(Probe("PATCH", "/api/v1/extranet/links/{link_id}", may(*WRITE), body={"bandwidth_mbps": 200})),
    *lists("/api/v1/extranet/prefixes"),
    *lists("/api/v1/extranet/ip-applications"),
    *scoped(Probe("POST", "/api/v1/extranet/ip-applications", may(*WRITE, "dept", ok=201),
                  body={"zone": "public", "count": 1, "purpose": "业务终端接入", "unit_code": "{unit}",
                        "commitment": {"signer": "张伟", "accepted": True}})),
    *scoped(Probe("GET", "/api/v1/extranet/ip-applications/{app_id}", may())),
    *scoped(Probe("POST", "/api/v1/extranet/ip-applications/{app_id}/approve", may(*WRITE))),
    *scoped(Probe("POST", "/api/v1/extranet/ip-applications/{app_id}/reject", may(*WRITE),
                  body={"reason": "地址规划调整"})),
    *scoped(Probe("POST", "/api/v1/extranet/ip-applications/{app_id}/cancel", may(*WRITE, "dept"))),
    # Only an approved application is released: a rule's 409 for those who may decide.
    *scoped(Probe("POST", "/api/v1/extranet/ip-applications/{app_id}/release", may(*WRITE, ok=409))),
    *lists("/api/v1/extranet/devices"),
    *lists("/api/v1/extranet/violations"),
    *scoped(Probe("GET", "/api/v1/extranet/violations/{violation_id}", may())),
    *scoped(Probe("PATCH", "/api/v1/extranet/violations/{violation_id}", may(*WRITE, "secops"),
                  body={"status": "rectifying", "note": "已安排整改"})),
    *scoped(Probe("GET", "/api/v1/extranet/violations/{violation_id}/updates", may())),
    *scoped(Probe("POST", "/api/v1/extranet/violations/{violation_id}/progress", may("admin", "ops", "dept", ok=201),
                  body={"status": "in_progress", "note": "已下线违规终端"})),
    *scoped(Probe("POST", "/api/v1/extranet/violations/{violation_id}/extension-requests",
                  may("admin", "ops", "dept", ok=409), body={"to": "{later}", "reason": "设备采购中"})),
    *scoped(Probe("POST", "/api/v1/extranet/violations/{violation_id}/extension-requests/{extension_id}/decision",
                  may(*WRITE, "secops"), body={"grant": True}, params={"extension_id": "vextension"})),
    *lists("/api/v1/extranet/scorecard"),
    # ------------------------------------------------------------ security: assets, findings, tickets
    *lists("/api/v1/security/assets"),
    *scoped(Probe("GET", "/api/v1/security/assets/{asset_id}", may())),
    *scoped(Probe("PUT", "/api/v1/security/assets/{asset_id}/mlps-level", may(*SECURITY),
                  body={"mlps_level": 3, "reason": "承载核心业务"})),
    *lists("/api/v1/security/findings"),
    *scoped(Probe("GET", "/api/v1/security/findings", may(), query="?ticket={ticket}", label="of a ticket")),
    # Refused for its shape before anyone is asked for a token (the parameters are in the public OpenAPI document).
    Probe("GET", "/api/v1/security/findings", may(ok=422, anonymous=422), query="?unti=990100-D01",
          label="an unknown filter"),
    *scoped(Probe("GET", "/api/v1/security/findings/{finding_id}", may())),
    Probe("GET", "/api/v1/security/tickets", may()),
    *scoped(Probe("GET", "/api/v1/security/tickets/{ticket_id}", may())),
    *scoped(Probe("POST", "/api/v1/security/tickets/{ticket_id}/extensions", may(*SECURITY),
                  body={"to": "{later}", "reason": "等待厂商补丁"})),
    *[probe for kind in ("false-positive", "verified", "out-of-scope") for probe in (
        Probe("POST", f"/api/v1/security/findings/{{finding_id}}/{kind}", may(*SECURITY), body={"reason": "人工复核"}),
        # Taking back what was never set: a rule's 409.
        Probe("DELETE", f"/api/v1/security/findings/{{finding_id}}/{kind}", may(*SECURITY, ok=409),
              query="?reason=人工复核"))],
    Probe("POST", "/api/v1/security/findings/{finding_id}/risk-acceptance", may(*SECURITY),
          body={"reason": "业务无法停机", "until": "{later}"}),
    Probe("DELETE", "/api/v1/security/findings/{finding_id}/risk-acceptance", may(*SECURITY, ok=409),
          query="?reason=人工复核"),
    # The department's side of a ticket: progress with evidence, extension requests; the security team decides.
    *scoped(Probe("GET", "/api/v1/security/tickets/{ticket_id}/updates", may())),
    *scoped(Probe("POST", "/api/v1/security/tickets/{ticket_id}/progress", may("admin", "secops", "dept", ok=201),
                  body={"status": "fixed", "note": "已安装补丁，请复测", "attachments": ["{attachment}"]})),
    # One request already waits on each ticket: a rule's 409 for those who may ask.
    *scoped(Probe("POST", "/api/v1/security/tickets/{ticket_id}/extension-requests",
                  may("admin", "secops", "dept", ok=409), body={"to": "{later}", "reason": "等待厂商补丁"})),
    *scoped(Probe("POST", "/api/v1/security/tickets/{ticket_id}/extension-requests/{extension_id}/decision",
                  may(*SECURITY), body={"grant": False, "note": "请按期整改"})),
    # ------------------------------------------------------------ evidence files
    *scoped(Probe("GET", "/api/v1/attachments", may(), query="?entity=security_ticket&entity_id={ticket}")),
    *scoped(Probe("POST", "/api/v1/attachments", may("admin", "secops", "dept", ok=201),
                  query="?entity=security_ticket&entity_id={ticket}&filename=整改说明.txt",
                  body={"说明": "已整改"})),
    *scoped(Probe("GET", "/api/v1/attachments/{attachment_id}", may())),
    *scoped(Probe("GET", "/api/v1/attachments/{attachment_id}/content", may(), media="text/plain")),
    # ------------------------------------------------------------ notifications
    *lists("/api/v1/notifications"),
    *scoped(Probe("GET", "/api/v1/notifications/{notification_id}", may())),
    *scoped(Probe("POST", "/api/v1/notifications/{notification_id}/retry", may(*WRITE))),
    Probe("GET", "/api/v1/notify/channels", may()),
    Probe("POST", "/api/v1/notify/channels", may(*WRITE, ok=201),
          body={"name": "matrix-robot", "kind": "wecom", "config": {"url": "http://127.0.0.1:9/hook"}}),
    Probe("PATCH", "/api/v1/notify/channels/{name}", may(*WRITE), body={"enabled": True},
          params={"name": "channel"}),
    *lists("/api/v1/notify/subscriptions"),
    *scoped(Probe("POST", "/api/v1/notify/subscriptions", may(*WRITE, "secops", "dept", ok=201),
                  body={"channel": "matrix-mail", "unit": "{unit}", "events": "security.duty.*",
                        "address": "duty@example.gov.cn", "name": "值班联系人"})),
    *scoped(Probe("DELETE", "/api/v1/notify/subscriptions/{subscription_id}", may(*WRITE, "secops", "dept",
                                                                                   ok=204))),
    Probe("GET", "/api/v1/notify/templates", may(dept=403)),
    Probe("PUT", "/api/v1/notify/templates/{kind}", may(*WRITE), body={"subject": "【回收通知】$unit_name $server"}),
    # ------------------------------------------------------------ alerts and the block list
    Probe("POST", "/api/v1/security/alerts", may(*TRIAGE, ok=202),
          body={"source": "态势感知", "source_ref": "evt-new", "title": "暴力破解", "severity": "high",
                "src_ip": "203.0.113.10"}),
    # A department reads the alerts on its own assets (read-only).
    *lists("/api/v1/security/alerts", unit_filter=False),
    *scoped(Probe("GET", "/api/v1/security/alerts/{alert_id}", may())),
    Probe("POST", "/api/v1/security/alerts/{alert_id}/verdict", may(*TRIAGE), body={"verdict": "false_positive"}),
    Probe("POST", "/api/v1/security/alerts/{alert_id}/steps/{step}", may(*TRIAGE),
          body={"status": "done", "evidence": "防火墙已封禁"}, params={"alert_id": "attack"}),
    Probe("POST", "/api/v1/security/alerts/{alert_id}/close", may(*TRIAGE), params={"alert_id": "judged"}),
    Probe("POST", "/api/v1/security/blocklist", may(*TRIAGE, ok=201), body={"ip": "203.0.113.11", "reason": "扫描"}),
    # ------------------------------------------------------------ incidents
    *scoped(Probe("POST", "/api/v1/security/alerts/{alert_id}/incident", may(*TRIAGE, ok=201),
                  body={"level": "general"}, params={"alert_id": "new_attack"})),
    Probe("GET", "/api/v1/security/incidents", may()),
    *scoped(Probe("GET", "/api/v1/security/incidents/{incident_id}", may())),
    *scoped(Probe("POST", "/api/v1/security/incidents/{incident_id}/reports", may(*TRIAGE, ok=201),
                  body={"recipient": "省委网信办", "content": "首报"})),
    *scoped(Probe("POST", "/api/v1/security/incidents/{incident_id}/steps/{step}", may(*TRIAGE),
                  body={"note": "已通知", "owner": "王芳"})),
    Probe("GET", "/api/v1/security/blocklist", may(dept=403), media="text/plain"),
    Probe("GET", "/api/v1/security/blocklist", may(dept=403), query="?format=txt", media="text/plain"),
    Probe("GET", "/api/v1/security/blocklist", may(dept=403), query="?format=csv", media="text/csv"),
    # ------------------------------------------------------------ duty
    Probe("POST", "/api/v1/security/duty/periods", may(*SECURITY, ok=201),
          body={"name": "国庆值守", "kind": "holiday", "starts_at": "2027-10-01T00:00:00+08:00",
                "ends_at": "2027-10-08T00:00:00+08:00", "report_times": ["09:00", "17:00"]}),
    Probe("GET", "/api/v1/security/duty/periods", may()),
    Probe("GET", "/api/v1/security/duty/periods", may(), query="?active=true"),
    Probe("GET", "/api/v1/security/duty/periods/{period_id}", may()),
    Probe("POST", "/api/v1/security/duty/periods/{period_id}/shifts", may(*SECURITY, ok=201),
          body={"starts_at": "{next_shift}", "ends_at": "{next_shift_ends}", "officer": "周夜班"}),
    Probe("GET", "/api/v1/security/duty/periods/{period_id}/shifts", may()),
    Probe("POST", "/api/v1/security/duty/shifts/{shift_id}/check-in", may(*TRIAGE), body={"handover_note": "无异常"}),
    Probe("GET", "/api/v1/security/duty/on-shift", may()),
    Probe("GET", "/api/v1/security/duty/periods/{period_id}/reports", may()),
    *scoped(Probe("POST", "/api/v1/security/duty/periods/{period_id}/reports", may(*TRIAGE, "dept", ok=201),
                  body={"zero": True, "unit_code": "{unit}"})),
    Probe("GET", "/api/v1/security/duty/missing", may()),
    # ------------------------------------------------------------ drills
    Probe("POST", "/api/v1/security/drills", may(*SECURITY, ok=201),
          body={"name": "专项演练", "organiser": "市委网信办", "starts_at": "2099-01-01T00:00:00+08:00",
                "ends_at": "2099-01-10T00:00:00+08:00", "units": ["990100-D01"]}),
    Probe("GET", "/api/v1/security/drills", may()),
    Probe("GET", "/api/v1/security/drills/templates", may()),
    Probe("POST", "/api/v1/security/drills/templates", may(*SECURITY, ok=201),
          body={"name": "holiday", "title": "节假日安全保障（本市）",
                "items": [{"key": "duty-roster", "title": "值班表", "phase": "prepare", "days": -3}]}),
    Probe("POST", "/api/v1/security/drills/{drill_id}/items", may(*SECURITY, ok=201),
          body={"key": "briefing", "title": "护网动员部署会", "phase": "prepare", "days": -1}),
    Probe("POST", "/api/v1/security/drills/{drill_id}/phase/{phase}", may(*SECURITY),
          params={"drill_id": "ready_drill"}),
    Probe("GET", "/api/v1/security/drills/{drill_id}/progress", may()),
    Probe("GET", "/api/v1/security/drills/{drill_id}/items", may()),
    *scoped(Probe("GET", "/api/v1/security/drills/{drill_id}/items", may(), query="?unit={unit}",
                  label="unit filter")),
    *scoped(Probe("PATCH", "/api/v1/security/drills/{drill_id}/items/{item_id}", may(*SECURITY, "dept"),
                  body={"status": "in_progress"})),
    *scoped(Probe("POST", "/api/v1/security/drills/{drill_id}/items/{item_id}/waive", may(*SECURITY),
                  body={"reason": "已纳入市级统一台账"}, params={"item_id": "waivable_item"})),
    *scoped(Probe("POST", "/api/v1/security/drills/{drill_id}/items/{item_id}/verify", may(*SECURITY),
                  params={"item_id": "done_item"})),
    Probe("GET", "/api/v1/security/drills/{drill_id}/summary", may(), media="text/html"),
    Probe("GET", "/api/v1/security/drills/{drill_id}/summary", may(), query="?format=json"),
    Probe("GET", "/api/v1/security/drills/{drill_id}/summary", may(), query="?format=xlsx",
          media="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    # ------------------------------------------------------------ audit and jobs
    Probe("GET", "/api/v1/audit", may("admin", "auditor")),
    Probe("GET", "/api/v1/jobs", may(), dept_check=_jobs_only_own),
    *scoped(Probe("GET", "/api/v1/jobs/{job_id}", may())),
    *scoped(Probe("POST", "/api/v1/jobs/{job_id}/cancel", may(*WRITE, "secops"))),
]


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


def _url(probe: Probe, names: dict[str, str]) -> str:
    values = {param: names[probe.params.get(param, key)] for param, key in PARAM_KEYS.items()
              if probe.params.get(param, key) in names}
    return probe.route.format(**values) + _fill(probe.query, names)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _no_other_unit_in(text: str, body: Any, world: World) -> None:
    """Not one code or name of a unit outside the department's subtree, anywhere in what it was given."""
    if body is None:
        leaked = {name for name in world.foreign if name in text}
    else:
        leaked = {s for s in _strings(body) for name in world.foreign if s == name or (len(name) > 3 and name in s)}
    assert not leaked, leaked


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    return {(method, context.path) for context in iter_route_contexts(app.routes)
            for method in (context.methods or {"GET"}) - {"HEAD"} if context.path is not None}


def test_every_route_is_in_the_matrix() -> None:
    served = _routes(create_app())
    tabled = {(probe.method, probe.route) for probe in PROBES}
    assert served - tabled == set(), "routes the app serves without a row in the matrix"
    assert tabled - served == set(), "rows in the matrix for routes the app does not serve"


CASES = [(probe, role) for probe in PROBES for role in ROLES]


@pytest.mark.parametrize(("probe", "role"), CASES, ids=[f"{probe.name}-{role}" for probe, role in CASES])
def test_matrix(world: tuple[World, Connection], shared_client: TestClient, probe_session: Session, probe: Probe,
                role: str) -> None:
    built, _ = world
    names = built.own if probe.target == "own" else built.other
    headers = {"Authorization": f"Bearer {built.tokens[role]}"} if role != "anonymous" else {}
    body = _fill(probe.body, names)
    if probe.route == "/metrics":
        # A scrape reads the database from a session factory of its own app: a fresh one, never a background read.
        with TestClient(_app()) as client:
            response = client.request(probe.method, _url(probe, names), json=body, headers=headers)
    else:
        response = shared_client.request(probe.method, _url(probe, names), json=body, headers=headers)
    assert response.status_code == probe.expect[role], response.text[:500]
    content_type = response.headers.get("content-type", "")
    if response.status_code >= 400:
        assert content_type == "application/problem+json"
        return
    if probe.media is not None:
        assert content_type.startswith(probe.media), content_type
    if role not in DEPARTMENT_ROLES or probe.expect["anonymous"] == 200:
        return  # what needs no token does not depend on whose the token is (the network guards /metrics)
    data = json.loads(response.text) if content_type.startswith("application/json") else None
    _no_other_unit_in(response.text, data, built)
    if probe.dept_check is not None:
        probe.dept_check(data, built)


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer cct_wrong", "Basic YWRtaW46YWRtaW4="])
def test_missing_or_bad_token_is_401(shared_client: TestClient, probe_session: Session, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = shared_client.get("/api/v1/units", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["type"].endswith("/not-authenticated")


def test_revoked_token_is_401(world: tuple[World, Connection], shared_client: TestClient,
                              probe_session: Session) -> None:
    from cloudctl.org.service import list_tokens, revoke_token

    built, _ = world
    headers = {"Authorization": f"Bearer {built.tokens['ops']}"}
    assert shared_client.get("/api/v1/me", headers=headers).status_code == 200
    token = next(t for t in list_tokens(probe_session, ADMIN, username="ops-user"))
    revoke_token(probe_session, ADMIN, str(token.id))
    probe_session.commit()
    assert shared_client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_department_screen_counts_its_own_subtree(world: tuple[World, Connection], shared_client: TestClient,
                                                    probe_session: Session) -> None:
    built, _ = world
    screens = {role: shared_client.get("/api/v1/screen/summary",
                                       headers={"Authorization": f"Bearer {built.tokens[role]}"}).json()
               for role in ("admin", "dept")}
    city, dept = screens["admin"], screens["dept"]
    assert (city["unit"], dept["unit"], dept["unit_name"]) == (None, "990100-D01", "市公安局")
    # The city sees both departments' figures, the department its own: of each, one of two.
    assert (city["requests_pending"], dept["requests_pending"]) == (2, 1)
    assert city["violations_open"] == 2 * dept["violations_open"] > 0
    assert city["reclaim"]["recommendations"] > dept["reclaim"]["recommendations"] > 0
    assert {u["unit"] for u in city["security"]["units"]} == {"990100-D01", "990100-D02"}
    assert {u["unit"] for u in dept["security"]["units"]} == {"990100-D01"}
    assert city["security"]["drill"]["items"] == 2 * dept["security"]["drill"]["items"] > 0
    assert city["security"]["on_shift"]["officer"] == "王值班"
    assert city["clouds"]
    assert city["security"]["blocked_24h"] == 1
    assert (dept["clouds"], dept["security"]["blocked_24h"], dept["security"]["on_shift"]) == (None, None, None)
    assert dept["jobs_failed_24h"] == 0
    assert dept["security"]["duty_period"] == "护网值守"
