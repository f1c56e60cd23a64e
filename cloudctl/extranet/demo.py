"""The demo city's extranet: lines, the address plan, a device per connected unit, and what the wire shows.

:func:`plan_wire` is a pure, seeded generator: the plan (from ``data/demo-plan.yml``), each unit's
line, each device's ARP and MAC tables, and the compliance violations it *injected* into them,
each as the (rule, subject) pair a check must report. The demo step writes the plan and lines
into the database, the tables into the simulator's store (the simulated devices), and collects
once, so the demo city has observations; the test suite serves the same tables over real SSH
and expects a check to find exactly :attr:`WirePlan.expected`.

The city's access rate comes out as the real city's: 132 of 135 municipal units (three lines
still planned) and all but a few dozen villages (no line yet, one line down, one town whose
switch has stopped answering).
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloudctl.core.auth import Principal
from cloudctl.core.bulk import insert_rows, insert_rows_with_ids
from cloudctl.core.models import utcnow
from cloudctl.demo.city import DemoCity
from cloudctl.demo.seed import demo_step
from cloudctl.extranet.devices import ArpEntry, DeviceTables, MacEntry
from cloudctl.extranet.models import (
    AccessLink,
    AddressRole,
    ApplicationStatus,
    IPAddress,
    IPApplication,
    LinkRole,
    LinkStatus,
    NetworkDevice,
    Prefix,
    PrefixStatus,
    Zone,
)
from cloudctl.extranet.schemas import AggregateCreate, PrefixCreate
from cloudctl.extranet.service import compliance, ipam
from cloudctl.org.models import Unit, UnitKind

__all__ = ["BUREAU", "DemoDevice", "WirePlan", "plan_wire", "seed_extranet"]

BUREAU = "市政务服务和大数据管理局"
VENDOR_OF = {"department": "huawei_vrp", "municipal_unit": "huawei_vrp", "county": "hp_comware"}
VILLAGE_VENDORS = ("huawei_vrp", "hp_comware", "cisco_ios")
PORTS = {"huawei_vrp": ("GigabitEthernet0/0/{}", "XGigabitEthernet0/0/1", "Vlanif{}"),
         "hp_comware": ("GigabitEthernet1/0/{}", "Ten-GigabitEthernet1/0/49", "Vlan-interface{}"),
         "cisco_ios": ("GigabitEthernet1/0/{}", "TenGigabitEthernet1/1/1", "Vlan{}")}


def _config() -> dict[str, Any]:
    text = resources.files("cloudctl.extranet").joinpath("data/demo-plan.yml").read_text(encoding="utf-8")
    config: dict[str, Any] = yaml.safe_load(text)
    return config


@dataclass
class DemoDevice:
    name: str
    unit_code: str
    vendor: str
    role: str
    host: str
    mac: str
    reachable: bool = True
    arp: list[ArpEntry] = field(default_factory=list)
    macs: list[MacEntry] = field(default_factory=list)

    @property
    def tables(self) -> DeviceTables:
        return DeviceTables(device=self.name, arp=list(self.arp), mac=list(self.macs))


@dataclass
class Block:
    prefix: str
    unit_code: str | None
    zone: Zone
    vrf: str = "global"
    status: PrefixStatus = PrefixStatus.ACTIVE
    vlan: int | None = None
    legacy: bool = False  # written as an old spreadsheet left it, past the plan's checks
    # (address, role, mac binding or None)
    addresses: list[tuple[str, AddressRole, str | None]] = field(default_factory=list)
    decided_days_ago: int = 400


@dataclass
class Line:
    unit_code: str
    carrier: str
    line_type: str
    bandwidth_mbps: int
    role: LinkRole
    status: LinkStatus
    commissioned_on: date
    uses_shared_exit: bool


@dataclass
class WirePlan:
    blocks: list[Block]
    lines: list[Line]
    devices: list[DemoDevice]
    # (rule, subject) a compliance check must report, and nothing else.
    expected: set[tuple[int, str]]
    hot: list[str]  # the devices the injected violations are seen on
    stale: str  # the device that stopped answering
    missing: dict[str, list[str]]  # level → unit codes not connected
    # (device, tables, days ago): observations older than the current tables
    history: list[tuple[str, DeviceTables, int]] = field(default_factory=list)


class _Macs:
    """Unique MACs, locally administered (02:…), in a stable order."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        value = (0x02 << 40) | self.n
        return ":".join(f"{(value >> (8 * i)) & 0xFF:02x}" for i in range(5, -1, -1))


