"""The access rate (接入率) per level and county, counted in one GROUP BY on both databases."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.models import utcnow
from cloudctl.extranet.models import NetworkDevice, Zone
from cloudctl.extranet.schemas import LinkCreate
from cloudctl.extranet.service import access
from cloudctl.org.models import Unit, UnitKind
from tests.factories import ADMIN, build_mini_city, make_unit


def _connect(session: Session, code: str, *, answered: bool = True) -> None:
    unit = session.scalars(select(Unit).where(Unit.code == code)).one()
    access.create_link(session, ADMIN, LinkCreate(unit_code=code, carrier="中国联通", line_type="MSTP",
                                                  bandwidth_mbps=50))
    session.add(NetworkDevice(name=f"{code}-sw1", host="127.0.0.1", device_type="huawei_vrp", role="access",
                              unit_id=unit.id, zone=Zone.PUBLIC, last_success_at=utcnow() if answered else None))
    session.flush()


def test_rate_per_level_and_county_with_the_missing_units(session: Session) -> None:
    city = build_mini_city(session)
    make_unit(session, "990103", "西山县", UnitKind.COUNTY, "990100")
    make_unit(session, "990103001", "石门镇", UnitKind.TOWN, "990103")
    for code in ("990100-D01", "990102", "990102001001", "990103"):
        _connect(session, code)
    _connect(session, "990103001", answered=False)  # a line on paper that carries nothing

    rows = {r.scope: r for r in access.access_rate(session, ADMIN)}
    assert list(rows)[:2] == ["horizontal", "vertical"]
    assert (rows["horizontal"].required, rows["horizontal"].connected) == (3, 1)
    assert rows["horizontal"].missing == ["990100-D02", "990100-M001"]
    assert (rows["vertical"].required, rows["vertical"].connected) == (5, 3)
    assert rows["vertical"].missing == ["990102001", "990103001"]
    east, west = rows["990102"], rows["990103"]
    assert (east.name, east.required, east.connected, east.missing) == ("东湖区", 3, 2, ["990102001"])
    assert (west.name, west.required, west.connected, west.missing) == ("西山县", 2, 1, ["990103001"])
    assert west.rate == 0.5

    counts = {r.scope: (r.required, r.connected, r.missing) for r in
              access.access_rate(session, ADMIN, with_missing=False)}
    assert counts["990102"] == (3, 2, [])  # the exporter's counts, without reading the missing units

    # A department sees its own subtree only (市公安局 and its traffic unit).
    mine = {r.scope: (r.required, r.connected) for r in access.access_rate(session, city.principals["dept"])}
    assert mine == {"horizontal": (2, 1), "vertical": (0, 0)}
