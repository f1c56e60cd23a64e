"""Extranet compliance rules: helpers, each rule at its boundaries, and outside_plan against an ipaddress reference."""

from __future__ import annotations

import ipaddress
import json
import math
from typing import Any

import numpy as np
import pytest

from cloudctl.extranet.rules import (
    CROSS_ZONE_FORBIDDEN,
    ZONES,
    Addresses,
    Aggregates,
    Limits,
    Links,
    MacPorts,
    Observations,
    PlanPrefixes,
    PrefixStatus,
    Role,
    Rule,
    Violations,
    Zone,
    binding_changed,
    check_all,
    cross_zone,
    crowded_port,
    duplicate_ip,
    format_prefix,
    int_to_ip,
    int_to_mac,
    ip_to_int,
    ips_to_ints,
    mac_to_int,
    nat_behind_mac,
    outside_plan,
    parse_prefix,
    plan_integrity,
    prefix_pressure,
    stale_collection,
    unapproved,
    unseen_approved,
    utilisation,
    wrong_unit,
)

# An empty or NaN input must not make numpy warn: turn every warning into a failure here.
pytestmark = pytest.mark.filterwarnings("error")

NOW = 1_750_000_000.0
DAY = 86400.0
WATCHED = NOW - 400 * DAY  # when collection began, for the rule 11 tests that are not about it
P, D, NET, E, M = Zone.PUBLIC, Zone.DEDICATED, Zone.INTERNET, Zone.ENTERPRISE, Zone.MANAGEMENT
ACTIVE, RESERVED, DEPRECATED = PrefixStatus.ACTIVE, PrefixStatus.RESERVED, PrefixStatus.DEPRECATED
MAC_A, MAC_B, MAC_C = "00:11:22:33:44:0a", "00:11:22:33:44:0b", "00:11:22:33:44:0c"


# ----------------------------------------------------------------------------------------------------------------
# Factories: a row is a tuple of the fields that matter, the rest defaulted


def plan(*rows: tuple[Any, ...]) -> PlanPrefixes:
    """Rows of ``(cidr, zone, unit[, status[, vrf]])``; ids are 1, 2, … in order."""
    full = [(i + 1, r[0], r[1], r[4] if len(r) > 4 else 0, r[2], r[3] if len(r) > 3 else ACTIVE)
            for i, r in enumerate(rows)]
    return PlanPrefixes.from_cidrs(full)


def obs(*rows: tuple[Any, ...]) -> Observations:
    """Rows of ``(ip, mac, unit, zone[, last_seen[, device[, vlan]]])``; first_seen is a day before last_seen."""
    last = [r[4] if len(r) > 4 else NOW for r in rows]
    return Observations(
        ip=np.array([ip_to_int(r[0]) for r in rows], dtype=np.int64),
        mac=np.array([mac_to_int(r[1]) if isinstance(r[1], str) else r[1] for r in rows], dtype=np.int64),
        device=np.array([r[5] if len(r) > 5 else 1 for r in rows], dtype=np.int32),
        unit=np.array([r[2] for r in rows], dtype=np.int64),
        zone=np.array([r[3] for r in rows], dtype=np.int8),
        vlan=np.array([r[6] if len(r) > 6 else 10 for r in rows], dtype=np.int32),
        first_seen=np.array(last, dtype=np.float64) - DAY,
        last_seen=np.array(last, dtype=np.float64),
    )


def addrs(*rows: tuple[Any, ...]) -> Addresses:
    """Rows of ``(ip, unit[, role[, mac[, approved[, commitment[, approved_at]]]]])``."""
    def get(r: tuple[Any, ...], i: int, default: Any) -> Any:
        return r[i] if len(r) > i else default

    return Addresses(
        ip=np.array([ip_to_int(r[0]) for r in rows], dtype=np.int64),
        unit=np.array([r[1] for r in rows], dtype=np.int64),
        role=np.array([get(r, 2, Role.HOST) for r in rows], dtype=np.int8),
        mac=np.array([mac_to_int(m) if isinstance(m := get(r, 3, -1), str) else m for r in rows], dtype=np.int64),
        approved=np.array([get(r, 4, True) for r in rows], dtype=np.bool_),
        commitment=np.array([get(r, 5, True) for r in rows], dtype=np.bool_),
        approved_at=np.array([get(r, 6, NOW - 200 * DAY) for r in rows], dtype=np.float64),
    )


def ports(*rows: tuple[Any, ...]) -> MacPorts:
    """Rows of ``(mac, device, port[, vlan[, access]])``."""
    return MacPorts(
        mac=np.array([mac_to_int(r[0]) if isinstance(r[0], str) else r[0] for r in rows], dtype=np.int64),
        device=np.array([r[1] for r in rows], dtype=np.int32),
        port=np.array([r[2] for r in rows], dtype=np.int32),
        vlan=np.array([r[3] if len(r) > 3 else 10 for r in rows], dtype=np.int32),
        port_is_access=np.array([r[4] if len(r) > 4 else True for r in rows], dtype=np.bool_),
    )


def links(*rows: tuple[int, bool, float]) -> Links:
    return Links(np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.bool_),
                 np.array([r[2] for r in rows], dtype=np.float64))


def aggregates(*cidrs: str) -> Aggregates:
    parsed = [parse_prefix(c) for c in cidrs]
    return Aggregates(np.arange(1, len(cidrs) + 1, dtype=np.int64), np.array([p[0] for p in parsed], dtype=np.int64),
                      np.array([p[1] for p in parsed], dtype=np.int64))


def hosts(start: str, count: int) -> list[str]:
    first = ip_to_int(start)
    return [int_to_ip(first + i) for i in range(count)]


def mac(n: int) -> str:
    return int_to_mac(0x001122330000 + n)


EMPTY_PLAN = plan()
EMPTY_OBS = obs()
EMPTY_ADDRS = addrs()
EMPTY_PORTS = ports()
EMPTY_LINKS = links()


def subjects(violations: Violations) -> list[str]:
    return [str(s) for s in violations.subject]


# ----------------------------------------------------------------------------------------------------------------
# Helpers


@pytest.mark.parametrize(("text", "value"), [("0.0.0.0", 0), ("10.1.2.3", 167838211), ("255.255.255.255", 2**32 - 1)])
def test_ip_round_trip(text: str, value: int) -> None:
    assert ip_to_int(text) == value
    assert int_to_ip(value) == text


