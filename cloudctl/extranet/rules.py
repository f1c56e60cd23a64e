"""Extranet compliance rules: what the wire shows against what the address plan allows.

Pure functions over numpy arrays: no database, no I/O, no clock (``now`` is an argument). The
service loads the plan's leaf prefixes into :class:`PlanPrefixes`, the city's blocks into
:class:`Aggregates`, the ARP/MAC collection of a window into :class:`Observations` and
:class:`MacPorts`, the registered addresses into :class:`Addresses` and the units' collection
freshness into :class:`Links`; each rule returns a :class:`Violations`, and :func:`check_all` runs
all twelve.

Addresses are IPv4 as int64 and MACs as 48-bit int64. Every interval lookup uses one sorted array
of keys ``zone << 32 | ip`` so that one ``np.searchsorted`` answers for every zone at once.

A violation's ``(rule, unit, subject)`` is the key the service keeps across runs: every rule emits
at most one violation per key, and subjects are canonical strings (dotted IPs, ``aa:bb:…`` MACs,
CIDRs, ``device:port``) so a re-run finds the same violation. Evidence is built only for the
flagged rows, as small JSON-safe dicts (NaN as None, lists capped at :data:`EVIDENCE_CAP`).
"""

from __future__ import annotations

import ipaddress
import math
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import partial
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CROSS_ZONE_FORBIDDEN",
    "EVIDENCE_CAP",
    "GOVERNMENT_ZONES",
    "ZONES",
    "Addresses",
    "Aggregates",
    "Limits",
    "Links",
    "MacPorts",
    "Observations",
    "PlanPrefixes",
    "PrefixStatus",
    "Role",
    "Rule",
    "Violations",
    "Zone",
    "binding_changed",
    "check_all",
    "cross_zone",
    "crowded_port",
    "duplicate_ip",
    "format_prefix",
    "int_to_ip",
    "int_to_mac",
    "ip_to_int",
    "ips_to_ints",
    "mac_to_int",
    "nat_behind_mac",
    "outside_plan",
    "parse_prefix",
    "plan_integrity",
    "prefix_pressure",
    "stale_collection",
    "unapproved",
    "unseen_approved",
    "utilisation",
    "wrong_unit",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
Int8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

ZONES = ("public", "dedicated", "internet", "enterprise", "management")
IP_MAX = 2**32 - 1
MAC_MAX = 2**48 - 1
DAY = 86400.0
HOUR = 3600.0
# Lists in evidence are capped: a hub with 300 MACs is proven by the count and a sample, not by all 300.
EVIDENCE_CAP = 16
# full_ratio × usable is a float product: 0.14 × 50 is 7.000000000000001, yet 7 used of 50 is 14 % full.
_EPS = 1e-9
_SHIFT = 32  # key = zone << 32 | ip: IPs take 32 bits, zone codes sit above them


class Zone(IntEnum):
    """Extranet zones; stored as int8 codes in the ``zone`` columns."""

    PUBLIC = 0
    DEDICATED = 1
    INTERNET = 2
    ENTERPRISE = 3
    MANAGEMENT = 4

    @property
    def label(self) -> str:
        return _ZONE_LABELS[self]


_ZONE_LABELS = {Zone.PUBLIC: "公用网络区", Zone.DEDICATED: "专用网络区", Zone.INTERNET: "互联网接入区",
                Zone.ENTERPRISE: "企业接入区", Zone.MANAGEMENT: "管理区"}
GOVERNMENT_ZONES = frozenset({Zone.PUBLIC, Zone.DEDICATED, Zone.MANAGEMENT})


class Role(IntEnum):
    """A registered address's role; everything but HOST is infrastructure."""

    HOST = 0
    GATEWAY = 1
    VRRP = 2
    VIP = 3
    LOOPBACK = 4


class PrefixStatus(IntEnum):
    ACTIVE = 0
    RESERVED = 1
    DEPRECATED = 2


class Rule(IntEnum):
    """Rule codes as stored in :attr:`Violations.rule`; the label is what the console shows."""

    OUTSIDE_PLAN = 1
    WRONG_UNIT = 2
    UNAPPROVED = 3
    DUPLICATE_IP = 4
    BINDING_CHANGED = 5
    CROWDED_PORT = 6
    NAT_BEHIND_MAC = 7
    CROSS_ZONE = 8
    PLAN_INTEGRITY = 9
    STALE_COLLECTION = 10
    PREFIX_PRESSURE = 11
    UNSEEN_APPROVED = 12

    @property
    def label(self) -> str:
        return _RULE_LABELS[self]


_RULE_LABELS = {
    Rule.OUTSIDE_PLAN: "规划外地址", Rule.WRONG_UNIT: "跨单位占用地址", Rule.UNAPPROVED: "未审批或未签安全承诺",
    Rule.DUPLICATE_IP: "IP地址冲突", Rule.BINDING_CHANGED: "IP-MAC绑定变更",
    Rule.CROWDED_PORT: "端口下挂多终端（疑似私接）", Rule.NAT_BEHIND_MAC: "疑似NAT共享上网",
    Rule.CROSS_ZONE: "跨区地址泄漏", Rule.PLAN_INTEGRITY: "地址规划数据问题", Rule.STALE_COLLECTION: "设备采集中断",
    Rule.PREFIX_PRESSURE: "地址段使用率异常", Rule.UNSEEN_APPROVED: "已审批地址长期未使用",
}


def _forbidden_pairs() -> BoolArray:
    matrix = np.zeros((len(Zone), len(Zone)), dtype=np.bool_)
    # [planned zone, zone where seen]
    for planned in (Zone.DEDICATED, Zone.MANAGEMENT):
        for seen in (Zone.PUBLIC, Zone.INTERNET):
            matrix[planned, seen] = True  # non-public government addresses must never reach the open zones
    for government in GOVERNMENT_ZONES:
        matrix[Zone.ENTERPRISE, government] = True  # enterprises stay out of government VLANs...
        matrix[government, Zone.ENTERPRISE] = True  # ...and government addresses out of the enterprise zone
    matrix.flags.writeable = False  # a shared default: a caller passes its own matrix instead of editing this one
    return matrix


CROSS_ZONE_FORBIDDEN: BoolArray = _forbidden_pairs()


# ----------------------------------------------------------------------------------------------------------------
# Addresses, prefixes and MACs


def ip_to_int(text: str) -> int:
    """``"10.1.2.3"`` → 167838211; raises ValueError for anything but a dotted-quad IPv4 address."""
    return int(ipaddress.IPv4Address(text))


def int_to_ip(value: int) -> str:
    """167838211 → ``"10.1.2.3"``."""
    value = int(value)
    if not 0 <= value <= IP_MAX:
        raise ValueError(f"ip: {value} is not an IPv4 address")
    return _ip(value)


def _ip(value: int) -> str:
    # An f-string is 5× faster than ipaddress and subjects are built for every flagged row.
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


_pton = partial(socket.inet_pton, socket.AF_INET)


def ips_to_ints(texts: Iterable[str]) -> IntArray:
    """Dotted-quad strings → int64 array, about 0.2 µs a string.

    ``inet_pton`` rather than ``inet_aton``: it rejects the shorthand forms (``"10.1"``, ``"0x0a.1.1.1"``)
    that aton accepts and a switch never prints.
    """
    texts = texts if isinstance(texts, Sequence | np.ndarray) else list(texts)
    try:
        packed = b"".join(map(_pton, texts))
    except (OSError, TypeError):
        for i, text in enumerate(texts):
            try:
                _pton(text)
            except (OSError, TypeError):
                raise ValueError(f"ips[{i}]: {text!r} is not a dotted-quad IPv4 address") from None
        raise
    return np.frombuffer(packed, dtype=">u4").astype(np.int64)