def plan_wire(city: DemoCity, seed: int = 2026) -> WirePlan:
    """The demo extranet for ``city``: deterministic for a seed."""
    config, rng, macs = _config(), random.Random(seed + 5), _Macs()
    kinds = {u.code: UnitKind(u.kind).value for u in city.units}
    names = {u.code: u.name for u in city.units}
    by_kind: dict[str, list[str]] = {}
    for unit in city.units:
        by_kind.setdefault(UnitKind(unit.kind).value, []).append(unit.code)
    for codes in by_kind.values():
        codes.sort()
    municipal, villages = by_kind["municipal_unit"], by_kind["village"]
    planned = municipal[-3:]
    no_line, down = villages[-30:], villages[-31]
    towns, counties, departments = by_kind["town"], by_kind["county"], by_kind["department"]
    stale_unit = towns[9]
    required = [code for kind in ("department", "municipal_unit", "county", "town", "village")
                for code in by_kind[kind]]

    # ---- lines
    lines: list[Line] = []
    for i, code in enumerate(required):
        if code in no_line:
            continue
        kind = kinds[code]
        status = (LinkStatus.PLANNED if code in planned else LinkStatus.DOWN if code == down else LinkStatus.ACTIVE)
        commissioned = date(2016, 1, 1) + timedelta(days=rng.randint(0, 3000))
        lines.append(Line(code, config["carriers"][i % len(config["carriers"])], config["line_types"][kind],
                          config["bandwidth_mbps"][kind], LinkRole.PRIMARY, status, commissioned,
                          uses_shared_exit=kind in ("department", "municipal_unit", "county") and rng.random() < 0.7))
        if kind == "department" and i % 3 == 0:
            # Key departments keep a second line from another carrier (备用线路).
            lines.append(Line(code, config["carriers"][(i + 1) % len(config["carriers"])], "MSTP", 50,
                              LinkRole.BACKUP, LinkStatus.ACTIVE, commissioned, uses_shared_exit=False))
    connected = [line.unit_code for line in lines if line.status is LinkStatus.ACTIVE and line.role is LinkRole.PRIMARY]

    # ---- blocks, devices and tables of every connected unit
    pools = {p["zone"]: ipaddress.IPv4Network(p["prefix"]) for p in config["pools"]}
    cursor = {zone: int(net.network_address) for zone, net in pools.items()}

    def carve(zone: str, length: int) -> ipaddress.IPv4Network:
        size = 2 ** (32 - length)
        start = -(-cursor[zone] // size) * size
        cursor[zone] = start + size
        return ipaddress.IPv4Network((start, length))

    mgmt = pools["management"].hosts()
    next(mgmt)  # .1 is the management gateway
    blocks: list[Block] = []
    devices: dict[str, DemoDevice] = {}
    vlan = int(config["vlan"])
    village_index = 0
    for code in connected:
        kind = kinds[code]
        if kind == "village":
            vendor = VILLAGE_VENDORS[village_index % 3]
            village_index += 1
        elif kind == "town":
            vendor = ("hp_comware", "cisco_ios")[towns.index(code) % 2]
        else:
            vendor = VENDOR_OF[kind]
        access_fmt, uplink, svi = PORTS[vendor]
        device = DemoDevice(name=f"{code.lower()}-sw1", unit_code=code, vendor=vendor,
                            role="aggregation" if kind == "county" else "access", host=str(next(mgmt)),
                            mac=macs.next(), reachable=code != stale_unit)
        devices[device.name] = device
        net = carve("public", int(config["blocks"][kind]))
        block = Block(str(net), code, Zone.PUBLIC, vlan=vlan)
        blocks.append(block)
        hosts = net.hosts()
        gateway = str(next(hosts))
        block.addresses.append((gateway, AddressRole.GATEWAY, device.mac))
        if vendor != "hp_comware":  # Comware does not list its own interface addresses in `display arp`
            device.arp.append(ArpEntry(gateway, device.mac, svi.format(vlan), vlan, own=True))
        low, high = config["hosts"][kind]
        for port in range(1, rng.randint(low, high) + 1):
            ip, mac = str(next(hosts)), macs.next()
            block.addresses.append((ip, AddressRole.HOST, mac if rng.random() < 0.7 else None))
            device.arp.append(ArpEntry(ip, mac, svi.format(vlan), vlan))
            device.macs.append(MacEntry(mac, vlan, access_fmt.format(port), "dynamic"))
        # The upstream router, seen on the uplink.
        device.macs.append(MacEntry(macs.next(), vlan, uplink, "dynamic"))

    expected: set[tuple[int, str]] = set()
    hot: list[str] = []

    def dev(code: str) -> DemoDevice:
        return devices[f"{code.lower()}-sw1"]

    def block_of(code: str) -> Block:
        return next(b for b in blocks if b.unit_code == code and b.zone is Zone.PUBLIC)

    def free_host(block: Block) -> str:
        used = {a for a, _, _ in block.addresses}
        return next(str(h) for h in ipaddress.IPv4Network(block.prefix).hosts() if str(h) not in used)

    def host_port(device: DemoDevice, n: int) -> str:
        return PORTS[device.vendor][0].format(n)

    def svi_of(device: DemoDevice) -> str:
        return PORTS[device.vendor][2].format(vlan)

    connected_villages = [c for c in connected if kinds[c] == "village"]
    connected_towns = [c for c in connected if kinds[c] == "town" and c != stale_unit]
    connected_municipal = [c for c in connected if kinds[c] == "municipal_unit"]

    # 1: a terminal with an address from nobody's plan, plugged in at a village.
    a = dev(connected_villages[5])
    a.arp.append(ArpEntry("192.168.1.23", macs.next(), svi_of(a), vlan))
    expected.add((1, "192.168.1.23"))
    # 2: another village's spare address, approved for it, used at this one.
    b_block = block_of(connected_villages[6])
    spare = free_host(b_block)
    b_block.addresses.append((spare, AddressRole.HOST, None))
    a.arp.append(ArpEntry(spare, macs.next(), svi_of(a), vlan))
    expected.add((2, spare))
    hot.append(a.name)
    # 3: an address of the unit's own block in use without an application.
    c = dev(connected_towns[3])
    unapproved = free_host(block_of(c.unit_code))
    c.arp.append(ArpEntry(unapproved, macs.next(), svi_of(c), vlan))
    expected.add((3, unapproved))
    hot.append(c.name)
    # 4: one address answered by two MACs, seen by a county's access switch and its core; the VRRP address
    # both routers answer for is that by design and exempt.
    d = dev(counties[1])
    d_block = block_of(d.unit_code)
    core = DemoDevice(name=f"{d.unit_code.lower()}-core1", unit_code=d.unit_code, vendor="hp_comware",
                      role="core", host=str(next(mgmt)), mac=macs.next())
    devices[core.name] = core
    twice = free_host(d_block)
    d_block.addresses.append((twice, AddressRole.HOST, None))
    vrrp = free_host(d_block)
    d_block.addresses.append((vrrp, AddressRole.VRRP, None))
    d.arp += [ArpEntry(twice, macs.next(), svi_of(d), vlan), ArpEntry(vrrp, macs.next(), svi_of(d), vlan)]
    core.arp += [ArpEntry(twice, macs.next(), PORTS[core.vendor][2].format(vlan), vlan),
                 ArpEntry(vrrp, macs.next(), PORTS[core.vendor][2].format(vlan), vlan)]
    core.macs.append(MacEntry(d.mac, vlan, "Bridge-Aggregation1", "dynamic"))
    expected.add((4, twice))
    hot += [d.name, core.name]
    # 5: a registered terminal's address now held by another machine.
    e = dev(connected_towns[5])
    e_block = block_of(e.unit_code)
    bound = free_host(e_block)
    e_block.addresses.append((bound, AddressRole.HOST, macs.next()))
    e.arp.append(ArpEntry(bound, macs.next(), svi_of(e), vlan))
    expected.add((5, bound))
    hot.append(e.name)
    # 6: a small unmanaged switch (a hub) behind one access port: six MACs on it.
    f = dev(connected_municipal[4])
    crowded = host_port(f, 7)
    f.macs += [MacEntry(macs.next(), vlan, crowded, "dynamic") for _ in range(6)]
    expected.add((6, f"{f.name}:{crowded}"))
    hot.append(f.name)
    # 7: a private router doing NAT: ten approved addresses behind one MAC.
    g = dev(departments[6])
    g_block, nat_mac = block_of(g.unit_code), macs.next()
    for _ in range(10):
        ip = free_host(g_block)
        g_block.addresses.append((ip, AddressRole.HOST, None))
        g.arp.append(ArpEntry(ip, nat_mac, svi_of(g), vlan))
    g.macs.append(MacEntry(nat_mac, vlan, host_port(g, 20), "dynamic"))
    expected.add((7, nat_mac))
    hot.append(g.name)
    # 8 (and 1, and 11): an enterprise-zone address, the bureau's own, on the bureau's government VLAN; its
    # block shows nothing in its own zone, so it also reads as unused.
    bureau = next(code for code in departments if names[code] == BUREAU)
    h = dev(bureau)
    enterprise = carve("enterprise", 28)
    leak = str(next(iter(enterprise.hosts())))
    blocks.append(Block(str(enterprise), bureau, Zone.ENTERPRISE, vlan=20,
                        addresses=[(leak, AddressRole.HOST, None)]))
    h.arp.append(ArpEntry(leak, macs.next(), svi_of(h), vlan))
    expected |= {(8, leak), (1, leak), (11, str(enterprise))}
    hot.append(h.name)
    # 11: a town block nearly full (28 of its 30 addresses in use).
    p = dev(connected_towns[7])
    p_block = block_of(p.unit_code)
    port = 40
    while len(p_block.addresses) < 28:
        ip, mac = free_host(p_block), macs.next()
        p_block.addresses.append((ip, AddressRole.HOST, None))
        p.arp.append(ArpEntry(ip, mac, svi_of(p), vlan))
        p.macs.append(MacEntry(mac, vlan, host_port(p, port), "dynamic"))
        port += 1
    expected.add((11, p_block.prefix))
    hot.append(p.name)
    # 11: a dedicated-zone block nobody has used for forty days.
    q_code = connected_municipal[8]
    quiet = carve("dedicated", 28)
    blocks.append(Block(str(quiet), q_code, Zone.DEDICATED, vrf="dept-vpn", vlan=30))
    old = DeviceTables(device=dev(q_code).name, arp=[ArpEntry(str(h_), macs.next(), "Vlanif30", 30)
                                                     for h_ in list(quiet.hosts())[1:3]], mac=[])
    expected.add((11, str(quiet)))
    # 12: an address approved 120 days ago that has never been seen.
    u_block = block_of(connected_villages[10])
    unseen = free_host(u_block)
    u_block.addresses.append((unseen, AddressRole.HOST, None))
    u_block.decided_days_ago = 120
    expected.add((12, unseen))
    # 9 (and 11): a block the old spreadsheet marks in use, by no unit, and nothing on the wire in it.
    legacy = carve("public", 28)
    blocks.append(Block(str(legacy), None, Zone.PUBLIC, status=PrefixStatus.ACTIVE, legacy=True))
    expected |= {(9, str(legacy)), (11, str(legacy))}
    # 10: a town whose switch stopped answering three days ago.
    expected.add((10, stale_unit))
    return WirePlan(blocks=blocks, lines=lines, devices=list(devices.values()), expected=expected, hot=hot,
                    stale=dev(stale_unit).name,
                    missing={"horizontal": sorted(planned), "vertical": sorted([*no_line, down, stale_unit])},
                    history=[(dev(q_code).name, old, 40)])


@demo_step("extranet")
def seed_extranet(session: Session, principal: Principal, city: DemoCity, seed: int) -> dict[str, int]:
    from cloudctl.compute.providers import simulator_store
    from cloudctl.extranet.service.collection import store_collected
    from cloudctl.extranet.simulated import store_tables as store_simulated

    wire = plan_wire(city, seed)
    config = _config()
    units = {code: (id_, name) for code, id_, name in session.execute(select(Unit.code, Unit.id, Unit.name))}
    for aggregate in config["aggregates"]:
        ipam.create_aggregate(session, principal, AggregateCreate.model_validate(aggregate))
    for pool in config["pools"]:
        ipam.create_prefix(session, principal, PrefixCreate.model_validate({**pool, "status": "container"}))
    now = utcnow()

    def unit_id(code: str | None) -> int | None:
        return units[code][0] if code else None

    # The plan as the bureau's approvals left it, written as it stands, past create_prefix's checks and the
    # approval flow: the approvals are years old, and the legacy block is the plan error the check finds.
    owned = [block for block in wire.blocks if block.unit_code]
    applications: list[tuple[Any, ...]] = []
    for block in owned:
        name, decided = units[str(block.unit_code)][1], now - timedelta(days=block.decided_days_ago)
        applications.append((
            unit_id(block.unit_code), block.zone, block.vrf, ipaddress.IPv4Network(block.prefix).prefixlen,
            f"{name}接入电子政务外网", f"{name}网络安全负责人", decided.date(), True, ipam.COMMITMENT_TEXT,
            ApplicationStatus.APPROVED, f"demo:{block.unit_code}", "demo:ops", decided, [block.prefix]))
    application_ids = insert_rows_with_ids(session, IPApplication, (
        "unit_id", "zone", "vrf", "prefix_length", "purpose", "commitment_signer", "commitment_signed_on",
        "commitment_accepted", "commitment_text", "status", "submitted_by", "decided_by", "decided_at", "allocated",
    ), applications)
    application_of = dict(zip(map(id, owned), application_ids, strict=True))
    prefixes: list[tuple[Any, ...]] = []
    for block in wire.blocks:
        net = ipaddress.IPv4Network(block.prefix)
        # Allocated when approved (rule 11 counts "unused" from then); the legacy block came in with the old
        # ledger, as long ago.
        decided = now - timedelta(days=block.decided_days_ago)
        prefixes.append((block.prefix, int(net.network_address), int(net.broadcast_address), net.prefixlen,
                         block.zone, block.vrf, block.status, unit_id(block.unit_code), block.vlan,
                         application_of.get(id(block)), "旧台账遗留" if block.legacy else None, decided, decided))
    prefix_ids = insert_rows_with_ids(session, Prefix, (
        "prefix", "start", "end", "length", "zone", "vrf", "status", "unit_id", "vlan", "application_id",
        "description", "created_at", "updated_at"), prefixes)
    insert_rows(session, IPAddress, ("address", "value", "prefix_id", "unit_id", "role", "mac", "application_id"), (
        (address, int(ipaddress.IPv4Address(address)), prefix_id, unit_id(block.unit_code), role, mac,
         application_of.get(id(block)))
        for block, prefix_id in zip(wire.blocks, prefix_ids, strict=True) for address, role, mac in block.addresses))
    insert_rows(session, AccessLink, ("unit_id", "carrier", "line_type", "bandwidth_mbps", "role", "status",
                                      "commissioned_on", "uses_shared_exit"), (
        (unit_id(line.unit_code), line.carrier, line.line_type, line.bandwidth_mbps, line.role, line.status,
         line.commissioned_on, line.uses_shared_exit) for line in wire.lines))
    device_ids = dict(zip((d.name for d in wire.devices), insert_rows_with_ids(
        session, NetworkDevice, ("name", "host", "device_type", "role", "unit_id", "zone"),
        [(d.name, d.host, d.vendor, d.role, unit_id(d.unit_code), Zone.PUBLIC) for d in wire.devices]), strict=True))
    store_simulated(simulator_store(), ((d.name, d.vendor, d.reachable, d.tables) for d in wire.devices))
    # What the devices showed before today: the quiet block's last users, and the stale switch's last answer.
    for name, tables, days in wire.history:
        store_collected(session, [(device_ids[name], tables)], now - timedelta(days=days))
    stale = next(d for d in wire.devices if d.name == wire.stale)
    store_collected(session, [(device_ids[stale.name], stale.tables)], now - timedelta(days=3))
    # And the collection of today, from every device that answers.
    store_collected(session, [(device_ids[d.name], d.tables) for d in wire.devices if d.reachable], now)
    session.execute(update(NetworkDevice).where(NetworkDevice.id == device_ids[stale.name]).values(
        last_attempt_at=now, last_error=f"{stale.name} ({stale.host}): TCP connection to port 22 timed out"))
    found = compliance.check(session, principal, now=now)["found"]
    return {"violations": found, "lines": len(wire.lines), "prefixes": len(wire.blocks),
            "applications": len(applications), "devices": len(wire.devices), "injected_violations": len(wire.expected)}