@pytest.mark.parametrize("value", [-1, 2**32])
def test_int_to_ip_refuses_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="ip"):
        int_to_ip(value)


def test_ips_to_ints_matches_ip_to_int() -> None:
    texts = ["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.1.200", "172.16.254.3"]
    result = ips_to_ints(texts)
    assert result.dtype == np.int64
    assert result.tolist() == [ip_to_int(t) for t in texts]
    assert ips_to_ints(iter(texts)).tolist() == result.tolist()
    assert ips_to_ints(np.array(texts)).tolist() == result.tolist()


def test_ips_to_ints_of_nothing_is_empty_int64() -> None:
    result = ips_to_ints([])
    assert result.dtype == np.int64
    assert result.shape == (0,)


@pytest.mark.parametrize("bad", ["10.1", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "", "0x0a.1.1.1", "fe80::1"])
def test_ips_to_ints_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError, match=r"ips\[1\]"):
        ips_to_ints(["10.0.0.1", bad, "10.0.0.2"])


@pytest.mark.parametrize(("text", "expected"), [
    ("10.1.0.0/16", (ip_to_int("10.1.0.0"), ip_to_int("10.1.255.255"), 16)),
    ("10.1.2.3/32", (ip_to_int("10.1.2.3"), ip_to_int("10.1.2.3"), 32)),
    ("10.1.2.2/31", (ip_to_int("10.1.2.2"), ip_to_int("10.1.2.3"), 31)),
    ("0.0.0.0/0", (0, 2**32 - 1, 0)),
])
def test_parse_prefix(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_prefix(text) == expected
    assert format_prefix(expected[0], expected[1]) == text


def test_parse_prefix_refuses_host_bits() -> None:
    with pytest.raises(ValueError, match="host bits"):
        parse_prefix("10.1.0.5/16")


def test_format_prefix_of_a_range_that_is_no_cidr() -> None:
    assert format_prefix(ip_to_int("10.0.0.5"), ip_to_int("10.0.0.9")) == "10.0.0.5-10.0.0.9"
    # aligned size but misaligned start
    assert format_prefix(ip_to_int("10.0.0.2"), ip_to_int("10.0.0.5")) == "10.0.0.2-10.0.0.5"


@pytest.mark.parametrize("text", ["aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabb-ccdd-eeff", "aabb.ccdd.eeff"])
def test_mac_formats(text: str) -> None:
    assert mac_to_int(text) == 0xAABBCCDDEEFF
    assert int_to_mac(mac_to_int(text)) == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize("bad", ["aa:bb:cc:dd:ee", "gg:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff:00", ""])
def test_mac_to_int_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="mac"):
        mac_to_int(bad)


def test_zone_codes_and_labels() -> None:
    assert tuple(z.name.lower() for z in Zone) == ZONES
    assert Zone.ENTERPRISE.label == "企业接入区"
    assert Rule.CROWDED_PORT.label.startswith("端口")


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def test_tables_refuse_unequal_lengths_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^active_link: has 1 rows, unit has 2"):
        Links(np.array([1, 2]), np.array([True]), np.array([1.0, 2.0]))


def test_tables_refuse_lossy_casts() -> None:
    with pytest.raises(ValueError, match=r"^ip: expected int64, got float64"):
        Addresses(np.array([1.5]), np.array([1]), np.array([0]), np.array([-1]), np.array([True]),
                  np.array([True]), np.array([NOW]))
    obs_row = obs(("10.0.0.1", MAC_A, 1, P))
    with pytest.raises(ValueError, match=r"^zone: values out of range for int8"):
        Observations(obs_row.ip, obs_row.mac, obs_row.device, obs_row.unit, np.array([300]), obs_row.vlan,
                     obs_row.first_seen, obs_row.last_seen)


@pytest.mark.parametrize(("field", "value"), [("zone", 5), ("zone", -1), ("ip", 2**32), ("mac", 2**48)])
def test_observations_check_ranges(field: str, value: int) -> None:
    row = obs(("10.0.0.1", MAC_A, 1, P))
    columns = {name: getattr(row, name) for name in Observations.__dataclass_fields__}
    columns[field] = np.array([value], dtype=columns[field].dtype if field != "zone" else np.int64)
    with pytest.raises(ValueError, match=rf"^{field}"):
        Observations(**columns)


def test_plan_refuses_an_end_before_its_start() -> None:
    one = plan(("10.0.0.0/24", P, 1))
    with pytest.raises(ValueError, match=r"^end"):
        PlanPrefixes(one.id, one.end, one.start, one.zone, one.vrf, one.unit, one.status)


def test_inputs_accept_plain_lists() -> None:
    table = Links([1, 2], [True, False], [NOW, math.nan])  # type: ignore[arg-type]
    assert table.unit.dtype == np.int64
    assert table.active_link.dtype == np.bool_
    assert len(table) == 2


# ----------------------------------------------------------------------------------------------------------------
# Rule 1: outside the plan


PLAN_1 = plan(
    ("10.1.0.0/24", P, 1),
    ("10.1.1.0/24", D, 2),
    ("10.1.2.0/24", P, 3, DEPRECATED),
    ("10.1.3.0/24", P, 4, RESERVED),
    ("10.2.0.0/16", M, 5),
    ("10.2.5.0/24", M, 6),  # nested in the /16: sorts after it, ends before it
)


@pytest.mark.parametrize(("ip", "zone", "outside"), [
    ("10.1.0.0", P, False),  # the first address of the prefix
    ("10.1.0.255", P, False),  # the last
    ("10.1.1.0", P, True),  # one past its end, in the next prefix of another zone
    ("10.0.255.255", P, True),  # one before its start
    ("10.1.1.7", D, False),
    ("10.1.0.7", D, True),  # planned, but in another zone
    ("10.1.2.7", P, True),  # deprecated
    ("10.1.3.7", P, False),  # reserved is still allocated
    ("10.2.9.9", M, False),  # after the nested /24, still inside the /16
    ("10.2.5.9", M, False),
    ("10.3.0.0", M, True),
    ("0.0.0.0", P, True),
    ("255.255.255.255", M, True),
])
def test_outside_plan(ip: str, zone: Zone, outside: bool) -> None:
    found = outside_plan(obs((ip, MAC_A, 9, zone)), PLAN_1)
    assert subjects(found) == ([ip] if outside else [])
    if outside:
        assert found.rule.tolist() == [Rule.OUTSIDE_PLAN]
        assert found.unit.tolist() == [9]
        assert found.evidence[0]["zones"] == [ZONES[zone]]


