"""Clouds, flavors, capacity and quotas over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.api.conftest import auth
from tests.factories import MiniCity, make_server


def test_clouds_and_flavors(client: TestClient, city: MiniCity) -> None:
    clouds = client.get("/api/v1/clouds", headers=auth(city, "dept")).json()
    assert [(c["name"], c["kind"], c["display_name"]) for c in clouds] == [("test-cloud", "simulator", "测试政务云")]
    flavors = client.get("/api/v1/clouds/test-cloud/flavors", headers=auth(city, "dept")).json()
    assert flavors == [{"name": "c2m4", "vcpus": 2, "ram_gib": 4.0, "disk_gib": 40},
                       {"name": "c4m8", "vcpus": 4, "ram_gib": 8.0, "disk_gib": 40}]
    missing = client.get("/api/v1/clouds/nowhere/flavors", headers=auth(city, "dept"))
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["field"] == "cloud"


def test_dept_sees_its_own_quota_only(client: TestClient, city: MiniCity) -> None:
    page = client.get("/api/v1/quotas", headers=auth(city, "dept")).json()
    assert page["total"] == 1
    quota = page["items"][0]
    assert (quota["unit_code"], quota["cloud"], quota["limit_vcpus"], quota["limit_ram_gib"]) == (
        "990100-D01", "test-cloud", 32, 64)
    assert client.get("/api/v1/quotas", headers=auth(city, "ops")).json()["total"] == 2


def test_set_quota_and_refusals(client: TestClient, city: MiniCity) -> None:
    ops = auth(city, "ops")
    done = client.put("/api/v1/quotas/990100-D01/test-cloud", json={"vcpus": 48, "ram_gib": 96}, headers=ops)
    assert done.status_code == 200
    assert (done.json()["limit_vcpus"], done.json()["limit_ram_gib"]) == (48, 96)
    held = client.put("/api/v1/quotas/990100-D01/test-cloud", json={"ram_gib": 0}, headers=ops)
    assert held.status_code == 200  # nothing used yet
    old = client.put("/api/v1/quotas/990100-D01/test-cloud", json={"ram_gb": 96}, headers=ops)
    assert old.status_code == 422  # one name, one unit: GiB
    assert old.json()["errors"][0]["field"] == "ram_gb"
    negative = client.put("/api/v1/quotas/990100-D01/test-cloud", json={"vcpus": -1}, headers=ops)
    assert negative.status_code == 422
    assert negative.json()["errors"][0]["field"] == "vcpus"
    empty = client.put("/api/v1/quotas/990100-D01/test-cloud", json={}, headers=ops)
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "limits"
    capacity = client.get("/api/v1/clouds/test-cloud/capacity", headers=ops).json()
    vcpus = next(r for r in capacity if r["resource"] == "vcpus")
    assert (vcpus["capacity"], vcpus["allocated"]) == (128, 48 + 32)


def test_resize_over_http(client: TestClient, city: MiniCity, session: Session) -> None:
    server = make_server(session, "990100-D01", city.systems["own"], "c4m8")
    session.commit()
    done = client.post(f"/api/v1/servers/{server.id}/resize", json={"flavor": "c2m4"}, headers=auth(city, "ops"))
    assert done.status_code == 200, done.text
    assert (done.json()["flavor"], done.json()["status"]) == ("c2m4", "ACTIVE")
    unknown = client.post(f"/api/v1/servers/{server.id}/resize", json={"flavor": "c99m1"}, headers=auth(city, "ops"))
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert unknown.json()["errors"][0]["field"] == "flavor"
    # A department resizes its own VMs inside its own quota; another unit's server is not found.
    own = client.post(f"/api/v1/servers/{server.id}/resize", json={"flavor": "c4m8"}, headers=auth(city, "dept"))
    assert (own.status_code, own.json()["flavor"]) == (200, "c4m8")
    other = make_server(session, "990100-D02", city.systems["other"], "c2m4")
    session.commit()
    hidden = client.post(f"/api/v1/servers/{other.id}/resize", json={"flavor": "c4m8"}, headers=auth(city, "dept"))
    assert hidden.status_code == 404


def test_a_limit_below_use_is_refused_in_gib(client: TestClient, city: MiniCity, session: Session) -> None:
    make_server(session, "990100-D01", city.systems["own"], "c4m8")
    session.commit()
    refused = client.put("/api/v1/quotas/990100-D01/test-cloud", json={"ram_gib": 4}, headers=auth(city, "ops"))
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["field"] == "ram_gib"
    assert "8 GiB" in refused.json()["detail"]
    assert "MiB" not in refused.json()["detail"]
    quota = client.get("/api/v1/quotas", headers=auth(city, "dept")).json()["items"][0]
    assert (quota["used_ram_gib"], quota["used_disk_gib"]) == (8.0, 40)
    assert not any(key.endswith(("_mb", "_gb")) for key in quota)


def test_volume_quotas_per_type(client: TestClient, city: MiniCity, session: Session) -> None:
    from tests.factories import simulator_of

    url = "/api/v1/volume-quotas/990100-D01/test-cloud"
    ok = client.put(f"{url}/ssd", json={"limit_gib": 2000}, headers=auth(city, "ops"))
    assert ok.status_code == 200, ok.text
    assert {k: ok.json()[k] for k in ("unit_code", "cloud", "volume_type", "limit_gib", "used_gib")} == {
        "unit_code": "990100-D01", "cloud": "test-cloud", "volume_type": "ssd", "limit_gib": 2000, "used_gib": 0}
    client.put("/api/v1/volume-quotas/990100-D02/test-cloud/hdd", json={"limit_gib": 100}, headers=auth(city, "ops"))
    bad_type = client.put(f"{url}/nvme-gold", json={"limit_gib": 10}, headers=auth(city, "ops"))
    assert bad_type.status_code == 422
    assert bad_type.json()["errors"][0]["field"] == "volume_type"
    negative = client.put(f"{url}/ssd", json={"limit_gib": -5}, headers=auth(city, "ops"))
    assert negative.status_code == 422
    assert "limit_gib" in negative.json()["errors"][0]["field"]
    by_dept = client.put(f"{url}/ssd", json={"limit_gib": 5000}, headers=auth(city, "dept"))
    assert by_dept.status_code == 403
    mine = client.get("/api/v1/volume-quotas", headers=auth(city, "dept")).json()
    assert [(q["unit_code"], q["volume_type"], q["limit_gib"]) for q in mine["items"]] == [("990100-D01", "ssd", 2000)]
    everyone = client.get("/api/v1/volume-quotas", headers=auth(city, "ops")).json()
    assert everyone["total"] == 2
    hidden = client.get("/api/v1/volume-quotas?unit=990100-D02", headers=auth(city, "dept"))
    assert hidden.status_code == 404
    # Pushed: the cloud holds the limit.
    from sqlalchemy import select

    from cloudctl.compute.models import UnitProject
    from cloudctl.org.models import Unit

    project = session.scalars(select(UnitProject.project_id).join(Unit, Unit.id == UnitProject.unit_id)
                              .where(Unit.code == "990100-D01")).one()
    limits = {q.volume_type: q.limit_gib for q in simulator_of(session).get_volume_quotas(project)}
    assert limits == {"ssd": 2000, "hdd": None}