def parse_prefix(text: str) -> tuple[int, int, int]:
    """``"10.1.0.0/16"`` → ``(start, end_inclusive, length)``; host bits set is a ValueError."""
    network = ipaddress.IPv4Network(text, strict=True)
    return int(network.network_address), int(network.broadcast_address), network.prefixlen


def format_prefix(start: int, end: int) -> str:
    """The canonical text of a range: its CIDR when it is one (``"10.1.0.0/16"``), else ``"a.b.c.d-e.f.g.h"``."""
    start, end = int(start), int(end)
    size = end - start + 1
    if size > 0 and size & (size - 1) == 0 and start % size == 0:
        return f"{_ip(start)}/{32 - (size.bit_length() - 1)}"
    return f"{_ip(start)}-{_ip(end)}"


_HEX_DIGITS = frozenset("0123456789abcdef")


def mac_to_int(text: str) -> int:
    """``"aa:bb:cc:dd:ee:ff"`` → int; also Huawei/H3C ``aabb-ccdd-eeff`` and Cisco ``aabb.ccdd.eeff``."""
    digits = text.strip().lower().replace(":", "").replace("-", "").replace(".", "")
    if len(digits) != 12 or not _HEX_DIGITS.issuperset(digits):
        raise ValueError(f"mac: {text!r} is not a MAC address")
    return int(digits, 16)


def int_to_mac(value: int) -> str:
    """int → ``"aa:bb:cc:dd:ee:ff"`` (lower case: the canonical form of a subject)."""
    value = int(value)
    if not 0 <= value <= MAC_MAX:
        raise ValueError(f"mac: {value} is not a 48-bit MAC address")
    return _mac(value)


def _mac(value: int) -> str:
    return value.to_bytes(6, "big").hex(":")  # 8× faster than slicing a hex string


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def _column(value: Any, dtype: Any, name: str) -> npt.NDArray[Any]:
    """``value`` as a 1-D array of ``dtype``, refusing casts that would change a value (float → int, overflow)."""
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if array.dtype == dtype:
        return array
    if array.size == 0:
        return np.empty(0, dtype=dtype)
    if not np.can_cast(array.dtype, dtype, casting="same_kind"):
        raise ValueError(f"{name}: expected {np.dtype(dtype).name}, got {array.dtype.name}")
    cast = array.astype(dtype)
    if not np.array_equal(cast, array):
        raise ValueError(f"{name}: values out of range for {np.dtype(dtype).name}")
    return cast


def _columns(table: Any, spec: dict[str, Any]) -> int:
    """Validate and store every column of a frozen table; returns the row count."""
    rows: int | None = None
    first = ""
    for name, dtype in spec.items():
        array = _column(getattr(table, name), dtype, name)
        if rows is None:
            rows, first = array.shape[0], name
        elif array.shape[0] != rows:
            raise ValueError(f"{name}: has {array.shape[0]} rows, {first} has {rows}")
        object.__setattr__(table, name, array)
    return rows or 0


def _check_range(array: npt.NDArray[np.integer[Any]], low: int, high: int, name: str) -> None:
    if array.size and (int(array.min()) < low or int(array.max()) > high):
        raise ValueError(f"{name}: values must lie in [{low}, {high}]")


def _check_zone(zone: Int8Array) -> None:
    _check_range(zone, 0, len(Zone) - 1, "zone")


@dataclass(frozen=True, slots=True)
class PlanPrefixes:
    """The plan's leaf prefixes (allocated to units, not containers), as (n,) arrays."""

    id: IntArray
    start: IntArray
    end: IntArray  # inclusive
    zone: Int8Array
    vrf: Int32Array
    unit: IntArray  # -1: no unit
    status: Int8Array  # PrefixStatus
    # When the block entered the plan (epoch seconds); NaN when unknown, and left out: unknown for every row.
    # Rule 11 counts "unused" from here at the earliest: a block allocated today has had no time to be used.
    allocated_at: FloatArray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self) -> None:
        if np.asarray(self.allocated_at).size == 0:
            object.__setattr__(self, "allocated_at", np.full(np.asarray(self.id).shape[0], np.nan))
        _columns(self, {"id": np.int64, "start": np.int64, "end": np.int64, "zone": np.int8, "vrf": np.int32,
                        "unit": np.int64, "status": np.int8, "allocated_at": np.float64})
        _check_range(self.start, 0, IP_MAX, "start")
        _check_range(self.end, 0, IP_MAX, "end")
        if np.any(self.end < self.start):
            raise ValueError("end: a prefix ends before it starts")
        _check_zone(self.zone)
        _check_range(self.status, 0, len(PrefixStatus) - 1, "status")

    def __len__(self) -> int:
        return int(self.id.shape[0])

    @classmethod
    def from_cidrs(cls, rows: Iterable[tuple[int, str, int, int, int, int]],
                   allocated_at: Sequence[float] | None = None) -> PlanPrefixes:
        """Rows of ``(id, cidr, zone, vrf, unit, status)``: for tests and the demo."""
        rows = list(rows)
        parsed = [parse_prefix(row[1]) for row in rows]
        return cls(np.array([r[0] for r in rows], dtype=np.int64), np.array([p[0] for p in parsed], dtype=np.int64),
                   np.array([p[1] for p in parsed], dtype=np.int64), np.array([r[2] for r in rows], dtype=np.int8),
                   np.array([r[3] for r in rows], dtype=np.int32), np.array([r[4] for r in rows], dtype=np.int64),
                   np.array([r[5] for r in rows], dtype=np.int8),
                   np.array(allocated_at if allocated_at is not None else [], dtype=np.float64))


@dataclass(frozen=True, slots=True)
class Aggregates:
    """The blocks the city received."""

    id: IntArray
    start: IntArray
    end: IntArray  # inclusive

    def __post_init__(self) -> None:
        _columns(self, {"id": np.int64, "start": np.int64, "end": np.int64})
        _check_range(self.start, 0, IP_MAX, "start")
        _check_range(self.end, 0, IP_MAX, "end")

    def __len__(self) -> int:
        return int(self.id.shape[0])


@dataclass(frozen=True, slots=True)
class Observations:
    """One row per (ip, mac, device) seen in the window."""

    ip: IntArray
    mac: IntArray  # -1: unknown
    device: Int32Array
    unit: IntArray  # the device's unit, or the VLAN owner's when known; -1 unknown
    zone: Int8Array  # the zone of the VLAN or interface where it was seen
    vlan: Int32Array  # -1 unknown
    first_seen: FloatArray  # epoch seconds
    last_seen: FloatArray

    def __post_init__(self) -> None:
        _columns(self, {"ip": np.int64, "mac": np.int64, "device": np.int32, "unit": np.int64, "zone": np.int8,
                        "vlan": np.int32, "first_seen": np.float64, "last_seen": np.float64})
        _check_range(self.ip, 0, IP_MAX, "ip")
        _check_range(self.mac, -1, MAC_MAX, "mac")
        _check_zone(self.zone)

    def __len__(self) -> int:
        return int(self.ip.shape[0])


@dataclass(frozen=True, slots=True)
class MacPorts:
    """MAC-table rows."""

    mac: IntArray
    device: Int32Array
    port: Int32Array  # interned port id
    vlan: Int32Array
    port_is_access: BoolArray  # access port, as opposed to an uplink or trunk

    def __post_init__(self) -> None:
        _columns(self, {"mac": np.int64, "device": np.int32, "port": np.int32, "vlan": np.int32,
                        "port_is_access": np.bool_})
        _check_range(self.mac, -1, MAC_MAX, "mac")

    def __len__(self) -> int:
        return int(self.mac.shape[0])