def test_outside_plan_one_violation_per_ip_and_unit() -> None:
    found = outside_plan(obs(("10.9.0.1", MAC_A, 7, P, NOW - 5, 1), ("10.9.0.1", MAC_B, 7, D, NOW - 9, 2),
                             ("10.9.0.1", MAC_A, 8, P, NOW, 3), ("10.9.0.0", MAC_C, 7, P)), PLAN_1)
    assert found.keys() == [(1, 7, "10.9.0.0"), (1, 7, "10.9.0.1"), (1, 8, "10.9.0.1")]
    ev = found.evidence[1]
    assert ev == {"zones": ["public", "dedicated"], "macs": [MAC_A, MAC_B], "devices": [1, 2], "vlans": [10], "rows": 2}
    assert found.first_seen[1] == NOW - 9 - DAY
    assert found.last_seen[1] == NOW - 5


def test_outside_plan_against_an_empty_plan_flags_everything() -> None:
    assert len(outside_plan(obs(("10.0.0.1", MAC_A, 1, P), ("10.0.0.2", -1, -1, E)), EMPTY_PLAN)) == 2


def test_outside_plan_of_no_observations() -> None:
    assert len(outside_plan(EMPTY_OBS, PLAN_1)) == 0
    assert len(outside_plan(EMPTY_OBS, EMPTY_PLAN)) == 0


def _reference_outside(ips: list[int], zones: list[int], units: list[int],
                       prefixes: list[tuple[str, int, int]]) -> set[tuple[int, str]]:
    """A slow per-address check with ipaddress: (unit, ip) pairs outside every allocated prefix of their zone."""
    networks = [(ipaddress.IPv4Network(cidr), zone) for cidr, zone, status in prefixes if status != DEPRECATED]
    found = set()
    for ip, zone, unit in zip(ips, zones, units, strict=True):
        address = ipaddress.IPv4Address(ip)
        if not any(z == zone and address in network for network, z in networks):
            found.add((unit, str(address)))
    return found


@pytest.mark.parametrize("seed", range(6))
def test_outside_plan_matches_an_ipaddress_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    prefixes = []
    for _ in range(300):
        length = int(rng.integers(8, 33))
        base = int(rng.integers(0, 2**24)) << 8 if length >= 24 else int(rng.integers(10 << 24, 11 << 24))
        network = ipaddress.IPv4Network((base, length), strict=False)
        prefixes.append((str(network), int(rng.integers(0, 5)), int(rng.integers(0, 3))))
    # nested and duplicate prefixes on purpose: the lookup must merge them
    prefixes += [(str(ipaddress.IPv4Network(c).supernet(3)), z, s) for c, z, s in prefixes[:20]]
    prefixes += prefixes[20:30]
    table = PlanPrefixes.from_cidrs((i, c, z, 0, i, s) for i, (c, z, s) in enumerate(prefixes))
    # addresses near every prefix boundary, and random ones
    edges = np.concatenate([table.start, table.end, table.start - 1, table.end + 1])
    ips = np.concatenate([edges, rng.integers(0, 2**32, 1000), rng.integers(10 << 24, 11 << 24, 1000)])
    ips = np.clip(ips, 0, 2**32 - 1)
    zones = rng.integers(0, 5, ips.shape[0])
    units = rng.integers(-1, 3, ips.shape[0])
    observations = Observations(ips, np.full(ips.shape[0], -1), np.zeros(ips.shape[0], np.int32), units,
                                zones.astype(np.int8), np.full(ips.shape[0], -1, np.int32), np.full(ips.shape[0], NOW),
                                np.full(ips.shape[0], NOW))
    found = outside_plan(observations, table)
    expected = _reference_outside(ips.tolist(), zones.tolist(), units.tolist(), prefixes)
    assert {(int(u), str(s)) for u, s in zip(found.unit, found.subject, strict=True)} == expected
    assert len(found) == len(expected)  # one violation per (unit, ip)


# ----------------------------------------------------------------------------------------------------------------
# Rule 2: another unit's address


PLAN_2 = plan(
    ("10.1.0.0/24", P, 1),
    ("10.1.1.0/24", P, -1),
    ("10.5.0.0/24", D, 2, ACTIVE, 100),
    ("10.5.0.0/24", D, 3, ACTIVE, 101),  # the same space reused by another VRF of the zone
    ("10.6.0.0/24", D, 4, ACTIVE, 100),
    ("10.6.0.0/25", D, 4, ACTIVE, 101),  # reused by the same unit: still its own
)


@pytest.mark.parametrize(("ip", "unit", "zone", "allocated"), [
    ("10.1.0.9", 7, P, 1),
    ("10.1.0.9", 1, P, None),  # its own
    ("10.1.0.9", -1, P, None),  # the observing unit is unknown
    ("10.1.1.9", 7, P, None),  # the prefix has no unit
    ("10.1.0.9", 7, D, None),  # not allocated in that zone
    ("10.5.0.9", 7, D, None),  # two units own it in two VRFs: which one is unknown
    ("10.6.0.9", 7, D, 4),
    ("10.9.0.9", 7, D, None),  # outside the plan is rule 1's
])
def test_wrong_unit(ip: str, unit: int, zone: Zone, allocated: int | None) -> None:
    found = wrong_unit(obs((ip, MAC_A, unit, zone)), PLAN_2)
    if allocated is None:
        assert len(found) == 0
    else:
        assert found.keys() == [(Rule.WRONG_UNIT, unit, ip)]
        assert found.evidence[0]["allocated_unit"] == allocated


def test_wrong_unit_names_the_prefix_when_it_is_one() -> None:
    found = wrong_unit(obs(("10.6.0.200", MAC_A, 7, D), ("10.6.0.9", MAC_A, 7, D)), PLAN_2)
    assert [e["prefix"] for e in found.evidence] == [None, "10.6.0.0/24"]  # 10.6.0.9 sits in two prefixes of unit 4


def test_wrong_unit_of_nothing() -> None:
    assert len(wrong_unit(EMPTY_OBS, PLAN_2)) == 0
    assert len(wrong_unit(obs(("10.1.0.9", MAC_A, 7, P)), EMPTY_PLAN)) == 0


