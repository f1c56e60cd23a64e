"""The extranet over HTTP: IP applications with their commitment, violations scoped to the department."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloudctl.core.auth import Role
from cloudctl.core.models import utcnow
from cloudctl.extranet.devices import ArpEntry, DeviceTables, MacEntry
from cloudctl.extranet.models import ArpObservation, NetworkDevice, PrefixStatus, Zone
from cloudctl.extranet.schemas import AddressCreate, AggregateCreate, LinkCreate, PrefixCreate
from cloudctl.extranet.service import access, collection, compliance, ipam
from cloudctl.org import service as org_service
from cloudctl.org.models import Unit
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity, make_user

APPLY = {"zone": "public", "prefix_length": 28, "purpose": "视频监控终端接入", "commitment": {"signer": "张伟",
                                                                                        "accepted": True}}


@pytest.fixture
def plan(session: Session, city: MiniCity) -> MiniCity:
    """Both departments hold a block; 市公安局's switch shows an unregistered terminal and a hub."""
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.0.0/14", zone=Zone.PUBLIC,
                                                    status=PrefixStatus.CONTAINER))
    for code, block in (("990100-D01", "10.64.1.0/24"), ("990100-D02", "10.64.2.0/24")):
        ipam.create_prefix(session, ADMIN, PrefixCreate(prefix=block, zone=Zone.PUBLIC, unit_code=code, vlan=10))
        access.create_link(session, ADMIN, LinkCreate(unit_code=code, carrier="中国电信", line_type="MSTP",
                                                      bandwidth_mbps=100))
    ipam.create_address(session, ADMIN, AddressCreate(address="10.64.2.10", mac="02:00:00:00:02:10"))
    units = {u.code: u for u in session.scalars(select(Unit))}
    now = utcnow()
    for code, tables in (
        ("990100-D01", DeviceTables("d01-sw1", arp=[ArpEntry("10.64.1.77", "02:00:00:00:01:77", "Vlanif10", 10)],
                                    mac=[MacEntry(f"02:00:00:00:09:0{i}", 10, "GigabitEthernet0/0/3", "dynamic")
                                         for i in range(6)])),
        ("990100-D02", DeviceTables("d02-sw1", arp=[ArpEntry("10.64.2.10", "02:00:00:00:02:99", "Vlanif10", 10)],
                                    mac=[])),
    ):
        device = NetworkDevice(name=tables.device, host="127.0.0.1", device_type="huawei_vrp", role="access",
                               unit_id=units[code].id, zone=Zone.PUBLIC)
        session.add(device)
        session.flush()
        collection.store_tables(session, device, tables, now - timedelta(minutes=5))
    compliance.check(session, ADMIN)
    session.commit()
    return city


def test_an_application_needs_its_commitment(client: TestClient, plan: MiniCity) -> None:
    refused = client.post("/api/v1/extranet/ip-applications", headers=auth(plan, "dept"),
                          json={**APPLY, "commitment": {"signer": "张伟", "accepted": False}})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "commitment.accepted"
    unsigned = client.post("/api/v1/extranet/ip-applications", headers=auth(plan, "dept"),
                           json={k: v for k, v in APPLY.items() if k != "commitment"})
    assert unsigned.status_code == 422
    assert unsigned.json()["errors"][0]["field"] == "commitment"


def test_apply_approve_once(client: TestClient, plan: MiniCity) -> None:
    created = client.post("/api/v1/extranet/ip-applications", headers=auth(plan, "dept"), json=APPLY)
    assert created.status_code == 201, created.text
    app_id = created.json()["id"]
    assert created.json()["unit_code"] == "990100-D01"
    by_dept = client.post(f"/api/v1/extranet/ip-applications/{app_id}/approve", headers=auth(plan, "dept"))
    assert by_dept.status_code == 403
    approved = client.post(f"/api/v1/extranet/ip-applications/{app_id}/approve", headers=auth(plan, "ops"))
    assert approved.status_code == 200, approved.text
    assert approved.json()["allocated"] == ["10.64.0.0/28"]
    again = client.post(f"/api/v1/extranet/ip-applications/{app_id}/approve", headers=auth(plan, "ops"))
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "status"
    other = client.post("/api/v1/extranet/ip-applications", headers=auth(plan, "dept"),
                        json={**APPLY, "unit_code": "990100-D02"})
    assert other.status_code == 404  # another unit is not found, never forbidden


