"""Server addresses on both databases: written when a server is recorded, replaced by a sync, searchable by IP."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning
from cloudctl.compute.models import AddressKind, ServerAddress
from cloudctl.compute.schemas import ServerPublic
from cloudctl.core.errors import InvalidInput
from tests.factories import ADMIN, MiniCity, build_mini_city, make_server, simulator_of


@pytest.fixture
def city(session: Session) -> MiniCity:
    return build_mini_city(session, with_cloud=True)


def test_recorded_servers_carry_their_addresses_and_a_sync_replaces_them(session: Session, city: MiniCity) -> None:
    first = make_server(session, "990100-D01", city.systems["own"], name="d01-web")
    second = make_server(session, "990100-D02", city.systems["other"], name="d02-db")
    assert [(a.ip, a.kind) for a in first.addresses] == [("10.192.0.10", AddressKind.FIXED)]
    assert [a.ip for a in second.addresses] == ["10.192.0.11"]

    sim = simulator_of(session)
    sim.add_floating_ip(first.provider_id, "59.110.8.21")
    sim.delete_server(second.provider_id)
    counts = provisioning.sync_servers(session, ADMIN, "test-cloud")
    assert (counts["servers"], counts["gone"]) == (1, 1)
    session.expire_all()
    assert [(a.ip, a.kind) for a in first.addresses] == [("10.192.0.10", AddressKind.FIXED),
                                                         ("59.110.8.21", AddressKind.FLOATING)]
    # The deleted server's address goes back to the cloud: no row claims it any more.
    assert second.status == "DELETED"
    assert second.addresses == []
    assert session.scalar(select(func.count()).select_from(ServerAddress)) == 2

    # A second sync with nothing changed rewrites nothing: the rows keep their ids.
    ids = [a.id for a in first.addresses]
    provisioning.sync_servers(session, ADMIN, "test-cloud")
    session.expire_all()
    assert [a.id for a in first.addresses] == ids

    public = ServerPublic.model_validate(first).model_dump(mode="json")
    assert public["addresses"] == [{"ip": "10.192.0.10", "kind": "fixed"}, {"ip": "59.110.8.21", "kind": "floating"}]


def test_servers_are_found_by_address_within_the_principals_scope(session: Session, city: MiniCity) -> None:
    mine = make_server(session, "990100-D01", city.systems["own"], name="d01-web")
    theirs = make_server(session, "990100-D02", city.systems["other"], name="d02-db")
    simulator_of(session).add_floating_ip(mine.provider_id, "2001:db8::21")
    provisioning.sync_servers(session, ADMIN, "test-cloud")
    rows, total = provisioning.list_servers(session, ADMIN, ip="10.192.0.11")
    assert (total, rows[0].id) == (1, theirs.id)
    # Any spelling of an IPv6 address finds it.
    assert provisioning.list_servers(session, ADMIN, ip="2001:DB8:0::21")[0][0].id == mine.id
    assert provisioning.list_servers(session, city.principals["dept"], ip="10.192.0.11") == ([], 0)
    with pytest.raises(InvalidInput) as caught:
        provisioning.list_servers(session, ADMIN, ip="10.192.0.300")
    assert caught.value.field == "ip"