# ----------------------------------------------------------------------------------------------------------------
# Rule 3: no approval or no security commitment

PLAN_3 = plan(("10.1.0.0/24", P, 1))


@pytest.mark.parametrize(("registered", "reason"), [
    ((), "unregistered"),
    ((("10.1.0.9", 1, Role.HOST, -1, False, False),), "not_approved"),
    ((("10.1.0.9", 1, Role.HOST, -1, True, False),), "no_commitment"),
    ((("10.1.0.9", 1, Role.HOST, -1, True, True),), None),
    # one VRF's record approved with a commitment is enough
    ((("10.1.0.9", 1, Role.HOST, -1, False, False), ("10.1.0.9", 1, Role.HOST, -1, True, True)), None),
    ((("10.1.0.9", 1, Role.GATEWAY, -1, False, False),), None),
    ((("10.1.0.9", 1, Role.VRRP, -1, False, False),), None),
    ((("10.1.0.9", 1, Role.VIP, -1, False, False),), None),
    ((("10.1.0.9", 1, Role.LOOPBACK, -1, False, False),), None),
])
def test_unapproved(registered: tuple[tuple[Any, ...], ...], reason: str | None) -> None:
    found = unapproved(obs(("10.1.0.9", MAC_A, 7, P)), addrs(*registered), PLAN_3)
    assert [e["reason"] for e in found.evidence] == ([reason] if reason else [])


@pytest.mark.parametrize(("registered_unit", "plan_unit", "unit"), [(5, 1, 5), (-1, 1, 1), (-1, -1, 7)])
def test_unapproved_unit_is_the_registered_then_the_planned_then_the_observing(registered_unit: int, plan_unit: int,
                                                                              unit: int) -> None:
    found = unapproved(obs(("10.1.0.9", MAC_A, 7, P)), addrs(("10.1.0.9", registered_unit, Role.HOST, -1, False)),
                       plan(("10.1.0.0/24", P, plan_unit)))
    assert found.unit.tolist() == [unit]


def test_unapproved_leaves_addresses_outside_the_plan_to_rule_1() -> None:
    assert len(unapproved(obs(("10.9.0.9", MAC_A, 7, P)), EMPTY_ADDRS, PLAN_3)) == 0
    assert len(unapproved(obs(("10.1.0.9", MAC_A, 7, D)), EMPTY_ADDRS, PLAN_3)) == 0


# ----------------------------------------------------------------------------------------------------------------
# Rule 4: duplicate IPs


@pytest.mark.parametrize(("rows", "registered", "flagged"), [
    ([("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", MAC_B, 1, P)], (), True),
    ([("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", MAC_A, 1, P, NOW, 2)], (), False),  # one MAC on two devices
    ([("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", MAC_B, 1, P, NOW - 2 * DAY)], (), False),  # before the window
    ([("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", MAC_B, 1, P, NOW - DAY)], (), True),  # exactly at its start
    ([("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", MAC_B, 1, E)], (), False),  # two zones are two networks
    ([("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", -1, 1, P)], (), False),  # an unknown MAC proves nothing
    ([("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", MAC_B, 1, P)], (("10.1.0.9", 1, Role.VRRP),), False),
    ([("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", MAC_B, 1, P)], (("10.1.0.9", 1, Role.VIP),), False),
    ([("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", MAC_B, 1, P)], (("10.1.0.9", 1, Role.GATEWAY),), True),
])
def test_duplicate_ip(rows: list[tuple[Any, ...]], registered: tuple[tuple[Any, ...], ...], flagged: bool) -> None:
    found = duplicate_ip(obs(*rows), addrs(*registered), NOW - DAY)
    assert subjects(found) == (["10.1.0.9"] if flagged else [])


def test_duplicate_ip_evidence_and_unit() -> None:
    rows = [("10.1.0.9", MAC_A, 1, P), ("10.1.0.9", MAC_B, 2, P), ("10.1.0.9", MAC_C, 2, P), ("10.1.0.8", MAC_A, 3, P),
            ("10.1.0.8", MAC_B, 3, P)]
    found = duplicate_ip(obs(*rows), EMPTY_ADDRS, NOW - DAY)
    assert found.keys() == [(4, 3, "10.1.0.8"), (4, -1, "10.1.0.9")]  # units 1 and 2 disagree: unknown
    assert found.evidence[1]["mac_count"] == 3
    assert found.evidence[1]["macs"] == [MAC_A, MAC_B, MAC_C]
    registered = duplicate_ip(obs(*rows), addrs(("10.1.0.9", 6)), NOW - DAY)
    assert registered.keys()[1] == (4, 6, "10.1.0.9")


# ----------------------------------------------------------------------------------------------------------------
# Rule 5: IP↔MAC binding changed


@pytest.mark.parametrize(("registered", "seen", "flagged"), [
    ((("10.1.0.9", 1, Role.HOST, MAC_A),), MAC_A, False),
    ((("10.1.0.9", 1, Role.HOST, MAC_A),), MAC_B, True),
    ((("10.1.0.9", 1, Role.HOST, -1),), MAC_B, False),  # no binding registered
    ((("10.1.0.9", 1, Role.HOST, MAC_A), ("10.1.0.9", 1, Role.HOST, MAC_B)), MAC_B, False),  # either binding
    ((("10.1.0.9", 1, Role.HOST, MAC_A), ("10.1.0.8", 1, Role.HOST, MAC_B)), MAC_B, True),  # another IP's MAC
    ((("10.1.0.9", 1, Role.VIP, MAC_A),), MAC_B, False),  # a VIP moves on failover
    ((("10.1.0.9", 1, Role.VRRP, MAC_A),), MAC_B, False),
    ((("10.1.0.9", 1, Role.GATEWAY, MAC_A),), MAC_B, True),
    ((("10.1.0.9", 1, Role.HOST, MAC_A),), -1, True),  # seen without a MAC is not the bound MAC
])
def test_binding_changed(registered: tuple[tuple[Any, ...], ...], seen: Any, flagged: bool) -> None:
    found = binding_changed(obs(("10.1.0.9", seen, 7, P)), addrs(*registered))
    assert found.keys() == ([(5, 1, "10.1.0.9")] if flagged else [])