@dataclass(frozen=True, slots=True)
class Addresses:
    """The plan's registered addresses."""

    ip: IntArray
    unit: IntArray  # -1: none
    role: Int8Array  # Role
    mac: IntArray  # -1: no registered binding
    approved: BoolArray  # an approved IP application covers it
    commitment: BoolArray  # that application has an accepted security commitment (安全承诺)
    approved_at: FloatArray  # epoch seconds, NaN unknown

    def __post_init__(self) -> None:
        _columns(self, {"ip": np.int64, "unit": np.int64, "role": np.int8, "mac": np.int64, "approved": np.bool_,
                        "commitment": np.bool_, "approved_at": np.float64})
        _check_range(self.ip, 0, IP_MAX, "ip")
        _check_range(self.mac, -1, MAC_MAX, "mac")
        _check_range(self.role, 0, len(Role) - 1, "role")

    def __len__(self) -> int:
        return int(self.ip.shape[0])


@dataclass(frozen=True, slots=True)
class Links:
    """Each unit's access link and the freshness of its device collection."""

    unit: IntArray
    active_link: BoolArray
    last_success: FloatArray  # epoch of the last successful collection; NaN never

    def __post_init__(self) -> None:
        _columns(self, {"unit": np.int64, "active_link": np.bool_, "last_success": np.float64})

    def __len__(self) -> int:
        return int(self.unit.shape[0])


# ----------------------------------------------------------------------------------------------------------------
# Output


@dataclass(frozen=True, slots=True)
class Violations:
    """Violations as parallel arrays; ``(rule, unit, subject)`` is each one's stable key."""

    rule: Int8Array  # Rule codes
    unit: IntArray  # -1 unknown
    subject: ObjectArray  # str: a dotted IP, an aa:bb:… MAC, device:port, a CIDR
    first_seen: FloatArray  # the span of the observations behind it; NaN when it rests on none
    last_seen: FloatArray
    evidence: list[dict[str, Any]]

    def __post_init__(self) -> None:
        subject = self.subject
        if not (isinstance(subject, np.ndarray) and subject.dtype == object):
            subject = np.empty(len(self.subject), dtype=object)
            subject[:] = list(self.subject)
        object.__setattr__(self, "subject", subject)
        rows = _columns(self, {"rule": np.int8, "unit": np.int64, "subject": object, "first_seen": np.float64,
                               "last_seen": np.float64})
        if len(self.evidence) != rows:
            raise ValueError(f"evidence: has {len(self.evidence)} rows, rule has {rows}")

    def __len__(self) -> int:
        return int(self.rule.shape[0])

    @classmethod
    def empty(cls) -> Violations:
        return cls(np.empty(0, np.int8), np.empty(0, np.int64), np.empty(0, object), np.empty(0), np.empty(0), [])

    @classmethod
    def concat(cls, parts: Iterable[Violations]) -> Violations:
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.rule for p in parts]), np.concatenate([p.unit for p in parts]),
                   np.concatenate([p.subject for p in parts]), np.concatenate([p.first_seen for p in parts]),
                   np.concatenate([p.last_seen for p in parts]), [e for p in parts for e in p.evidence])

    def keys(self) -> list[tuple[int, int, str]]:
        """The stable ``(rule, unit, subject)`` key of every violation, in order."""
        return list(zip(self.rule.tolist(), self.unit.tolist(), self.subject.tolist(), strict=True))

    def counts(self) -> dict[str, int]:
        """Violations per rule name, every rule present (zero when none): for the metrics."""
        found = np.bincount(self.rule.astype(np.intp), minlength=len(Rule) + 1)
        return {r.name.lower(): int(found[r]) for r in Rule}

    def of_rule(self, rule: Rule | int) -> Violations:
        """The violations of one rule, in order."""
        rows = np.flatnonzero(self.rule == int(rule))
        return Violations(self.rule[rows], self.unit[rows], self.subject[rows], self.first_seen[rows],
                          self.last_seen[rows], [self.evidence[i] for i in rows.tolist()])


def _violations(rule: Rule, unit: IntArray, subjects: list[str], first: FloatArray, last: FloatArray,
                evidence: list[dict[str, Any]]) -> Violations:
    subject = np.empty(len(subjects), dtype=object)
    subject[:] = subjects
    return Violations(np.full(len(subjects), rule, dtype=np.int8), unit, subject, first, last, evidence)


def _num(value: Any, digits: int = 3) -> float | None:
    number = float(value)
    return None if math.isnan(number) else round(number, digits)


def _capped(values: Iterable[Any]) -> list[Any]:
    return sorted(set(values))[:EVIDENCE_CAP]


# ----------------------------------------------------------------------------------------------------------------
# Interval machinery


def _keys(zone: Int8Array, ip: IntArray) -> IntArray:
    """``zone << 32 | ip`` in one buffer (this is on the hot path of :func:`outside_plan`)."""
    keys = zone.astype(np.int64)
    np.left_shift(keys, _SHIFT, out=keys)
    np.bitwise_or(keys, ip, out=keys)
    return keys


def _starts(flags: BoolArray) -> IntArray:
    """Indices where ``flags`` is true, as a run-start array."""
    return np.flatnonzero(flags)


def _merge(starts: IntArray, ends: IntArray, groups: IntArray | None = None) -> tuple[IntArray, IntArray, IntArray]:
    """Merge overlapping or adjacent intervals (within each group): disjoint sorted ``(starts, ends, groups)``.

    Keys are below 2**35 (zone 4 << 32), so ``group << 36 | end`` lets one running maximum serve every
    group: a later group's values are larger than any earlier group's, so the maximum resets by itself.
    """
    if groups is None:
        groups = np.zeros(starts.shape[0], dtype=np.int64)
    n = starts.shape[0]
    if n == 0:
        return starts[:0], ends[:0], groups[:0]
    order = np.lexsort((starts, groups))
    s, e, g = starts[order], ends[order], groups[order]
    reach = np.maximum.accumulate((g << 36) | e) & ((1 << 36) - 1)
    new = np.ones(n, dtype=np.bool_)
    new[1:] = (g[1:] != g[:-1]) | (s[1:] > reach[:-1] + 1)
    begins = _starts(new)
    last = np.append(begins[1:] - 1, n - 1)
    return s[begins], reach[last], g[begins]


@dataclass(frozen=True, slots=True)
class _Coverage:
    """The union of intervals as disjoint sorted keys, led by a sentinel so every lookup index is ≥ 0."""

    start: IntArray
    end: IntArray

    @classmethod
    def of(cls, starts: IntArray, ends: IntArray) -> _Coverage:
        s, e, _ = _merge(starts, ends)
        # keys are ≥ 0, so the (-1, -1) sentinel catches every key below the first interval and contains none
        return cls(np.concatenate(([-1], s)), np.concatenate(([-1], e)))

    def contains(self, keys: IntArray) -> BoolArray:
        index = np.searchsorted(self.start, keys, side="right")
        index -= 1
        return keys <= self.end[index]


