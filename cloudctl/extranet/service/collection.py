"""Collection (终端地址采集): what every device's ARP and MAC tables show, kept with first and last seen.

The inventory (an Ansible-style YAML file named by ``extranet_inventory``) says which devices
to log into; without one, the embedded default collects from the simulated devices the demo city
planted. Each device is collected in its own session and stored in its own transaction, so a
device that fails is recorded as missing coverage and never costs the others their results.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloudctl.core import audit, jobs, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.bulk import insert_rows
from cloudctl.core.config import get_settings
from cloudctl.core.errors import InvalidInput, NotFound
from cloudctl.core.models import utcnow
from cloudctl.core.text import escape_control
from cloudctl.extranet.devices import COMMANDS, Device, DeviceCollector, DeviceTables, load_inventory
from cloudctl.extranet.models import ArpObservation, MacObservation, NetworkDevice
from cloudctl.org.models import Unit
from cloudctl.org.service import under

__all__ = ["COLLECT_JOB", "SKIPPED_KEPT", "is_uplink", "list_devices", "record_parse", "store_collected",
           "store_tables", "submit_collection", "sync_devices"]

COLLECT_JOB = "extranet.collect"
COLLECT_SHARD_JOB = "extranet.collect.shard"
# Ports that carry many MACs by design (uplinks, trunks, aggregations), by the vendors' own names for them.
_UPLINK = re.compile(r"^(eth-trunk|port-channel|po\d|bridge-aggregation|bagg|route-aggregation|xge|xgigabit|"
                     r"ten-?gigabit|te\d|10ge|25ge|40ge|100ge|fortygig|hundredgig|twentyfivegig)", re.IGNORECASE)


def is_uplink(port: str) -> bool:
    """A trunk or high-speed uplink rather than a port a terminal plugs into."""
    return bool(_UPLINK.match(port.strip()))


def sync_devices(session: Session, principal: Principal, devices: Sequence[Device]) -> dict[str, NetworkDevice]:
    """Bring the device rows in line with the inventory (names, addresses, types, owners); never credentials."""
    authorize(principal, "extranet.device:write")
    codes = {d.unit_code for d in devices}
    units = {u.code: u for u in session.scalars(select(Unit).where(Unit.code.in_(codes)))}
    rows = {r.name: r for r in session.scalars(select(NetworkDevice).where(
        NetworkDevice.name.in_([d.name for d in devices])))}
    for device in devices:
        unit = units.get(device.unit_code)
        if unit is None:
            raise InvalidInput(f"device {device.name}: no unit {device.unit_code!r}", field=f"hosts.{device.name}.unit")
        row = rows.get(device.name)
        if row is None:
            row = rows[device.name] = NetworkDevice(name=device.name, host=device.host,
                                                    device_type=device.device_type, role=device.role,
                                                    unit=unit, unit_id=unit.id)
            session.add(row)
        else:
            row.host, row.device_type, row.role, row.unit_id = device.host, device.device_type, device.role, unit.id
    session.flush()
    return rows


def store_tables(session: Session, device: NetworkDevice, tables: DeviceTables, now: datetime) -> tuple[int, int]:
    """Merge one device's tables into the observations: new pairs get first_seen, known ones a new last_seen."""
    return store_collected(session, [(device.id, tables)], now)