def test_binding_changed_evidence() -> None:
    found = binding_changed(obs(("10.1.0.9", MAC_B, 7, P), ("10.1.0.9", MAC_A, 7, P), ("10.1.0.9", MAC_C, 7, P)),
                            addrs(("10.1.0.9", 1, Role.HOST, MAC_A)))
    assert len(found) == 1
    assert found.evidence[0]["registered_macs"] == [MAC_A]
    assert found.evidence[0]["macs"] == [MAC_B, MAC_C]


# ----------------------------------------------------------------------------------------------------------------
# Rule 6: crowded access ports


@pytest.mark.parametrize(("macs", "access", "flagged"), [(4, True, False), (5, True, True), (5, False, False),
                                                         (0, True, False), (40, True, True)])
def test_crowded_port(macs: int, access: bool, flagged: bool) -> None:
    rows = [(mac(i), 3, 17, 10, access) for i in range(macs)]
    rows += [(mac(i), 3, 18, 10, access) for i in range(4)]  # another port at the limit
    found = crowded_port(ports(*rows), 4)
    assert found.keys() == ([(6, -1, "3:17")] if flagged else [])
    if flagged:
        assert found.evidence[0]["mac_count"] == macs
        assert len(found.evidence[0]["macs"]) == min(macs, 16)
        assert math.isnan(found.first_seen[0])


def test_crowded_port_counts_a_mac_once_across_vlans() -> None:
    rows = [(mac(i), 3, 17, 10) for i in range(4)] + [(mac(0), 3, 17, 20), (mac(0), 3, 17, 10)]
    assert len(crowded_port(ports(*rows), 4)) == 0
    assert crowded_port(ports(*rows), 3).evidence[0]["vlans"] == [10, 20]


def test_crowded_port_keeps_devices_apart() -> None:
    rows = [(mac(i), 3, 17) for i in range(3)] + [(mac(i), 4, 17) for i in range(3, 6)]
    assert len(crowded_port(ports(*rows), 4)) == 0


# ----------------------------------------------------------------------------------------------------------------
# Rule 7: NAT behind a MAC


@pytest.mark.parametrize(("ips", "role", "flagged"), [
    (8, None, False), (9, None, True), (9, Role.GATEWAY, False), (9, Role.VRRP, False), (9, Role.VIP, False),
    (9, Role.HOST, True),
])
def test_nat_behind_mac(ips: int, role: Role | None, flagged: bool) -> None:
    rows = [(ip, MAC_A, 7, P) for ip in hosts("10.1.0.10", ips)]
    rows.append(("10.1.0.10", MAC_A, 7, P, NOW, 2))  # seen twice: counts once
    registered = addrs(("10.1.0.1", 1, role, MAC_A)) if role is not None else EMPTY_ADDRS
    found = nat_behind_mac(obs(*rows), registered, 8)
    assert found.keys() == ([(7, 7, MAC_A)] if flagged else [])
    if flagged:
        assert found.evidence[0]["ip_count"] == ips
        assert found.evidence[0]["ips"][0] == "10.1.0.10"


def test_nat_behind_mac_unit_is_unknown_when_rows_disagree() -> None:
    rows = [(ip, MAC_A, 7, P) for ip in hosts("10.1.0.10", 5)] + [(ip, MAC_A, 8, P) for ip in hosts("10.1.1.10", 5)]
    assert nat_behind_mac(obs(*rows), EMPTY_ADDRS, 8).unit.tolist() == [-1]


# ----------------------------------------------------------------------------------------------------------------
# Rule 8: cross-zone leakage


PLAN_8 = plan(("10.0.0.0/24", P, 1), ("10.1.0.0/24", D, 1), ("10.2.0.0/24", NET, 1), ("10.3.0.0/24", E, 1),
              ("10.4.0.0/24", M, 1))
BASES = {P: "10.0.0.9", D: "10.1.0.9", NET: "10.2.0.9", E: "10.3.0.9", M: "10.4.0.9"}
FORBIDDEN_PAIRS = {(D, P), (D, NET), (M, P), (M, NET), (E, P), (E, D), (E, M), (P, E), (D, E), (M, E)}


@pytest.mark.parametrize(("planned", "seen"), [(a, b) for a in Zone for b in Zone])
def test_cross_zone_pairs(planned: Zone, seen: Zone) -> None:
    found = cross_zone(obs((BASES[planned], MAC_A, 7, seen)), PLAN_8)
    assert len(found) == (1 if (planned, seen) in FORBIDDEN_PAIRS else 0)
    if len(found):
        assert found.evidence[0]["planned_zones"] == [ZONES[planned]]
        assert found.evidence[0]["zones"] == [ZONES[seen]]


def test_cross_zone_default_matrix_is_read_only() -> None:
    with pytest.raises(ValueError, match="read-only"):
        CROSS_ZONE_FORBIDDEN[0, 0] = True


def test_cross_zone_space_reused_in_the_zone_where_seen_is_no_leak() -> None:
    reused = plan(("10.1.0.0/24", D, 1), ("10.1.0.0/24", P, 2))
    assert len(cross_zone(obs(("10.1.0.9", MAC_A, 7, P)), reused)) == 0


def test_cross_zone_with_a_callers_matrix() -> None:
    matrix = np.zeros((5, 5), dtype=np.bool_)
    matrix[P, NET] = True
    assert len(cross_zone(obs((BASES[P], MAC_A, 7, NET)), PLAN_8, matrix)) == 1
    assert len(cross_zone(obs((BASES[D], MAC_A, 7, P)), PLAN_8, matrix)) == 0
    with pytest.raises(ValueError, match=r"^forbidden"):
        cross_zone(obs((BASES[P], MAC_A, 7, NET)), PLAN_8, np.zeros((4, 4), dtype=np.bool_))


def test_cross_zone_ignores_deprecated_and_unplanned() -> None:
    old = plan(("10.1.0.0/24", D, 1, DEPRECATED))
    assert len(cross_zone(obs(("10.1.0.9", MAC_A, 7, P), ("10.200.0.1", MAC_A, 7, P)), old)) == 0


# ----------------------------------------------------------------------------------------------------------------
# Rule 9: the plan's integrity

CITY = aggregates("10.0.0.0/8", "172.16.0.0/12")