@dataclass(frozen=True, slots=True)
class _Stab:
    """For a point: how many of a set of intervals contain it, and the sum of their values.

    A sweep over the 2n boundaries: +1/+value where an interval starts, -1/-value one past its end.
    With count 1 the sum *is* the one interval's value (a unit, or a prefix's row index).
    """

    point: IntArray
    count: IntArray
    total: IntArray

    @classmethod
    def of(cls, starts: IntArray, ends: IntArray, values: IntArray) -> _Stab:
        points = np.concatenate((starts, ends + 1))
        ones = np.ones(starts.shape[0], dtype=np.int64)
        order = np.argsort(points, kind="stable")
        p = points[order]
        count = np.cumsum(np.concatenate((ones, -ones))[order])
        total = np.cumsum(np.concatenate((values, -values))[order])
        last = np.ones(p.shape[0], dtype=np.bool_)  # keep the last event at each point: it has them all summed
        last[:-1] = p[1:] != p[:-1]
        zero = np.zeros(1, dtype=np.int64)
        return cls(np.concatenate(([-1], p[last])), np.concatenate((zero, count[last])),
                   np.concatenate((zero, total[last])))

    def query(self, keys: IntArray) -> tuple[IntArray, IntArray]:
        index = np.searchsorted(self.point, keys, side="right") - 1
        return self.count[index], self.total[index]


def _distinct(values: IntArray) -> IntArray:
    """Sorted distinct values. (numpy 2's ``np.unique`` hashes first and then sorts anyway: 7× slower here.)"""
    result = np.sort(values)
    if result.size:
        keep = np.ones(result.shape[0], dtype=np.bool_)
        keep[1:] = result[1:] != result[:-1]
        result = result[keep]
    return result


def _member(values: IntArray, distinct: IntArray) -> BoolArray:
    """Whether each value is in ``distinct`` (sorted, as :func:`_distinct` returns)."""
    if distinct.size == 0:
        return np.zeros(values.shape[0], dtype=np.bool_)
    at = np.minimum(np.searchsorted(distinct, values), distinct.shape[0] - 1)
    found: BoolArray = distinct[at] == values
    return found


def _allocated(plan: PlanPrefixes) -> BoolArray:
    allocated: BoolArray = plan.status != PrefixStatus.DEPRECATED
    return allocated


def _coverage(plan: PlanPrefixes) -> _Coverage:
    rows = _allocated(plan)
    return _Coverage.of(_keys(plan.zone[rows], plan.start[rows]), _keys(plan.zone[rows], plan.end[rows]))


def _owners(plan: PlanPrefixes) -> _Stab:
    """Which unit an address is allocated to in a zone: count 1 → the sum is the unit; 0 none; 2+ ambiguous.

    Intervals are merged per unit first, so a point covered twice is covered by two *different* units
    (another VRF of the same zone may reuse the space): the observation does not say which VRF it is
    in, so such an address has no known owner.
    """
    rows = _allocated(plan) & (plan.unit >= 0)
    units = plan.unit[rows]
    distinct, group = np.unique(units, return_inverse=True)
    s, e, g = _merge(_keys(plan.zone[rows], plan.start[rows]), _keys(plan.zone[rows], plan.end[rows]),
                     group.astype(np.int64).reshape(-1))
    return _Stab.of(s, e, distinct[g])


def _owner_of(owners: _Stab, keys: IntArray) -> IntArray:
    count, total = owners.query(keys)
    owner: IntArray = np.where(count == 1, total, -1)
    return owner


def _prefix_of(plan: PlanPrefixes, zone: Int8Array, ip: IntArray) -> IntArray:
    """The row of the one allocated prefix holding each address in its zone; -1 for none or several."""
    rows = np.flatnonzero(_allocated(plan))
    stab = _Stab.of(_keys(plan.zone[rows], plan.start[rows]), _keys(plan.zone[rows], plan.end[rows]), rows)
    count, total = stab.query(_keys(zone, ip))
    found: IntArray = np.where(count == 1, total, -1)
    return found


@dataclass(frozen=True, slots=True)
class _AddressIndex:
    """Registered addresses collapsed per IP (an IP may be registered once per VRF)."""

    ip: IntArray  # sorted, distinct
    unit: IntArray  # the largest registered unit; -1 when none has one
    infrastructure: BoolArray  # some row's role is gateway / vrrp / vip / loopback
    moving: BoolArray  # some row is vrrp or vip: it moves between MACs by design
    approved: BoolArray
    committed: BoolArray  # one approved row also has its security commitment

    @classmethod
    def of(cls, addresses: Addresses) -> _AddressIndex:
        order = np.argsort(addresses.ip, kind="stable")
        ip = addresses.ip[order]
        if ip.size == 0:
            nothing = np.zeros(0, dtype=np.bool_)
            return cls(ip, ip.copy(), nothing, nothing, nothing, nothing)
        new = np.ones(ip.shape[0], dtype=np.bool_)
        new[1:] = ip[1:] != ip[:-1]
        begins = _starts(new)
        role = addresses.role[order]
        approved = addresses.approved[order]

        def any_of(flags: BoolArray) -> BoolArray:
            found: BoolArray = np.logical_or.reduceat(flags, begins)
            return found

        return cls(ip[begins], np.maximum.reduceat(addresses.unit[order], begins), any_of(role != Role.HOST),
                   any_of((role == Role.VRRP) | (role == Role.VIP)), any_of(approved),
                   any_of(approved & addresses.commitment[order]))

    def find(self, ips: IntArray) -> IntArray:
        """Each IP's row here, -1 when not registered."""
        if self.ip.size == 0:
            return np.full(ips.shape[0], -1, dtype=np.int64)
        index = np.minimum(np.searchsorted(self.ip, ips), self.ip.shape[0] - 1)
        found: IntArray = np.where(self.ip[index] == ips, index, -1)
        return found


def _pick(values: npt.NDArray[Any], index: IntArray, missing: Any) -> npt.NDArray[Any]:
    """``values[index]`` with ``missing`` where the index is -1."""
    if values.size == 0:
        return np.full(index.shape[0], missing, dtype=values.dtype)
    picked: npt.NDArray[Any] = np.where(index >= 0, values[np.maximum(index, 0)], missing)
    return picked


# ----------------------------------------------------------------------------------------------------------------
# Building violations from flagged observation rows

Extra = Callable[[list[int], int, int], dict[str, Any]]


def _observed(rule: Rule, obs: Observations, rows: IntArray, key: IntArray, unit: IntArray,
              subject: Callable[[int], str], extra: Extra | None = None) -> Violations:
    """One violation per (key, unit) over the flagged observation ``rows`` (key and unit are aligned with them).

    ``extra(order, lo, hi)`` adds a rule's own evidence for the group at ``order[lo:hi]``, positions into ``rows``.
    """
    if rows.size == 0:
        return Violations.empty()
    order = np.lexsort((unit, key))
    key_o, unit_o = key[order], unit[order]
    new = np.ones(order.shape[0], dtype=np.bool_)
    new[1:] = (key_o[1:] != key_o[:-1]) | (unit_o[1:] != unit_o[:-1])
    begins = _starts(new)
    picked = rows[order]
    first = np.fmin.reduceat(obs.first_seen[picked], begins)  # fmin/fmax: a NaN time does not hide the others
    last = np.fmax.reduceat(obs.last_seen[picked], begins)
    order_list = order.tolist()
    # Python lists once, then slices per group: a numpy call per group would cost more than the lookup.
    zones = obs.zone[picked].tolist()
    macs = obs.mac[picked].tolist()
    devices = obs.device[picked].tolist()
    vlans = obs.vlan[picked].tolist()
    evidence: list[dict[str, Any]] = []
    for lo, hi in pairwise([*begins.tolist(), order.shape[0]]):
        if hi - lo == 1:  # most groups are one row: skip the set/sort (half the time of rule 1's evidence)
            m, v = macs[lo], vlans[lo]
            item: dict[str, Any] = {"zones": [ZONES[zones[lo]]], "macs": [_mac(m)] if m >= 0 else [],
                                    "devices": [devices[lo]], "vlans": [v] if v >= 0 else [], "rows": 1}
        else:
            item = {"zones": [ZONES[z] for z in sorted(set(zones[lo:hi]))],
                    "macs": [_mac(m) for m in _capped(macs[lo:hi]) if m >= 0], "devices": _capped(devices[lo:hi]),
                    "vlans": [v for v in _capped(vlans[lo:hi]) if v >= 0], "rows": hi - lo}
        if extra is not None:
            item.update(extra(order_list, lo, hi))
        evidence.append(item)
    subjects = [subject(k) for k in key_o[begins].tolist()]
    return _violations(rule, unit_o[begins], subjects, first, last, evidence)