def store_collected(session: Session, collected: Sequence[tuple[int, DeviceTables]], now: datetime) -> tuple[int, int]:
    """:func:`store_tables` for many devices (by id) collected at ``now``: (new ARP pairs, new MAC entries).

    The devices' earlier observations are read in one query per table; what is new is written in one
    statement per table, in the order of the devices and their tables.
    """
    device_ids = sorted({device_id for device_id, _ in collected})
    arp: dict[tuple[int, int, str], ArpObservation] = {}
    macs: dict[tuple[int, str, int, str], MacObservation] = {}
    for start in range(0, len(device_ids), 500):
        chunk = device_ids[start:start + 500]
        arp.update(((r.device_id, r.value, r.mac), r) for r in session.scalars(
            select(ArpObservation).where(ArpObservation.device_id.in_(chunk))))
        macs.update(((r.device_id, r.mac, r.vlan, r.port), r) for r in session.scalars(
            select(MacObservation).where(MacObservation.device_id.in_(chunk))))
    new_arp: dict[tuple[int, int, str], list[Any]] = {}
    new_mac: dict[tuple[int, str, int, str], list[Any]] = {}
    for device_id, tables in collected:
        for entry in tables.arp:
            try:
                value = int(ipaddress.IPv4Address(entry.ip))
            except ValueError:
                continue  # an IPv6 neighbour or garbage in a table: not this plan's business
            key = (device_id, value, entry.mac)
            row = arp.get(key)
            if row is not None:
                row.interface, row.vlan, row.last_seen = entry.interface, entry.vlan, now
            elif key in new_arp:
                new_arp[key][4:6] = [entry.interface, entry.vlan]
            else:
                new_arp[key] = [device_id, entry.ip, value, entry.mac, entry.interface, entry.vlan, now, now]
        for mac_entry in tables.mac:
            mac_key = (device_id, mac_entry.mac, mac_entry.vlan or 0, mac_entry.port)
            found = macs.get(mac_key)
            if found is not None:
                found.kind, found.last_seen = mac_entry.kind, now
            elif mac_key in new_mac:
                new_mac[mac_key][4] = mac_entry.kind
            else:
                new_mac[mac_key] = [device_id, mac_entry.mac, mac_entry.vlan or 0, mac_entry.port, mac_entry.kind,
                                    not is_uplink(mac_entry.port), now, now]
    session.flush()
    insert_rows(session, ArpObservation, ("device_id", "ip", "value", "mac", "interface", "vlan", "first_seen",
                                          "last_seen"), new_arp.values())
    insert_rows(session, MacObservation, ("device_id", "mac", "vlan", "port", "kind", "access_port", "first_seen",
                                          "last_seen"), new_mac.values())
    for start in range(0, len(device_ids), 500):
        # Synchronised: a device row the session holds sees its new times.
        session.execute(update(NetworkDevice).where(NetworkDevice.id.in_(device_ids[start:start + 500]))
                        .values(last_attempt_at=now, last_success_at=now, last_error=None))
    return len(new_arp), len(new_mac)


# Skipped rows kept per device for the operator to read; the counts are always complete.
SKIPPED_KEPT = 50


def record_parse(session: Session, device: NetworkDevice, tables: DeviceTables) -> int:
    """What the collection read of each command (parsed and skipped rows) and the skipped rows themselves, raw;
    the number skipped."""
    arp_command, mac_command = COMMANDS.get(device.device_type, ("arp", "mac"))
    counts = tables.counts or {arp_command: {"parsed": len(tables.arp), "skipped": 0},
                               mac_command: {"parsed": len(tables.mac), "skipped": 0}}
    device.parse_counts = counts
    # A device's output may hold terminal escapes: kept as their escapes, so that printing them shows, not acts.
    kept = tables.skipped[:SKIPPED_KEPT]
    device.skipped_rows = [{"command": row.command, "line": escape_control(row.line[:300]),
                            "reason": escape_control(row.reason[:300])} for row in kept] or None
    session.flush()
    return sum(c.get("skipped", 0) for c in counts.values())


def _record_failure(session: Session, device: NetworkDevice, error: str, now: datetime) -> None:
    device.last_attempt_at, device.last_error = now, error[:500]
    session.flush()


def list_devices(session: Session, principal: Principal, *, unit: str | None = None, failing: bool = False,
                 limit: int = 50, offset: int = 0) -> tuple[list[NetworkDevice], int]:
    authorize(principal, "extranet.device:read")
    query = read.within(select(NetworkDevice), principal, unit=NetworkDevice.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, NetworkDevice.unit_id))
    if failing:
        query = query.where(NetworkDevice.last_error.is_not(None))
    return read.page(session, query, limit=limit, offset=offset, order_by=(NetworkDevice.name, NetworkDevice.id))


def submit_collection(session: Session, principal: Principal, *, inventory: Path | None = None,
                      limit: Sequence[str] | None = None) -> jobs.Job:
    """Queue a collection of the inventory's devices (or the simulated ones), optionally only some of them."""
    authorize(principal, "extranet.device:collect")
    path = inventory or get_settings().extranet_inventory
    if path is not None and not Path(path).exists():
        raise InvalidInput(f"{path} does not exist", field="inventory")
    return jobs.submit_job(session, principal, COLLECT_JOB,
                           {"inventory": str(path) if path else None, "limit": list(limit) if limit else None})


