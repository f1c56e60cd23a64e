"""The access rate (接入率) per level and county, counted in one GROUP BY on both databases."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.auth import Role
from cloudctl.core.models import utcnow
from cloudctl.extranet.models import NetworkDevice, Zone
from cloudctl.extranet.schemas import LinkCreate
from cloudctl.extranet.service import access
from cloudctl.org.models import Unit, UnitKind
from cloudctl.org.service import principal_for_user
from tests.factories import ADMIN, build_mini_city, make_unit, make_user


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

    # A department sees its own subtree only (市公安局 and its traffic unit); it has no vertical access to count,
    # and an empty denominator is "not applicable", never 100 %.
    mine = {r.scope: r for r in access.access_rate(session, city.principals["dept"])}
    assert {k: (r.required, r.connected, r.rate) for k, r in mine.items()} == {
        "horizontal": (2, 1, 0.5), "vertical": (0, 0, None)}
    assert mine["vertical"].rate_reason == access.NOT_APPLICABLE
    assert mine["horizontal"].rate_reason is None
    assert mine["horizontal"].missing_names == ["市公安局交通警察支队"]
    # A county sees its own subtree's vertical rate and its own row; horizontal access is not its to count.
    county = principal_for_user(make_user(session, "dept-east", Role.DEPT, "990102"))
    theirs = {r.scope: (r.required, r.connected, r.rate) for r in access.access_rate(session, county)}
    two_of_three = (3, 2, round(2 / 3, 4))
    assert theirs == {"horizontal": (0, 0, None), "vertical": two_of_three, "990102": two_of_three}