def _agree(values: IntArray, groups: IntArray) -> IntArray:
    """Per row: the value its group (equal ``groups``) agrees on, -1 where the group's values differ."""
    if values.size == 0:
        return values.copy()
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    new = np.ones(g.shape[0], dtype=np.bool_)
    new[1:] = g[1:] != g[:-1]
    begins = _starts(new)
    low = np.minimum.reduceat(v, begins)
    high = np.maximum.reduceat(v, begins)
    agreed = np.where(low == high, low, -1)
    result = np.empty_like(values)
    result[order] = np.repeat(agreed, np.diff(np.append(begins, g.shape[0])))
    return result


# ----------------------------------------------------------------------------------------------------------------
# The rules


def outside_plan(obs: Observations, plan: PlanPrefixes) -> Violations:
    """Rule 1: an observed IP outside every allocated (non-deprecated) prefix of the zone where it was seen.

    One violation per (IP, observing unit). The hot path: one ``searchsorted`` of the ``zone << 32 | ip``
    keys over the merged allocated intervals of all zones, so overlapping prefixes (rule 9's business)
    cannot hide an address behind a shorter interval that happens to sort last.
    """
    inside = _coverage(plan).contains(_keys(obs.zone, obs.ip))
    rows = np.flatnonzero(~inside)
    return _observed(Rule.OUTSIDE_PLAN, obs, rows, obs.ip[rows], obs.unit[rows], _ip)


def wrong_unit(obs: Observations, plan: PlanPrefixes) -> Violations:
    """Rule 2: an IP allocated to unit A seen at unit B's device or VLAN, where both units are known.

    One violation per (IP, unit B): B is where it is used and who must give it back.
    """
    owner = _owner_of(_owners(plan), _keys(obs.zone, obs.ip))
    rows = np.flatnonzero((owner >= 0) & (obs.unit >= 0) & (owner != obs.unit))
    owner_rows = owner[rows]
    prefix = _prefix_of(plan, obs.zone[rows], obs.ip[rows])
    start, end = plan.start.tolist(), plan.end.tolist()

    def extra(order: list[int], lo: int, hi: int) -> dict[str, Any]:
        at = order[lo]
        p = int(prefix[at])
        return {"allocated_unit": int(owner_rows[at]), "prefix": format_prefix(start[p], end[p]) if p >= 0 else None}

    return _observed(Rule.WRONG_UNIT, obs, rows, obs.ip[rows], obs.unit[rows], _ip, extra)


def unapproved(obs: Observations, addresses: Addresses, plan: PlanPrefixes) -> Violations:
    """Rule 3: a planned IP in use with no approved application, or whose application lacks a security commitment.

    Evidence ``reason``: ``unregistered`` (no address record), ``not_approved``, ``no_commitment``.
    Gateway / VRRP / VIP / loopback addresses are infrastructure and exempt. An IP outside the plan is
    rule 1's: reporting it here too would open two tickets for one cause. The unit is the registered
    address's, else the allocated prefix's, else the one where it was seen.
    """
    keys = _keys(obs.zone, obs.ip)
    index = _AddressIndex.of(addresses)
    found = index.find(obs.ip)
    infrastructure = _pick(index.infrastructure, found, False)
    committed = _pick(index.committed, found, False)
    rows = np.flatnonzero(~infrastructure & ~committed & _coverage(plan).contains(keys))
    found_rows = found[rows]
    approved = _pick(index.approved, found_rows, False)
    reason = np.where(found_rows < 0, 0, np.where(approved, 2, 1))
    reasons = ("unregistered", "not_approved", "no_commitment")
    unit = _pick(index.unit, found_rows, -1)
    owner = _owner_of(_owners(plan), keys[rows])
    unit = np.where(unit >= 0, unit, np.where(owner >= 0, owner, obs.unit[rows]))

    def extra(order: list[int], lo: int, hi: int) -> dict[str, Any]:
        return {"reason": reasons[int(reason[order[lo]])]}

    return _observed(Rule.UNAPPROVED, obs, rows, obs.ip[rows], unit, _ip, extra)


def duplicate_ip(obs: Observations, addresses: Addresses, window_start: float) -> Violations:
    """Rule 4: one IP with two or more MACs in one zone within the window (``last_seen ≥ window_start``).

    VRRP and VIP addresses move between MACs by design and are exempt. Zones are separate networks
    (the same private address may serve two VRFs), so MACs are counted per (zone, IP); the violation
    is per IP, its unit the registered one, else the one every observing row agrees on, else -1.
    """
    index = _AddressIndex.of(addresses)
    found = index.find(obs.ip)
    candidates = np.flatnonzero((obs.last_seen >= window_start) & (obs.mac >= 0) & ~_pick(index.moving, found, False))
    if candidates.size == 0:
        return Violations.empty()
    keys = _keys(obs.zone[candidates], obs.ip[candidates])
    macs = obs.mac[candidates]
    order = np.lexsort((macs, keys))
    k, m = keys[order], macs[order]
    new_key = np.ones(k.shape[0], dtype=np.bool_)
    new_key[1:] = k[1:] != k[:-1]
    new_mac = new_key.copy()
    new_mac[1:] |= m[1:] != m[:-1]
    group = np.cumsum(new_key) - 1
    distinct = np.bincount(group, weights=new_mac).astype(np.int64)
    rows = np.sort(candidates[order][distinct[group] >= 2])
    ip = obs.ip[rows]
    registered = _pick(index.unit, found[rows], -1)
    unit = np.where(registered >= 0, registered, _agree(obs.unit[rows], ip))

    row_macs = obs.mac[rows].tolist()

    def extra(order: list[int], lo: int, hi: int) -> dict[str, Any]:
        return {"mac_count": len({row_macs[i] for i in order[lo:hi]})}

    return _observed(Rule.DUPLICATE_IP, obs, rows, ip, unit, _ip, extra)


def binding_changed(obs: Observations, addresses: Addresses) -> Violations:
    """Rule 5: a registered IP↔MAC binding (``addresses.mac ≥ 0``) observed with a different MAC.

    An IP may carry several bindings (one per VRF); a MAC matching any of them is fine. VRRP and VIP
    addresses are exempt as in rule 4: their MAC changes on every failover.
    """
    bound = np.flatnonzero((addresses.mac >= 0) & (addresses.role != Role.VRRP) & (addresses.role != Role.VIP))
    if bound.size == 0 or len(obs) == 0:
        return Violations.empty()
    # (ip, mac) pairs as one int64: the MAC replaced by its rank among the bound MACs (< 2**31 of them)
    bound_macs = _distinct(addresses.mac[bound])
    pairs = _distinct((addresses.ip[bound] << 31) | np.searchsorted(bound_macs, addresses.mac[bound]))
    candidates = np.flatnonzero(_member(obs.ip, _distinct(addresses.ip[bound])))
    rank = np.searchsorted(bound_macs, obs.mac[candidates])
    matches = _member(obs.mac[candidates], bound_macs) & _member((obs.ip[candidates] << 31) | rank, pairs)
    rows = candidates[~matches]
    index = _AddressIndex.of(addresses)
    unit = _pick(index.unit, index.find(obs.ip[rows]), -1)
    flagged = bound[_member(addresses.ip[bound], _distinct(obs.ip[rows]))]  # the evidence needs only these
    by_ip: dict[int, set[int]] = {}
    for ip, mac in zip(addresses.ip[flagged].tolist(), addresses.mac[flagged].tolist(), strict=True):
        by_ip.setdefault(ip, set()).add(mac)
    row_ips = obs.ip[rows].tolist()

    def extra(order: list[int], lo: int, hi: int) -> dict[str, Any]:
        return {"registered_macs": [_mac(m) for m in sorted(by_ip[row_ips[order[lo]]])[:EVIDENCE_CAP]]}

    return _observed(Rule.BINDING_CHANGED, obs, rows, obs.ip[rows], unit, _ip, extra)