def test_a_fresh_approval_is_not_flagged_by_the_next_check(client: TestClient, plan: MiniCity,
                                                           session: Session) -> None:
    # The switches have been read for sixty days; the block is allocated now.
    session.execute(update(ArpObservation).values(first_seen=utcnow() - timedelta(days=60)))
    session.commit()
    created = client.post("/api/v1/extranet/ip-applications", headers=auth(plan, "dept"), json=APPLY).json()
    approved = client.post(f"/api/v1/extranet/ip-applications/{created['id']}/approve", headers=auth(plan, "ops"))
    block = approved.json()["allocated"][0]
    compliance.check(session, ADMIN)
    session.commit()
    quiet = client.get("/api/v1/extranet/violations", params={"rule": 11}, headers=auth(plan, "dept")).json()
    assert block not in {v["subject"] for v in quiet["items"]}


def test_violations_are_scoped_to_the_department(client: TestClient, plan: MiniCity) -> None:
    everything = client.get("/api/v1/extranet/violations", headers=auth(plan, "secops")).json()
    found = {(v["rule"], v["subject"], v["unit_code"]) for v in everything["items"]}
    assert (3, "10.64.1.77", "990100-D01") in found  # no application behind it
    assert (6, "d01-sw1:GigabitEthernet0/0/3", "990100-D01") in found  # a hub on the port
    assert (5, "10.64.2.10", "990100-D02") in found  # its registered terminal replaced
    mine = client.get("/api/v1/extranet/violations", headers=auth(plan, "dept")).json()
    assert {v["unit_code"] for v in mine["items"]} == {"990100-D01"}
    other = next(v for v in everything["items"] if v["unit_code"] == "990100-D02")
    assert client.get(f"/api/v1/extranet/violations/{other['id']}", headers=auth(plan, "dept")).status_code == 404
    bad = client.get("/api/v1/extranet/violations?rule=13", headers=auth(plan, "ops"))
    assert bad.status_code == 422
    patched = client.patch(f"/api/v1/extranet/violations/{other['id']}", headers=auth(plan, "secops"),
                           json={"status": "rectifying", "note": "已通知人社局核查"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "rectifying"
    assert client.patch(f"/api/v1/extranet/violations/{other['id']}", headers=auth(plan, "duty"),
                        json={"status": "resolved"}).status_code == 403


def test_access_rate_and_scorecard(client: TestClient, plan: MiniCity, session: Session) -> None:
    rate = {r["scope"]: r for r in client.get("/api/v1/extranet/access-rate", headers=auth(plan, "ops")).json()}
    assert rate["horizontal"]["connected"] == 2
    assert rate["horizontal"]["required"] == 3  # the two departments and the police traffic unit
    assert rate["horizontal"]["missing"] == ["990100-M001"]
    mine = {r["scope"]: r for r in client.get("/api/v1/extranet/access-rate", headers=auth(plan, "dept")).json()}
    assert mine["horizontal"]["required"] == 2
    # No county, town or village under 市公安局: its vertical rate is not applicable, never 100 %.
    assert (mine["vertical"]["required"], mine["vertical"]["rate"]) == (0, None)
    assert "not applicable" in mine["vertical"]["rate_reason"]
    assert mine["horizontal"]["missing_names"] == ["市公安局交通警察支队"]
    make_user(session, "dept-east", Role.DEPT, "990102")
    _, secret = org_service.create_token(session, ADMIN, "dept-east")
    session.commit()
    county = {r["scope"]: r for r in client.get("/api/v1/extranet/access-rate",
                                                headers={"Authorization": f"Bearer {secret}"}).json()}
    assert (county["horizontal"]["required"], county["horizontal"]["rate"]) == (0, None)
    assert (county["vertical"]["required"], county["990102"]["required"]) == (3, 3)
    card = client.get("/api/v1/extranet/scorecard", headers=auth(plan, "dept")).json()
    assert {r["unit_code"] for r in card} == {"990100-D01", "990100-M001"}