@pytest.mark.parametrize(("rows", "expected"), [
    ([("10.1.0.0/24", P, 1), ("10.1.1.0/24", P, 1)], []),  # adjacent is fine
    ([("10.1.0.0/24", P, 1), ("10.1.0.128/25", P, 2)], [(-1, "10.1.0.0/24,10.1.0.128/25", ["overlap"])]),
    ([("10.1.0.128/25", P, 2), ("10.1.0.0/24", P, 2)], [(2, "10.1.0.0/24,10.1.0.128/25", ["overlap"])]),
    ([("10.1.0.0/24", P, 1), ("10.1.0.0/24", P, 1)], [(1, "10.1.0.0/24,10.1.0.0/24", ["duplicate"])]),
    ([("10.1.0.0/24", P, 1, ACTIVE, 1), ("10.1.0.0/24", P, 1, ACTIVE, 2)], []),  # two VRFs
    ([("10.1.0.0/24", P, 1), ("10.1.0.0/24", D, 1)], []),  # two zones
    ([("10.1.0.0/24", P, 1), ("10.1.0.0/25", P, 1, DEPRECATED)], []),  # renumbering
    ([("10.1.0.0/24", P, 1), ("10.1.0.0/25", P, -1, RESERVED)], [(-1, "10.1.0.0/24,10.1.0.0/25", ["overlap"])]),
    ([("192.168.0.0/24", P, 1)], [(1, "192.168.0.0/24", ["outside_aggregates"])]),
    ([("10.255.255.0/24", P, 1), ("11.0.0.0/24", P, 1)], [(1, "11.0.0.0/24", ["outside_aggregates"])]),
    ([("10.0.0.0/7", P, 1)], [(1, "10.0.0.0/7", ["outside_aggregates"])]),  # straddles the block's end
    ([("10.1.0.0/24", P, -1)], [(-1, "10.1.0.0/24", ["no_unit"])]),
    ([("10.1.0.0/24", P, -1, RESERVED)], []),  # reserved space has no unit yet
    ([("192.168.0.0/24", P, -1)], [(-1, "192.168.0.0/24", ["no_unit", "outside_aggregates"])]),
    ([("192.168.0.0/24", P, -1, DEPRECATED)], []),
])
def test_plan_integrity(rows: list[tuple[Any, ...]], expected: list[tuple[int, str, list[str]]]) -> None:
    found = plan_integrity(plan(*rows), CITY)
    assert [(u, s, e["reasons"]) for (_, u, s), e in zip(found.keys(), found.evidence, strict=True)] == expected


def test_plan_integrity_reports_each_overlapping_pair_once() -> None:
    # a /22 holding three /24s, two of them equal: (22, a), (22, a'), (22, b), (a, a') — but never (a, b)
    rows = [("10.1.0.0/22", P, 1), ("10.1.0.0/24", P, 1), ("10.1.2.0/24", P, 1), ("10.1.0.0/24", P, 1)]
    found = plan_integrity(plan(*rows), CITY)
    assert subjects(found) == ["10.1.0.0/22,10.1.0.0/24", "10.1.0.0/22,10.1.2.0/24", "10.1.0.0/24,10.1.0.0/24"]
    assert found.evidence[0]["pairs"] == [{"zone": "public", "vrf": 0, "ids": [1, 2]},
                                          {"zone": "public", "vrf": 0, "ids": [1, 4]}]
    assert found.evidence[2]["pairs"] == [{"zone": "public", "vrf": 0, "ids": [2, 4]}]


def test_plan_integrity_merges_one_cidr_in_two_vrfs() -> None:
    found = plan_integrity(plan(("192.168.0.0/24", P, 1, ACTIVE, 1), ("192.168.0.0/24", D, 1, ACTIVE, 2)), CITY)
    assert len(found) == 1
    assert [p["vrf"] for p in found.evidence[0]["prefixes"]] == [1, 2]


def test_plan_integrity_without_aggregates_flags_every_prefix() -> None:
    found = plan_integrity(plan(("10.1.0.0/24", P, 1)), aggregates())
    assert found.evidence[0]["reasons"] == ["outside_aggregates"]
    assert len(plan_integrity(EMPTY_PLAN, aggregates())) == 0


# ----------------------------------------------------------------------------------------------------------------
# Rule 10: stale collection


@pytest.mark.parametrize(("active", "last", "stale"), [
    (True, NOW - 24 * 3600, True),  # exactly the limit
    (True, NOW - 24 * 3600 + 1, False),
    (True, math.nan, True),  # never collected
    (False, math.nan, False),  # no active link: nothing to collect
    (True, NOW + 60, False),  # a clock ahead is not stale
])
def test_stale_collection(active: bool, last: float, stale: bool) -> None:
    found = stale_collection(links((5, active, last)), NOW, 24)
    assert found.keys() == ([(10, 5, "collection")] if stale else [])
    if stale:
        assert found.evidence[0]["max_hours"] == 24.0
        assert found.evidence[0]["hours_since"] == (None if math.isnan(last) else 24.0)


def test_stale_collection_combines_a_units_links() -> None:
    # unit 5: one active link is enough; unit 6: its latest success counts, wherever it is recorded
    table = links((5, False, NOW - 90 * 3600), (5, True, math.nan), (6, True, math.nan), (6, True, NOW - 3600),
                  (7, False, math.nan))
    assert stale_collection(table, NOW, 24).keys() == [(10, 5, "collection")]
    assert len(stale_collection(EMPTY_LINKS, NOW, 24)) == 0


# ----------------------------------------------------------------------------------------------------------------
# Rule 11: prefix utilisation


@pytest.mark.parametrize(("cidr", "addresses", "used", "usable"), [
    ("10.1.0.0/24", [], 0, 254),
    ("10.1.0.0/24", ["10.1.0.1", "10.1.0.254"], 2, 254),
    ("10.1.0.0/24", ["10.1.0.0", "10.1.0.255"], 0, 254),  # network and broadcast are no hosts
    ("10.1.0.0/30", ["10.1.0.1", "10.1.0.2", "10.1.0.3"], 2, 2),
    ("10.1.0.0/31", ["10.1.0.0", "10.1.0.1"], 2, 2),  # RFC 3021: both are hosts
    ("10.1.0.1/32", ["10.1.0.1"], 1, 1),
    ("10.1.0.1/32", ["10.1.0.2"], 0, 1),
])
def test_utilisation(cidr: str, addresses: list[str], used: int, usable: int) -> None:
    got = utilisation(plan((cidr, P, 1)), obs(*[(a, MAC_A, 1, P) for a in addresses]), EMPTY_ADDRS)
    assert (got[0].tolist(), got[1].tolist()) == ([used], [usable])