def crowded_port(ports: MacPorts, max_macs: int) -> Violations:
    """Rule 6: more than ``max_macs`` distinct MACs on one access port (a hub or a private router, 私接).

    Subject ``"device:port"`` (the interned ids). The MAC table says nothing of units: unit -1.
    """
    rows = np.flatnonzero(ports.port_is_access & (ports.mac >= 0))
    if rows.size == 0:
        return Violations.empty()
    device, port, mac = ports.device[rows].astype(np.int64), ports.port[rows].astype(np.int64), ports.mac[rows]
    order = np.lexsort((mac, port, device))
    d, p, m, v = device[order], port[order], mac[order], ports.vlan[rows][order]
    new_port = np.ones(order.shape[0], dtype=np.bool_)
    new_port[1:] = (d[1:] != d[:-1]) | (p[1:] != p[:-1])
    new_mac = new_port.copy()
    new_mac[1:] |= m[1:] != m[:-1]
    begins = _starts(new_port)
    counts = np.add.reduceat(new_mac.astype(np.int64), begins)
    bounds = np.append(begins, order.shape[0])
    flagged = np.flatnonzero(counts > max_macs)
    subjects, evidence = [], []
    m_list, v_list = m.tolist(), v.tolist()
    for g in flagged.tolist():
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        subjects.append(f"{int(d[lo])}:{int(p[lo])}")
        evidence.append({"mac_count": int(counts[g]), "max_macs": int(max_macs),
                         "macs": [_mac(x) for x in _capped(m_list[lo:hi])],
                         "vlans": [x for x in _capped(v_list[lo:hi]) if x >= 0]})
    nan = np.full(len(subjects), np.nan)
    return _violations(Rule.CROWDED_PORT, np.full(len(subjects), -1, dtype=np.int64), subjects, nan, nan.copy(),
                       evidence)


def nat_behind_mac(obs: Observations, addresses: Addresses, max_ips: int) -> Violations:
    """Rule 7: more than ``max_ips`` distinct IPs behind one MAC that is not a registered gateway / VRRP / VIP.

    A router answers ARP for what it routes, so its MAC legitimately carries many IPs; any other MAC
    doing so is a NAT or a private router behind the port. The unit is the one every row agrees on, else -1.
    """
    routers = addresses.mac[(addresses.mac >= 0) & ((addresses.role == Role.GATEWAY) | (addresses.role == Role.VRRP)
                                                    | (addresses.role == Role.VIP))]
    candidates = np.flatnonzero((obs.mac >= 0) & ~_member(obs.mac, _distinct(routers)))
    if candidates.size == 0:
        return Violations.empty()
    mac, ip = obs.mac[candidates], obs.ip[candidates]
    order = np.lexsort((ip, mac))
    m, i = mac[order], ip[order]
    new_mac = np.ones(order.shape[0], dtype=np.bool_)
    new_mac[1:] = m[1:] != m[:-1]
    new_ip = new_mac.copy()
    new_ip[1:] |= i[1:] != i[:-1]
    group = np.cumsum(new_mac) - 1
    distinct = np.bincount(group, weights=new_ip).astype(np.int64)
    rows = np.sort(candidates[order][distinct[group] > max_ips])
    unit = _agree(obs.unit[rows], obs.mac[rows])

    row_ips = obs.ip[rows].tolist()

    def extra(order: list[int], lo: int, hi: int) -> dict[str, Any]:
        ips = sorted({row_ips[j] for j in order[lo:hi]})
        return {"ip_count": len(ips), "max_ips": int(max_ips), "ips": [_ip(x) for x in ips[:EVIDENCE_CAP]]}

    return _observed(Rule.NAT_BEHIND_MAC, obs, rows, obs.mac[rows], unit, _mac, extra)


def cross_zone(obs: Observations, plan: PlanPrefixes, forbidden: BoolArray = CROSS_ZONE_FORBIDDEN) -> Violations:
    """Rule 8: an address planned in one zone seen in another where ``forbidden[planned, seen]``.

    An address also planned in the zone where it is seen is not a leak (private space reused by
    another VRF). One violation per (IP, observing unit); evidence lists the zones it is planned in.
    """
    forbidden = np.asarray(forbidden, dtype=np.bool_)
    if forbidden.shape != (len(Zone), len(Zone)):
        raise ValueError(f"forbidden: expected a ({len(Zone)}, {len(Zone)}) matrix, got shape {forbidden.shape}")
    coverage = _coverage(plan)
    planned = np.zeros((len(Zone), len(obs)), dtype=np.bool_)
    for zone in Zone:
        planned[zone] = coverage.contains((np.int64(zone) << _SHIFT) | obs.ip)
    seen_here = planned[obs.zone.astype(np.intp), np.arange(len(obs))]
    leak = np.zeros(len(obs), dtype=np.bool_)
    for zone in Zone:
        leak |= planned[zone] & forbidden[zone][obs.zone.astype(np.intp)]
    rows = np.flatnonzero(leak & ~seen_here)
    planned_rows = planned[:, rows]

    def extra(order: list[int], lo: int, hi: int) -> dict[str, Any]:
        return {"planned_zones": [ZONES[z] for z in Zone if planned_rows[z, order[lo]]]}

    return _observed(Rule.CROSS_ZONE, obs, rows, obs.ip[rows], obs.unit[rows], _ip, extra)


Entry = tuple[int, str, tuple[int, ...], list[str], str, dict[str, Any]]


def _merged(rule: Rule, entries: list[Entry]) -> Violations:
    """Plan-level violations, one per (unit, subject); an entry is (unit, subject, sort key, reasons, list name, item).

    Sort keys are (start, -end) per prefix: the plan's order, a container before what it contains.

    The same CIDR may exist in two VRFs with one unit: the key cannot tell them apart, so both land in
    one violation whose evidence lists each (usually the list has one item). ``last_seen`` is the
    latest ``last_seen`` among the items, NaN when none has one.
    """
    grouped: dict[tuple[int, str], tuple[tuple[int, ...], set[str], dict[str, list[dict[str, Any]]]]] = {}
    for unit, subject, sort_key, entry_reasons, list_name, item in entries:
        _, found, lists = grouped.setdefault((unit, subject), (sort_key, set(), {}))
        found.update(entry_reasons)
        lists.setdefault(list_name, []).append(item)
    ordered = sorted(grouped.items(), key=lambda kv: (kv[1][0], kv[0][0]))
    last = np.full(len(ordered), np.nan)
    evidence: list[dict[str, Any]] = []
    for n, (_, (_, found_reasons, found_lists)) in enumerate(ordered):
        times = [item["last_seen"] for items in found_lists.values() for item in items
                 if item.get("last_seen") is not None]
        if times:
            last[n] = max(times)
        evidence.append({"reasons": sorted(found_reasons), **found_lists})
    units = np.array([key[0] for key, _ in ordered], dtype=np.int64)
    return _violations(rule, units, [key[1] for key, _ in ordered], np.full(len(ordered), np.nan), last, evidence)


