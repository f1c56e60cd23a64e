"""Simulated network devices: the embedded default's stand-in for the city's switches.

The demo city writes what each device's ARP and MAC tables hold into the simulator's store (as
a real network keeps its state in its devices), and :class:`SimulatedCollector` reads them back
through the same :class:`~cloudctl.extranet.devices.DeviceCollector` surface the netmiko collector
has. A device marked unreachable fails as an unanswered SSH session would. The test suite serves
the same tables over real SSH from its device simulator, so both paths see the same wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import JSON, String, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from cloudctl.compute.providers.simulator import SimBase, SimulatorStore
from cloudctl.core.errors import ProviderError
from cloudctl.extranet.devices import ArpEntry, Device, DeviceTables, MacEntry

__all__ = ["SimNetworkDevice", "SimulatedCollector", "load_tables", "store_tables"]


class SimNetworkDevice(SimBase):
    """One simulated device's vendor and tables (rows as JSON), and whether it answers."""

    __tablename__ = "sim_network_devices"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor: Mapped[str] = mapped_column(String(32))
    reachable: Mapped[bool] = mapped_column(default=True)
    arp: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    mac: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


def _ensure(store: SimulatorStore) -> None:
    SimBase.metadata.create_all(store.engine, tables=[SimNetworkDevice.__table__])  # type: ignore[list-item]


def store_tables(store: SimulatorStore, devices: Iterable[tuple[str, str, bool, DeviceTables]], *,
                 replace: bool = True) -> int:
    """Write (name, vendor, reachable, tables) of simulated devices; with ``replace``, forget all others."""
    _ensure(store)
    rows: dict[str, dict[str, Any]] = {}
    count = 0
    for name, vendor, reachable, tables in devices:
        # The last write of a name wins, as it would written one at a time.
        rows[name] = {"name": name, "vendor": vendor, "reachable": reachable,
                      "arp": [_row(e, _ARP_FIELDS) for e in tables.arp],
                      "mac": [_row(e, _MAC_FIELDS) for e in tables.mac]}
        count += 1
    names = list(rows)
    with store.session() as s:
        if replace:
            s.execute(delete(SimNetworkDevice))
        else:
            for start in range(0, len(names), 500):
                s.execute(delete(SimNetworkDevice).where(SimNetworkDevice.name.in_(names[start:start + 500])))
        if rows:
            s.execute(insert(SimNetworkDevice), list(rows.values()))
    return count


_ARP_FIELDS = tuple(f.name for f in fields(ArpEntry))
_MAC_FIELDS = tuple(f.name for f in fields(MacEntry))


def _row(entry: ArpEntry | MacEntry, names: tuple[str, ...]) -> dict[str, Any]:
    # dataclasses.asdict, without its deep copy: the fields are plain values.
    return {name: getattr(entry, name) for name in names}


def load_tables(store: SimulatorStore, names: Sequence[str] | None = None) -> dict[str, tuple[str, bool, DeviceTables]]:
    """name → (vendor, reachable, tables) of the simulated devices (all, or these)."""
    _ensure(store)
    with store.session() as s:
        query = select(SimNetworkDevice)
        if names is not None:
            query = query.where(SimNetworkDevice.name.in_(list(names)))
        return {row.name: (row.vendor, row.reachable, DeviceTables(
            device=row.name, arp=[ArpEntry(**e) for e in row.arp], mac=[MacEntry(**e) for e in row.mac]))
            for row in s.scalars(query)}


class SimulatedCollector:
    """A DeviceCollector over the simulator's store: what the device would have answered."""

    def __init__(self, store: SimulatorStore) -> None:
        self.store = store

    def collect(self, device: Device) -> DeviceTables:
        found = load_tables(self.store, [device.name]).get(device.name)
        if found is None:
            raise ProviderError(f"{device.name} ({device.host}): no such simulated device", field="device")
        _, reachable, tables = found
        if not reachable:
            raise ProviderError(f"{device.name} ({device.host}): TCP connection to port {device.port} timed out",
                                field="device")
        return tables