def test_utilisation_counts_distinct_registered_or_observed_in_zone() -> None:
    table = plan(("10.1.0.0/29", P, 1), ("10.1.0.0/29", D, 1), ("10.1.0.0/28", E, 1))
    seen = obs(("10.1.0.1", MAC_A, 1, P), ("10.1.0.1", MAC_B, 1, P), ("10.1.0.2", MAC_A, 1, P),
               ("10.1.0.3", MAC_A, 1, D))
    registered = addrs(("10.1.0.2", 1), ("10.1.0.4", 1))
    used, usable = utilisation(table, seen, registered)
    assert used.tolist() == [3, 3, 2]  # P: .1 .2 seen, .4 registered; D: .3 seen, .2 .4 registered; E: .2 .4
    assert usable.tolist() == [6, 6, 14]


@pytest.mark.parametrize(("used", "full"), [(228, False), (229, True), (254, True)])  # 0.9 × 254 = 228.6
def test_prefix_pressure_full(used: int, full: bool) -> None:
    seen = obs(*[(a, MAC_A, 1, P) for a in hosts("10.1.0.1", used)])
    found = prefix_pressure(plan(("10.1.0.0/24", P, 1)), seen, EMPTY_ADDRS, NOW, observed_since=WATCHED)
    assert found.keys() == ([(11, 1, "10.1.0.0/24")] if full else [])
    if full:
        assert found.evidence[0]["reasons"] == ["full"]
        assert found.evidence[0]["prefixes"][0]["used"] == used
        assert found.evidence[0]["prefixes"][0]["usable"] == 254


@pytest.mark.parametrize(("last_seen", "quiet"), [(None, True), (NOW - 31 * DAY, True), (NOW - 30 * DAY, False),
                                                  (NOW, False)])
def test_prefix_pressure_quiet(last_seen: float | None, quiet: bool) -> None:
    seen = obs(("10.1.0.9", MAC_A, 1, P, last_seen)) if last_seen is not None else EMPTY_OBS
    found = prefix_pressure(plan(("10.1.0.0/24", P, 1)), seen, EMPTY_ADDRS, NOW, observed_since=WATCHED)
    assert [e["reasons"] for e in found.evidence] == ([["quiet"]] if quiet else [])
    if quiet:
        assert found.evidence[0]["prefixes"][0]["last_seen"] == last_seen
        assert (math.isnan(found.last_seen[0]) if last_seen is None else found.last_seen[0] == last_seen)


def test_prefix_pressure_full_and_quiet_and_only_active() -> None:
    table = plan(("10.1.0.0/31", P, 1), ("10.2.0.0/24", P, 1, RESERVED), ("10.3.0.0/24", P, 1, DEPRECATED))
    found = prefix_pressure(table, EMPTY_OBS, addrs(("10.1.0.0", 1), ("10.1.0.1", 1)), NOW, observed_since=WATCHED)
    assert found.keys() == [(11, 1, "10.1.0.0/31")]
    assert found.evidence[0]["reasons"] == ["full", "quiet"]
    assert found.evidence[0]["prefixes"][0]["ratio"] == 1.0


@pytest.mark.parametrize(("full_ratio", "flagged"), [(0.5, True), (0.51, False)])
def test_prefix_pressure_ratio_is_a_parameter(full_ratio: float, flagged: bool) -> None:
    seen = obs(("10.1.0.1", MAC_A, 1, P))
    found = prefix_pressure(plan(("10.1.0.0/30", P, 1)), seen, EMPTY_ADDRS, NOW, observed_since=WATCHED,
                            full_ratio=full_ratio)
    assert len(found) == int(flagged)


def test_prefix_pressure_full_despite_a_rounding_error() -> None:
    # a range of 52 addresses (50 usable), 7 of them seen: 0.14 × 50 is 7.000000000000001 in floating point
    table = PlanPrefixes([1], [ip_to_int("10.1.0.0")], [ip_to_int("10.1.0.51")], [P], [0], [1], [ACTIVE])
    seen = obs(*[(a, MAC_A, 1, P) for a in hosts("10.1.0.1", 7)])
    found = prefix_pressure(table, seen, EMPTY_ADDRS, NOW, observed_since=WATCHED, full_ratio=0.14)
    assert subjects(found) == ["10.1.0.0-10.1.0.51"]


@pytest.mark.parametrize(("allocated_days_ago", "quiet"), [(0, False), (29, False), (31, True)])
def test_prefix_pressure_counts_unused_from_the_allocation(allocated_days_ago: int, quiet: bool) -> None:
    # Nothing ever seen in the block: a block allocated today (or N−1 days ago) has had no time to be used.
    table = PlanPrefixes.from_cidrs([(1, "10.1.0.0/28", P, 0, 1, ACTIVE)],
                                    allocated_at=[NOW - allocated_days_ago * DAY])
    found = prefix_pressure(table, EMPTY_OBS, EMPTY_ADDRS, NOW, observed_since=WATCHED, quiet_days=30)
    assert [e["reasons"] for e in found.evidence] == ([["quiet"]] if quiet else [])
    if quiet:
        assert found.evidence[0]["prefixes"][0]["unused_since"] == NOW - allocated_days_ago * DAY


@pytest.mark.parametrize(("watched_days_ago", "quiet"), [(None, False), (0, False), (29, False), (31, True)])
def test_prefix_pressure_counts_unused_from_the_start_of_observation(watched_days_ago: int | None,
                                                                     quiet: bool) -> None:
    # A block allocated long ago, but the wire watched only since: silence before that proves nothing.
    table = PlanPrefixes.from_cidrs([(1, "10.1.0.0/28", P, 0, 1, ACTIVE)], allocated_at=[NOW - 400 * DAY])
    since = math.nan if watched_days_ago is None else NOW - watched_days_ago * DAY
    found = prefix_pressure(table, EMPTY_OBS, EMPTY_ADDRS, NOW, observed_since=since, quiet_days=30)
    assert [e["reasons"] for e in found.evidence] == ([["quiet"]] if quiet else [])


def test_prefix_pressure_still_finds_a_new_block_full() -> None:
    table = PlanPrefixes.from_cidrs([(1, "10.1.0.0/30", P, 0, 1, ACTIVE)], allocated_at=[NOW])
    found = prefix_pressure(table, obs(("10.1.0.1", MAC_A, 1, P), ("10.1.0.2", MAC_A, 1, P)), EMPTY_ADDRS, NOW,
                            observed_since=WATCHED)
    assert [e["reasons"] for e in found.evidence] == [["full"]]


