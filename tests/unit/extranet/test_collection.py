"""Storing what devices show: many devices at once end as one device at a time would, on both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.models import utcnow
from cloudctl.extranet.devices import ArpEntry, DeviceTables, MacEntry
from cloudctl.extranet.models import ArpObservation, MacObservation, NetworkDevice, Zone
from cloudctl.extranet.service.collection import store_collected, store_tables
from cloudctl.org.models import UnitKind
from tests.factories import make_unit

PORT = "GigabitEthernet0/0/{}"


def _tables(name: str, base: int) -> DeviceTables:
    return DeviceTables(device=name, arp=[
        ArpEntry(f"10.64.{base}.1", "02:00:00:00:00:01", "Vlanif10", 10, own=True),
        ArpEntry(f"10.64.{base}.20", "02:00:00:00:00:20", "Vlanif10", 10),
        ArpEntry(f"10.64.{base}.20", "02:00:00:00:00:20", "Vlanif30", 30),  # listed twice: one pair, the last VLAN
        ArpEntry("fe80::1", "02:00:00:00:00:99", "Vlanif10", 10),  # IPv6: not the plan's business
    ], mac=[MacEntry("02:00:00:00:00:20", 10, PORT.format(3), "dynamic"),
            MacEntry("02:00:00:00:00:20", 10, PORT.format(3), "static"),
            MacEntry("02:00:00:00:00:77", None, "XGigabitEthernet0/0/1", "dynamic")])


def _devices(session: Session, prefix: str) -> list[NetworkDevice]:
    unit = make_unit(session, f"990100-{prefix}", f"单位{prefix}", UnitKind.MUNICIPAL_UNIT, parent="990100")
    devices = [NetworkDevice(name=f"{prefix.lower()}-sw{i}", host=f"10.70.0.{i}", device_type="huawei_vrp",
                             role="access", unit_id=unit.id, zone=Zone.PUBLIC) for i in (1, 2)]
    session.add_all(devices)
    session.flush()
    return devices


def _observed(session: Session, devices: list[NetworkDevice]) -> tuple[list[tuple[object, ...]], ...]:
    order = {d.id: i for i, d in enumerate(devices)}
    arp = sorted((order[r.device_id], r.ip, r.mac, r.interface, r.vlan, r.first_seen, r.last_seen)
                 for r in session.scalars(select(ArpObservation).where(ArpObservation.device_id.in_(order))))
    mac = sorted((order[r.device_id], r.mac, r.vlan, r.port, r.kind, r.access_port, r.first_seen, r.last_seen)
                 for r in session.scalars(select(MacObservation).where(MacObservation.device_id.in_(order))))
    return arp, mac


def test_many_devices_at_once_store_what_one_at_a_time_stores(session: Session) -> None:
    before, now = utcnow() - timedelta(days=1), utcnow()
    make_unit(session, "990100", "临江市", UnitKind.CITY)
    alone, together = _devices(session, "M001"), _devices(session, "M002")
    # A day ago each device showed its tables; today the same and one more terminal.
    today = [DeviceTables(t.device, [*t.arp, ArpEntry("10.64.9.30", "02:00:00:00:00:30", "Vlanif10", 10)], t.mac)
             for t in (_tables("sw1", 1), _tables("sw2", 2))]
    added = []
    for device, tables in zip(alone, (_tables("sw1", 1), _tables("sw2", 2)), strict=True):
        added.append(store_tables(session, device, tables, before))
    for device, tables in zip(alone, today, strict=True):
        added.append(store_tables(session, device, tables, now))
    assert added == [(2, 2), (2, 2), (1, 0), (1, 0)]
    assert store_collected(session, [(d.id, t) for d, t in zip(together, (_tables("sw1", 1), _tables("sw2", 2)),
                                                                       strict=True)], before) == (4, 4)
    assert store_collected(session, [(d.id, t) for d, t in zip(together, today, strict=True)], now) == (2, 0)
    session.expire_all()
    assert _observed(session, together) == _observed(session, alone)
    arp, mac = _observed(session, together)
    # Known pairs keep their first sighting and take the new one; the pair listed twice took its last VLAN.
    assert (0, "10.64.1.20", "02:00:00:00:00:20", "Vlanif30", 30, before, now) in arp
    assert (0, "02:00:00:00:00:20", 10, PORT.format(3), "static", True, before, now) in mac
    assert (0, "02:00:00:00:00:77", 0, "XGigabitEthernet0/0/1", "dynamic", False, before, now) in mac
    assert all((d.last_attempt_at, d.last_success_at, d.last_error) == (now, now, None) for d in together + alone)