def _devices_and_collector(ctx: jobs.JobContext) -> tuple[list[Device], DeviceCollector]:
    limit = set(ctx.params.get("limit") or [])
    if ctx.params.get("inventory"):
        from cloudctl.extranet.netmiko_collector import NetmikoCollector

        devices = load_inventory(Path(ctx.params["inventory"]))
        collector: DeviceCollector = NetmikoCollector()
    else:
        # The embedded default: the demo city's simulated devices, as the device rows name them.
        from cloudctl.compute.providers import simulator_store
        from cloudctl.extranet.simulated import SimulatedCollector

        with ctx.session() as session:
            devices = [Device(name=d.name, host=d.host, device_type=d.device_type, unit_code=d.unit.code,
                              role=d.role, username="simulated", password="simulated")
                       for d in session.scalars(select(NetworkDevice).order_by(NetworkDevice.name))]
        collector = SimulatedCollector(simulator_store())
    if limit:
        unknown = limit - {d.name for d in devices}
        if unknown:
            raise NotFound(f"no device named {', '.join(sorted(unknown))} in the inventory", field="limit")
        devices = [d for d in devices if d.name in limit]
    return devices, collector


def _combine_collection(session: Session, parent: jobs.Job, shards: list[jobs.Job]) -> jobs.JobOutcome:
    """The shards' counts summed into the collection's, with one audit row for the whole collection."""
    outcome = jobs.combine_counts(session, parent, shards)
    counts = {key: outcome.result.get(key, 0) for key in _COUNTS}
    audit.record(session, jobs.job_principal(parent), action="collect", entity="extranet_devices",
                 entity_id=parent.id, after={**counts, "shards": len(shards)})
    return jobs.JobOutcome({**counts, "shards": len(shards)}, outcome.status, outcome.error)


_COUNTS = ("devices", "succeeded", "failed", "arp_new", "mac_new", "rows_skipped")


@jobs.job_handler(COLLECT_JOB, combine=_combine_collection)
def collect_job(ctx: jobs.JobContext) -> dict[str, Any] | jobs.Shards:
    devices, collector = _devices_and_collector(ctx)
    with ctx.session() as session:
        ids = {name: row.id for name, row in sync_devices(session, ctx.principal, devices).items()}
    size = get_settings().extranet_shard_devices
    if size and len(devices) > size:
        # Several workers (on several hosts) share the devices; each shard collects its own and stores them.
        names = [device.name for device in devices]
        return jobs.Shards(COLLECT_SHARD_JOB, [{"inventory": ctx.params.get("inventory"), "limit": names[i:i + size]}
                                               for i in range(0, len(names), size)],
                           message=f"{len(devices)} devices in shards of {size}")
    counts = _collect(ctx, devices, collector, ids)
    with ctx.session() as session:
        audit.record(session, ctx.principal, action="collect", entity="extranet_devices", entity_id=ctx.job_id,
                     after=counts)
    return counts


@jobs.job_handler(COLLECT_SHARD_JOB)
def collect_shard_job(ctx: jobs.JobContext) -> dict[str, Any]:
    """Some devices of a collection (their rows made by the parent): collecting them again stores the same."""
    devices, collector = _devices_and_collector(ctx)
    with ctx.session() as session:
        ids = {row.name: row.id for row in session.scalars(
            select(NetworkDevice).where(NetworkDevice.name.in_([device.name for device in devices])))}
    return _collect(ctx, devices, collector, ids)


def _collect(ctx: jobs.JobContext, devices: list[Device], collector: DeviceCollector,
             ids: dict[str, int]) -> dict[str, Any]:
    from cloudctl.extranet.netmiko_collector import collect_all

    counts = {"devices": len(devices), "succeeded": 0, "failed": 0, "arp_new": 0, "mac_new": 0, "rows_skipped": 0}
    done = 0

    def on_result(device: Device, tables: DeviceTables | None, error: str | None) -> None:
        # Each device is stored in its own transaction: a failure later in the run loses nothing already stored.
        nonlocal done
        now = utcnow()
        with ctx.session() as session:
            row = session.get(NetworkDevice, ids[device.name])
            assert row is not None
            if tables is not None:
                arp_new, mac_new = store_tables(session, row, tables, now)
                counts["succeeded"] += 1
                counts["arp_new"] += arp_new
                counts["mac_new"] += mac_new
                skipped = record_parse(session, row, tables)
                counts["rows_skipped"] += skipped
                if skipped:
                    ctx.log(f"{device.name}: {skipped} row(s) skipped (extranet devices --skipped)", level="warning")
            else:
                _record_failure(session, row, error or "unknown failure", now)
                counts["failed"] += 1
        if error:
            ctx.log(f"{device.name}: {error}", level="error")
        done += 1
        ctx.progress(done, len(devices), message=f"{counts['succeeded']} collected, {counts['failed']} failed")

    # on_result runs in this thread, one device at a time (collect_all's promise): one writer, as SQLite wants.
    collect_all(devices, collector, max_workers=get_settings().extranet_collect_workers, on_result=on_result)
    return counts