# ----------------------------------------------------------------------------------------------------------------
# Rule 12: approved and unseen


@pytest.mark.parametrize(("approved_at", "approved", "role", "last_seen", "flagged"), [
    (NOW - 91 * DAY, True, Role.HOST, None, True),
    (NOW - 91 * DAY, True, Role.HOST, NOW - 91 * DAY, True),  # seen, but not since
    (NOW - 91 * DAY, True, Role.HOST, NOW - 90 * DAY, False),  # seen exactly at the cutoff
    (NOW - 89 * DAY, True, Role.HOST, None, False),  # too recent an approval
    (math.nan, True, Role.HOST, None, False),  # unknown approval date
    (NOW - 91 * DAY, False, Role.HOST, None, False),
    (NOW - 91 * DAY, True, Role.LOOPBACK, None, False),  # loopbacks never answer ARP
    (NOW - 91 * DAY, True, Role.GATEWAY, None, True),
])
def test_unseen_approved(approved_at: float, approved: bool, role: Role, last_seen: float | None,
                         flagged: bool) -> None:
    seen = obs(("10.1.0.9", MAC_A, 1, E, last_seen)) if last_seen is not None else EMPTY_OBS
    found = unseen_approved(addrs(("10.1.0.9", 3, role, -1, approved, True, approved_at)), seen, NOW)
    assert found.keys() == ([(12, 3, "10.1.0.9")] if flagged else [])
    if flagged:
        assert found.evidence[0]["last_seen"] == last_seen
        assert found.evidence[0]["approved_at"] == approved_at


def test_unseen_approved_one_per_ip_and_unit_with_the_earliest_approval() -> None:
    registered = addrs(("10.1.0.9", 3, Role.HOST, -1, True, True, NOW - 100 * DAY),
                       ("10.1.0.9", 3, Role.HOST, -1, True, True, NOW - 200 * DAY),
                       ("10.1.0.8", 3, Role.HOST, -1, True, True, NOW - 200 * DAY))
    found = unseen_approved(registered, obs(("10.1.0.7", MAC_A, 1, P)), NOW, days=90)
    assert found.keys() == [(12, 3, "10.1.0.8"), (12, 3, "10.1.0.9")]
    assert found.evidence[1]["approved_at"] == NOW - 200 * DAY


# ----------------------------------------------------------------------------------------------------------------
# Everything at once


def test_check_all_of_nothing_is_empty() -> None:
    found = check_all(EMPTY_PLAN, aggregates(), EMPTY_OBS, EMPTY_PORTS, EMPTY_ADDRS, EMPTY_LINKS, NOW)
    assert len(found) == 0
    assert found.counts() == {r.name.lower(): 0 for r in Rule}


def test_check_all_tolerates_nan_times() -> None:
    seen = obs(("10.9.0.1", MAC_A, 1, P, math.nan))
    found = check_all(plan(("10.1.0.0/24", P, 1)), CITY, seen, EMPTY_PORTS,
                      addrs(("10.1.0.1", 1, Role.HOST, -1, True, True, math.nan)), links((1, True, math.nan)), NOW)
    assert found.counts()["outside_plan"] == 1


def _city() -> tuple[Any, ...]:
    table = plan(("10.1.0.0/24", P, 1), ("10.1.1.0/24", D, 2), ("10.1.1.128/25", D, 2), ("10.3.0.0/24", E, 3),
                 ("10.1.2.0/30", P, 1), ("10.1.3.0/24", P, -1))
    seen = obs(
        ("10.9.0.1", MAC_A, 1, P),  # 1 outside the plan
        ("10.1.1.5", MAC_B, 1, D),  # 2 unit 2's address at unit 1
        ("10.1.0.7", MAC_C, 1, P),  # 3 unregistered
        ("10.1.0.8", mac(1), 1, P), ("10.1.0.8", mac(2), 1, P),  # 4 duplicate
        ("10.1.0.9", mac(3), 1, P),  # 5 bound to mac(4)
        *[(ip, mac(5), 1, P) for ip in hosts("10.1.0.100", 9)],  # 7 NAT
        ("10.1.1.9", mac(6), 1, P),  # 8 a dedicated address in the public zone (and outside the public plan)
        ("10.1.2.1", mac(7), 1, P), ("10.1.2.2", mac(7), 1, P),  # 11 a full /30
    )
    mac_table = ports(*[(mac(10 + i), 1, 5) for i in range(5)])  # 6
    registered = addrs(("10.1.0.9", 1, Role.HOST, mac(4)), ("10.1.0.50", 1))  # 12 (.50 never seen)
    return table, CITY, seen, mac_table, registered, links((1, True, math.nan)), NOW  # 10


def test_check_all_finds_every_rule_with_unique_json_safe_keys() -> None:
    found = check_all(*_city())
    assert all(found.counts()[r.name.lower()] >= 1 for r in Rule), found.counts()
    assert found.rule.tolist() == sorted(found.rule.tolist())
    assert len(set(found.keys())) == len(found)
    json.dumps(found.evidence, allow_nan=False)
    assert all(isinstance(s, str) for s in found.subject)
    assert check_all(*_city()).keys() == found.keys()  # a re-run finds the same violations


def test_check_all_uses_the_limits() -> None:
    strict = check_all(*_city())
    lenient = check_all(*_city(), Limits(max_macs_per_port=5, max_ips_per_mac=9))
    assert strict.counts()["crowded_port"] == 1
    assert lenient.counts()["crowded_port"] == 0
    assert lenient.counts()["nat_behind_mac"] == 0


@pytest.mark.parametrize(("field", "value"), [("max_macs_per_port", 0), ("full_ratio", 1.5), ("full_ratio", 0.0),
                                              ("window", 0), ("stale_hours", math.nan)])
def test_limits_refuse_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"^{field}"):
        Limits(**{field: value})


def test_violations_concat_and_select() -> None:
    found = check_all(*_city())
    again = Violations.concat([found.of_rule(r) for r in Rule])
    assert again.keys() == found.keys()
    assert len(Violations.concat([])) == 0
    assert found.of_rule(Rule.STALE_COLLECTION).keys() == [(10, 1, "collection")]
    with pytest.raises(ValueError, match=r"^evidence"):
        Violations(found.rule, found.unit, found.subject, found.first_seen, found.last_seen, [])
