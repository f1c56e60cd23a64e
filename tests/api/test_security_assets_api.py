"""Assets over HTTP: linked to their cloud servers, a department's own only, the MLPS level set by secops."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cloudctl.security.scanners.base import ScanFinding, ScanReport
from cloudctl.security.service import findings
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity, make_server

ASSETS = "/api/v1/security/assets"


def _scan(session: Session, city: MiniCity) -> dict[str, int]:
    servers = {name: make_server(session, unit, city.systems[system], name=name).id
               for name, unit, system in (("d01-web", "990100-D01", "own"), ("d02-db", "990100-D02", "other"))}
    hosts = ("10.192.0.10", "10.192.0.11")
    found = tuple(ScanFinding(scanner="nessus", plugin_id="57608", title="SMB Signing not required",
                              severity="medium", ip=ip, port=445, protocol="tcp", service="cifs") for ip in hosts)
    report = ScanReport(scanner="nessus", started_at=None, finished_at=None, hosts=hosts, findings=found,
                        file_sha256="e" * 64)
    findings.store_report(session, ADMIN, report, scope="2026Q4", source="q4.nessus")
    session.commit()
    return servers


def test_assets_carry_their_server_system_and_level_and_a_department_sees_its_own(
        client: TestClient, city: MiniCity, session: Session) -> None:
    servers = _scan(session, city)
    page = client.get(ASSETS, headers=auth(city, "secops"))
    assert page.status_code == 200, page.text
    assert page.json()["total"] == 2
    web = next(a for a in page.json()["items"] if a["ip"] == "10.192.0.10")
    assert (web["server_id"], web["server_name"], web["business_system_id"], web["business_system"]) == (
        servers["d01-web"], "d01-web", city.systems["own"], "城市视频监控联网平台")
    assert (web["unit_code"], web["mlps_level"], web["mlps_level_source"]) == ("990100-D01", 3, "system")

    mine = client.get(ASSETS, headers=auth(city, "dept")).json()
    assert [a["ip"] for a in mine["items"]] == ["10.192.0.10"]
    other = next(a for a in page.json()["items"] if a["ip"] == "10.192.0.11")
    assert client.get(f"{ASSETS}/{other['id']}", headers=auth(city, "dept")).status_code == 404
    assert client.get(ASSETS, params={"business_system": city.systems["other"]},
                      headers=auth(city, "auditor")).json()["total"] == 1

    graded = client.put(f"{ASSETS}/{web['id']}/mlps-level", headers=auth(city, "secops"),
                        json={"mlps_level": 2, "reason": "测试环境主机，按二级管理"})
    assert graded.status_code == 200, graded.text
    assert (graded.json()["mlps_level"], graded.json()["mlps_level_source"]) == (2, "manual")
    assert client.get("/api/v1/security/findings", params={"mlps_level": 2},
                      headers=auth(city, "secops")).json()["total"] == 1
    refused = client.put(f"{ASSETS}/{web['id']}/mlps-level", headers=auth(city, "dept"),
                         json={"mlps_level": 3, "reason": "我们是三级系统"})
    assert refused.status_code == 403
    bad = client.put(f"{ASSETS}/{web['id']}/mlps-level", headers=auth(city, "secops"),
                     json={"mlps_level": 5, "reason": "五级不存在"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "mlps_level"


def test_servers_show_and_are_found_by_their_addresses(client: TestClient, city: MiniCity, session: Session) -> None:
    servers = _scan(session, city)
    found = client.get("/api/v1/servers", params={"ip": "10.192.0.11"}, headers=auth(city, "ops")).json()
    assert [s["id"] for s in found["items"]] == [servers["d02-db"]]
    assert found["items"][0]["addresses"] == [{"ip": "10.192.0.11", "kind": "fixed"}]
    assert client.get("/api/v1/servers", params={"ip": "10.192.0.11"},
                      headers=auth(city, "dept")).json()["total"] == 0