def plan_integrity(plan: PlanPrefixes, aggregates: Aggregates) -> Violations:
    """Rule 9: the plan's own faults.

    - ``overlap`` / ``duplicate``: two active or reserved leaf prefixes of one (zone, VRF) that overlap
      or are equal; each pair once, subject ``"a,b"`` (the lower start first, at equal starts the
      container, equal ones by id), unit the pair's common unit or -1. Deprecated prefixes may
      overlap their successors while a renumbering runs.
    - ``outside_aggregates``: an active or reserved prefix not wholly inside the union of the city's blocks.
    - ``no_unit``: an active prefix without a unit (reserved space has none by design).
    """
    rows = np.flatnonzero(_allocated(plan))
    entries: list[Entry] = []
    start, end, unit, ids = plan.start.tolist(), plan.end.tolist(), plan.unit.tolist(), plan.id.tolist()
    zone, vrf = plan.zone.tolist(), plan.vrf.tolist()

    def describe(r: int) -> dict[str, Any]:
        return {"id": ids[r], "prefix": format_prefix(start[r], end[r]), "zone": ZONES[zone[r]], "vrf": vrf[r],
                "unit": unit[r]}

    if rows.size:
        # (zone, vrf) as one dense group id, then the sweep of _merge: a prefix overlaps an earlier one of
        # its group when it starts at or before the furthest end so far.
        _, group = np.unique((plan.zone[rows].astype(np.int64) << 32) | (plan.vrf[rows].astype(np.int64)
                                                                         & 0xFFFFFFFF), return_inverse=True)
        group = group.reshape(-1).astype(np.int64)
        order = np.lexsort((-plan.end[rows], plan.start[rows], group))
        r_o, g_o = rows[order], group[order]
        s_o, e_o = plan.start[r_o], plan.end[r_o]
        reach = np.maximum.accumulate((g_o << 36) | e_o) & ((1 << 36) - 1)
        hit = np.zeros(order.shape[0], dtype=np.bool_)
        hit[1:] = (g_o[1:] == g_o[:-1]) & (s_o[1:] <= reach[:-1])
        # The run of connected prefixes a hit belongs to bounds the earlier prefixes it can overlap.
        run_start = np.maximum.accumulate(np.where(~hit, np.arange(order.shape[0]), 0))
        for j in np.flatnonzero(hit).tolist():
            lo = int(run_start[j])
            for i in (lo + np.flatnonzero(e_o[lo:j] >= s_o[j])).tolist():
                a, b = int(r_o[i]), int(r_o[j])
                same = start[a] == start[b] and end[a] == end[b]
                if same and ids[b] < ids[a]:  # otherwise the sort order (start, then the container) is canonical
                    a, b = b, a
                pair_unit = unit[a] if unit[a] == unit[b] else -1
                subject = f"{format_prefix(start[a], end[a])},{format_prefix(start[b], end[b])}"
                pair = {"zone": ZONES[zone[a]], "vrf": vrf[a], "ids": [ids[a], ids[b]]}
                entries.append((pair_unit, subject, (start[a], -end[a], start[b], -end[b]),
                                ["duplicate" if same else "overlap"], "pairs", pair))

        blocks = _Coverage.of(aggregates.start, aggregates.end)
        index = np.searchsorted(blocks.start, plan.start[rows], side="right") - 1
        outside = plan.end[rows] > blocks.end[index]  # the sentinel's end -1 leaves everything before it outside
        no_unit = (plan.status[rows] == PrefixStatus.ACTIVE) & (plan.unit[rows] < 0)
        for r, out, lost in zip(rows.tolist(), outside.tolist(), no_unit.tolist(), strict=True):
            if out or lost:
                reasons = [name for name, flag in (("outside_aggregates", out), ("no_unit", lost)) if flag]
                entries.append((unit[r], format_prefix(start[r], end[r]), (start[r], -end[r]), reasons, "prefixes",
                                describe(r)))
    return _merged(Rule.PLAN_INTEGRITY, entries)


def stale_collection(links: Links, now: float, max_hours: float) -> Violations:
    """Rule 10: a unit with an active link and no successful collection for ``max_hours`` (never: stale forever).

    A unit's rows are combined: any active link, and its latest success. Subject ``"collection"``.
    """
    if len(links) == 0:
        return Violations.empty()
    units, group = np.unique(links.unit, return_inverse=True)
    group = group.reshape(-1)
    active = np.zeros(units.shape[0], dtype=np.bool_)
    np.logical_or.at(active, group, links.active_link)
    latest = np.full(units.shape[0], np.nan)
    np.fmax.at(latest, group, links.last_success)
    cutoff = now - max_hours * HOUR
    flagged = np.flatnonzero(active & ~(latest > cutoff))  # NaN (never) compares False: stale
    since = (now - latest[flagged]) / HOUR
    evidence = [{"last_success": _num(latest[i], 0), "hours_since": _num(h, 1), "max_hours": float(max_hours)}
                for i, h in zip(flagged.tolist(), since.tolist(), strict=True)]
    nan = np.full(flagged.shape[0], np.nan)
    return _violations(Rule.STALE_COLLECTION, units[flagged], ["collection"] * flagged.shape[0], nan, nan.copy(),
                       evidence)


def _known_keys(plan: PlanPrefixes, obs: Observations, addresses: Addresses) -> IntArray:
    """Sorted distinct ``zone << 32 | ip`` of every observed address, and of every registered one in every planned zone.

    A registered address carries no zone, so it counts in each zone the plan uses.
    """
    zones = np.flatnonzero(np.bincount(plan.zone.astype(np.intp), minlength=len(Zone))).astype(np.int64)
    registered = ((zones[:, None] << _SHIFT) | addresses.ip[None, :]).reshape(-1)
    return _distinct(np.concatenate((_keys(obs.zone, obs.ip), registered)))


def _usable_range(plan: PlanPrefixes) -> tuple[IntArray, IntArray, IntArray]:
    """Usable hosts and their first and last address: a /31 has 2, a /32 1, longer ones lose network and broadcast."""
    size = plan.end - plan.start + 1
    wide = size > 2
    return np.where(wide, size - 2, size), plan.start + wide, plan.end - wide


def utilisation(plan: PlanPrefixes, obs: Observations, addresses: Addresses) -> tuple[IntArray, IntArray]:
    """``(used, usable)`` per prefix, in plan order.

    used = distinct registered or observed addresses among the prefix's usable hosts (a network or
    broadcast address seen on the wire is not a host using space); observations count in their zone.
    """
    usable, low, high = _usable_range(plan)
    known = _known_keys(plan, obs, addresses)
    used = (np.searchsorted(known, _keys(plan.zone, high), side="right")
            - np.searchsorted(known, _keys(plan.zone, low), side="left")).astype(np.int64)
    return used, usable.astype(np.int64)


def prefix_pressure(plan: PlanPrefixes, obs: Observations, addresses: Addresses, now: float, *,
                    observed_since: float, full_ratio: float = 0.9, quiet_days: float = 30) -> Violations:
    """Rule 11: an active prefix nearly full (used ≥ ``full_ratio`` × usable), or quiet (nothing seen in it for
    ``quiet_days``: reclaimable). Evidence ``reasons`` says which (both is possible: registered but unused).

    "Unused for N days" is counted from the later of the block's allocation (``plan.allocated_at``, unknown
    counts as long ago) and ``observed_since``, when the wire was first watched: a block allocated yesterday,
    or one nobody could have seen before collection began, is not yet quiet. With no observation at all
    (``observed_since`` NaN) nothing is quiet: silence that was never listened to proves nothing.
    """
    used, usable = utilisation(plan, obs, addresses)
    recent = obs.last_seen >= now - quiet_days * DAY
    seen_keys = _keys(obs.zone[recent], obs.ip[recent])
    seen_keys.sort()
    low_keys, high_keys = _keys(plan.zone, plan.start), _keys(plan.zone, plan.end)
    seen = np.searchsorted(seen_keys, high_keys, side="right") - np.searchsorted(seen_keys, low_keys, side="left")
    active = plan.status == PrefixStatus.ACTIVE
    full = active & (usable > 0) & (used >= full_ratio * usable - _EPS)
    # np.fmax skips a NaN allocation (unknown: only the observation counts); a NaN observed_since stays NaN.
    unused_since = np.fmax(plan.allocated_at, observed_since) if not math.isnan(observed_since) \
        else np.full(len(plan), np.nan)
    long_enough = unused_since <= now - quiet_days * DAY  # NaN compares False
    quiet = active & (seen == 0) & long_enough
    flagged = np.flatnonzero(full | quiet)
    # The last sighting, for the flagged prefixes only: all observations of the window, sorted by key.
    all_keys = _keys(obs.zone, obs.ip)
    by_key = np.argsort(all_keys, kind="stable")
    sorted_keys = all_keys[by_key]
    lo = np.searchsorted(sorted_keys, low_keys[flagged], side="left")
    hi = np.searchsorted(sorted_keys, high_keys[flagged], side="right")
    start, end, unit, ids = plan.start.tolist(), plan.end.tolist(), plan.unit.tolist(), plan.id.tolist()
    entries: list[Entry] = []
    for r, a, b in zip(flagged.tolist(), lo.tolist(), hi.tolist(), strict=True):
        last = float(np.fmax.reduce(obs.last_seen[by_key[a:b]])) if b > a else math.nan
        reasons = [name for name, flag in (("full", full[r]), ("quiet", quiet[r])) if flag]
        ratio = used[r] / usable[r] if usable[r] else math.nan
        entries.append((unit[r], format_prefix(start[r], end[r]), (start[r], -end[r]), reasons, "prefixes",
                        {"id": ids[r], "zone": ZONES[int(plan.zone[r])], "vrf": int(plan.vrf[r]), "used": int(used[r]),
                         "usable": int(usable[r]), "ratio": _num(ratio, 4), "last_seen": _num(last, 0),
                         "unused_since": _num(unused_since[r], 0) if quiet[r] else None}))
    return _merged(Rule.PREFIX_PRESSURE, entries)


def _sightings(obs: Observations, ips: IntArray) -> tuple[FloatArray, FloatArray]:
    """The first and last sighting of each of ``ips`` in any zone; NaN when never seen."""
    first = np.full(ips.shape[0], np.nan)
    last = np.full(ips.shape[0], np.nan)
    if len(obs) == 0 or ips.size == 0:
        return first, last
    order = np.argsort(obs.ip, kind="stable")
    sorted_ips = obs.ip[order]
    new = np.ones(sorted_ips.shape[0], dtype=np.bool_)
    new[1:] = sorted_ips[1:] != sorted_ips[:-1]
    begins = _starts(new)
    seen = sorted_ips[begins]
    at = np.minimum(np.searchsorted(seen, ips), seen.shape[0] - 1)
    known = seen[at] == ips
    first[known] = np.fmin.reduceat(obs.first_seen[order], begins)[at[known]]
    last[known] = np.fmax.reduceat(obs.last_seen[order], begins)[at[known]]
    return first, last


def unseen_approved(addresses: Addresses, obs: Observations, now: float, days: float = 90) -> Violations:
    """Rule 12: an address approved more than ``days`` ago and not seen since ``now - days``.

    Loopbacks never answer ARP, so they are exempt; an unknown approval date is not old enough.
    One violation per (IP, registered unit), with the earliest approval; its times are the
    address's sightings in the window (all older than the cutoff), NaN when never seen.
    """
    cutoff = now - days * DAY
    candidates = np.flatnonzero(addresses.approved & (addresses.role != Role.LOOPBACK)
                                & (addresses.approved_at < cutoff))  # NaN compares False: unknown is not old
    first, last = _sightings(obs, addresses.ip[candidates])
    unseen = ~(last >= cutoff)
    rows, first, last = candidates[unseen], first[unseen], last[unseen]
    ip, unit, approved_at = addresses.ip[rows], addresses.unit[rows], addresses.approved_at[rows]
    order = np.lexsort((approved_at, unit, ip))
    ip, unit, approved_at, first, last = ip[order], unit[order], approved_at[order], first[order], last[order]
    keep = np.ones(ip.shape[0], dtype=np.bool_)
    keep[1:] = (ip[1:] != ip[:-1]) | (unit[1:] != unit[:-1])
    evidence = [{"approved_at": _num(a, 0), "last_seen": _num(t, 0), "days": float(days)}
                for a, t in zip(approved_at[keep].tolist(), last[keep].tolist(), strict=True)]
    return _violations(Rule.UNSEEN_APPROVED, unit[keep], [_ip(x) for x in ip[keep].tolist()], first[keep],
                       last[keep], evidence)


# ----------------------------------------------------------------------------------------------------------------
# All of them


@dataclass(frozen=True, slots=True)
class Limits:
    """Every number the rules use; the service fills it from configuration."""

    max_macs_per_port: int = 4
    max_ips_per_mac: int = 8
    stale_hours: float = 24.0
    full_ratio: float = 0.9
    quiet_days: float = 30.0
    unseen_days: float = 90.0
    window: float = DAY  # seconds: the duplicate-IP window ends at ``now``

    def __post_init__(self) -> None:
        for name in ("max_macs_per_port", "max_ips_per_mac"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        for name in ("stale_hours", "quiet_days", "unseen_days", "window"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive")
        if not 0.0 < self.full_ratio <= 1.0:
            raise ValueError("full_ratio: must be a fraction in (0, 1]")


def check_all(plan: PlanPrefixes, aggregates: Aggregates, obs: Observations, ports: MacPorts, addresses: Addresses,
              links: Links, now: float, limits: Limits = Limits(), *,
              forbidden: BoolArray = CROSS_ZONE_FORBIDDEN, observed_since: float | None = None) -> Violations:
    """Every rule, in rule order, as one :class:`Violations`. ``observed_since`` (when the wire was first watched)
    defaults to the earliest first sighting in ``obs``."""
    if observed_since is None:
        observed_since = float(np.nanmin(obs.first_seen)) if len(obs) and not np.all(np.isnan(obs.first_seen)) \
            else math.nan
    return Violations.concat([
        outside_plan(obs, plan),
        wrong_unit(obs, plan),
        unapproved(obs, addresses, plan),
        duplicate_ip(obs, addresses, now - limits.window),
        binding_changed(obs, addresses),
        crowded_port(ports, limits.max_macs_per_port),
        nat_behind_mac(obs, addresses, limits.max_ips_per_mac),
        cross_zone(obs, plan, forbidden),
        plan_integrity(plan, aggregates),
        stale_collection(links, now, limits.stale_hours),
        prefix_pressure(plan, obs, addresses, now, observed_since=observed_since, full_ratio=limits.full_ratio,
                        quiet_days=limits.quiet_days),
        unseen_approved(addresses, obs, now, limits.unseen_days),
    ])
