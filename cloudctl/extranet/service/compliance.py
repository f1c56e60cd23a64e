"""Compliance (网络合规性检查): the rules of :mod:`cloudctl.extranet.rules` run over plan and observation.

A check reads the plan and what the wire showed into arrays, runs the rules, and keeps one violation
per rule and subject: a new finding opens with a rectification deadline (限期整改), a known one gets
its evidence and last-seen refreshed, one the wire no longer shows is resolved by the check itself,
and a waived one stays waived. People move violations on (rectifying, resolved, waived) with a note.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.display import local_time
from cloudctl.core.errors import InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.extranet import rules
from cloudctl.extranet.models import (
    AccessLink,
    AddressRole,
    Aggregate,
    ApplicationStatus,
    ArpObservation,
    IPAddress,
    IPApplication,
    LinkRole,
    LinkStatus,
    MacObservation,
    NetworkDevice,
    Prefix,
    PrefixStatus,
    Violation,
    ViolationStatus,
)
from cloudctl.extranet.schemas import ScorecardRow, ViolationUpdate
from cloudctl.extranet.service.access import REQUIRED_KINDS, connected_units
from cloudctl.notify.service import emit
from cloudctl.org.models import Unit
from cloudctl.org.service import under

__all__ = ["RECTIFY_DAYS", "Inputs", "check", "get_violation", "list_violations", "load_inputs", "scorecard",
           "update_violation"]

# Days to rectify, by rule: leaks and conflicts at once, plan housekeeping within the month.
RECTIFY_DAYS = {1: 7, 2: 7, 3: 15, 4: 3, 5: 7, 6: 7, 7: 7, 8: 3, 9: 30, 10: 2, 11: 30, 12: 30}
# What counts as "on the wire now" for rules 1–8; rules 11 and 12 look back further on their own.
CURRENT_WINDOW = timedelta(days=7)
HISTORY_WINDOW = timedelta(days=90)
_ROLE_CODE = {AddressRole.HOST: rules.Role.HOST, AddressRole.GATEWAY: rules.Role.GATEWAY,
              AddressRole.VRRP: rules.Role.VRRP, AddressRole.VIP: rules.Role.VIP,
              AddressRole.LOOPBACK: rules.Role.LOOPBACK}
_STATUS_CODE = {PrefixStatus.ACTIVE: rules.PrefixStatus.ACTIVE, PrefixStatus.RESERVED: rules.PrefixStatus.RESERVED,
                PrefixStatus.DEPRECATED: rules.PrefixStatus.DEPRECATED}


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else math.nan


def _mac(text: str | None) -> int:
    return rules.mac_to_int(text) if text else -1


class Inputs:
    """The rules' arrays, and what their integer codes stand for (to write subjects people can read)."""

    def __init__(self) -> None:
        self.device_names: dict[int, str] = {}
        self.device_units: dict[int, int] = {}
        self.ports: list[str] = []
        self.unit_codes: dict[int, str] = {}

    def port_id(self, name: str, index: dict[str, int]) -> int:
        found = index.get(name)
        if found is None:
            found = index[name] = len(self.ports)
            self.ports.append(name)
        return found


def load_inputs(session: Session, now: datetime) -> tuple[Inputs, dict[str, Any]]:
    """Plan and observations as the rules' dataclasses."""
    inputs = Inputs()
    inputs.unit_codes = dict(session.execute(select(Unit.id, Unit.code)).all())
    zone_code = {name: i for i, name in enumerate(rules.ZONES)}
    vrfs: dict[str, int] = {}
    leaves = session.execute(select(Prefix.id, Prefix.start, Prefix.end, Prefix.zone, Prefix.vrf, Prefix.unit_id,
                                    Prefix.status, Prefix.vlan, Prefix.created_at)
                             .where(Prefix.status != PrefixStatus.CONTAINER)).all()
    plan = rules.PlanPrefixes(
        id=np.array([r[0] for r in leaves], dtype=np.int64), start=np.array([r[1] for r in leaves], dtype=np.int64),
        end=np.array([r[2] for r in leaves], dtype=np.int64),
        zone=np.array([zone_code[r[3].value] for r in leaves], dtype=np.int8),
        vrf=np.array([vrfs.setdefault(r[4], len(vrfs)) for r in leaves], dtype=np.int32),
        unit=np.array([r[5] if r[5] is not None else -1 for r in leaves], dtype=np.int64),
        status=np.array([_STATUS_CODE[r[6]] for r in leaves], dtype=np.int8),
        allocated_at=np.array([_epoch(r[8]) for r in leaves], dtype=np.float64))
    aggregates_rows = session.execute(select(Aggregate.id, Aggregate.start, Aggregate.end)).all()
    aggregates = rules.Aggregates(id=np.array([r[0] for r in aggregates_rows], dtype=np.int64),
                                  start=np.array([r[1] for r in aggregates_rows], dtype=np.int64),
                                  end=np.array([r[2] for r in aggregates_rows], dtype=np.int64))
    # The zone of a VLAN at a unit comes from the plan (the block served on it); else the device's own zone.
    vlan_zone = {(unit_id, vlan): zone_code[zone.value] for unit_id, vlan, zone in session.execute(
        select(Prefix.unit_id, Prefix.vlan, Prefix.zone).where(Prefix.vlan.is_not(None), Prefix.unit_id.is_not(None)))}
    devices = session.execute(select(NetworkDevice.id, NetworkDevice.name, NetworkDevice.unit_id,
                                     NetworkDevice.zone)).all()
    device_zone = {d[0]: zone_code[d[3].value] for d in devices}
    inputs.device_names = {d[0]: d[1] for d in devices}
    inputs.device_units = {d[0]: d[2] for d in devices}

    def observations(since: datetime) -> rules.Observations:
        rows = session.execute(select(ArpObservation.value, ArpObservation.mac, ArpObservation.device_id,
                                      ArpObservation.vlan, ArpObservation.first_seen, ArpObservation.last_seen)
                               .where(ArpObservation.last_seen >= since)).all()
        units = [inputs.device_units[r[2]] for r in rows]
        return rules.Observations(
            ip=np.array([r[0] for r in rows], dtype=np.int64), mac=np.array([_mac(r[1]) for r in rows], dtype=np.int64),
            device=np.array([r[2] for r in rows], dtype=np.int32), unit=np.array(units, dtype=np.int64),
            zone=np.array([vlan_zone.get((u, r[3]), device_zone[r[2]]) for u, r in zip(units, rows, strict=True)],
                          dtype=np.int8),
            vlan=np.array([r[3] if r[3] is not None else -1 for r in rows], dtype=np.int32),
            first_seen=np.array([_epoch(r[4]) for r in rows], dtype=np.float64),
            last_seen=np.array([_epoch(r[5]) for r in rows], dtype=np.float64))

    port_index: dict[str, int] = {}
    mac_rows = session.execute(select(MacObservation.mac, MacObservation.device_id, MacObservation.port,
                                      MacObservation.vlan, MacObservation.access_port)
                               .where(MacObservation.last_seen >= now - CURRENT_WINDOW)).all()
    ports = rules.MacPorts(
        mac=np.array([_mac(r[0]) for r in mac_rows], dtype=np.int64),
        device=np.array([r[1] for r in mac_rows], dtype=np.int32),
        port=np.array([inputs.port_id(r[2], port_index) for r in mac_rows], dtype=np.int32),
        vlan=np.array([r[3] for r in mac_rows], dtype=np.int32),
        port_is_access=np.array([r[4] for r in mac_rows], dtype=np.bool_))
    address_rows = session.execute(
        select(IPAddress.value, IPAddress.unit_id, IPAddress.role, IPAddress.mac, IPApplication.status,
               IPApplication.commitment_accepted, IPApplication.decided_at)
        .outerjoin(IPApplication, IPAddress.application_id == IPApplication.id)).all()
    addresses = rules.Addresses(
        ip=np.array([r[0] for r in address_rows], dtype=np.int64),
        unit=np.array([r[1] if r[1] is not None else -1 for r in address_rows], dtype=np.int64),
        role=np.array([_ROLE_CODE[r[2]] for r in address_rows], dtype=np.int8),
        mac=np.array([_mac(r[3]) for r in address_rows], dtype=np.int64),
        approved=np.array([r[4] is ApplicationStatus.APPROVED for r in address_rows], dtype=np.bool_),
        commitment=np.array([bool(r[5]) for r in address_rows], dtype=np.bool_),
        approved_at=np.array([_epoch(r[6]) for r in address_rows], dtype=np.float64))
    active = set(session.scalars(select(AccessLink.unit_id).where(AccessLink.status == LinkStatus.ACTIVE)))
    last = dict(session.execute(select(NetworkDevice.unit_id, func.max(NetworkDevice.last_success_at))
                                .group_by(NetworkDevice.unit_id)).all())
    link_units = sorted(active)
    links = rules.Links(unit=np.array(link_units, dtype=np.int64),
                        active_link=np.ones(len(link_units), dtype=np.bool_),
                        last_success=np.array([_epoch(last.get(u)) for u in link_units], dtype=np.float64))
    # When the wire was first watched: before that, no block could have been seen in use (rule 11).
    observed_since = _epoch(session.scalar(select(func.min(ArpObservation.first_seen))))
    return inputs, {"plan": plan, "aggregates": aggregates, "current": observations(now - CURRENT_WINDOW),
                    "history": observations(now - HISTORY_WINDOW), "ports": ports, "addresses": addresses,
                    "links": links, "observed_since": observed_since}


def _run(arrays: dict[str, Any], now: float, limits: rules.Limits) -> rules.Violations:
    current, history = arrays["current"], arrays["history"]
    plan, addresses = arrays["plan"], arrays["addresses"]
    return rules.Violations.concat([
        rules.outside_plan(current, plan),
        rules.wrong_unit(current, plan),
        rules.unapproved(current, addresses, plan),
        rules.duplicate_ip(current, addresses, now - limits.window),
        rules.binding_changed(current, addresses),
        rules.crowded_port(arrays["ports"], limits.max_macs_per_port),
        rules.nat_behind_mac(current, addresses, limits.max_ips_per_mac),
        rules.cross_zone(current, plan),
        rules.plan_integrity(plan, arrays["aggregates"]),
        rules.stale_collection(arrays["links"], now, limits.stale_hours),
        rules.prefix_pressure(plan, history, addresses, now, observed_since=arrays["observed_since"],
                              full_ratio=limits.full_ratio, quiet_days=limits.quiet_days),
        # Terminals only: a gateway or VRRP address lives on the switch itself, which (Comware) may never list it.
        rules.unseen_approved(_terminals(addresses), history, now, limits.unseen_days),
    ])


def _terminals(addresses: rules.Addresses) -> rules.Addresses:
    keep = addresses.role == rules.Role.HOST
    return rules.Addresses(ip=addresses.ip[keep], unit=addresses.unit[keep], role=addresses.role[keep],
                           mac=addresses.mac[keep], approved=addresses.approved[keep],
                           commitment=addresses.commitment[keep], approved_at=addresses.approved_at[keep])


def _readable(found: rules.Violations, inputs: Inputs) -> list[tuple[int, str, int | None, dict[str, Any], float,
                                                                       float]]:
    """(rule, subject, unit id, evidence, first, last) with subjects people can read and act on."""
    out = []
    for i in range(len(found)):
        rule, subject = int(found.rule[i]), str(found.subject[i])
        unit = int(found.unit[i])
        evidence = dict(found.evidence[i])
        if rule == rules.Rule.CROWDED_PORT:
            device, port = (int(x) for x in subject.split(":"))
            subject = f"{inputs.device_names[device]}:{inputs.ports[port]}"
            unit = inputs.device_units[device]
            evidence["device"] = inputs.device_names[device]
        elif rule == rules.Rule.STALE_COLLECTION:
            subject = inputs.unit_codes.get(unit, subject)
        out.append((rule, subject, unit if unit >= 0 else None, evidence, float(found.first_seen[i]),
                    float(found.last_seen[i])))
    return out


def check(session: Session, principal: Principal, *, now: datetime | None = None,
          limits: rules.Limits | None = None) -> dict[str, Any]:
    """Run every rule and bring the violations up to date; returns counts by outcome and by rule."""
    authorize(principal, "extranet.violation:check")
    now = now or utcnow()
    limits = limits or rules.Limits()
    inputs, arrays = load_inputs(session, now)
    found = _readable(_run(arrays, now.timestamp(), limits), inputs)
    existing = {(v.rule, v.subject): v for v in session.scalars(select(Violation))}
    counts = {"opened": 0, "updated": 0, "reopened": 0, "resolved": 0}
    seen: set[tuple[int, str]] = set()
    told: list[Violation] = []
    for rule, subject, unit, evidence, first, last in found:
        key = (rule, subject)
        if key in seen:
            continue  # one violation per rule and subject, whichever unit reported it first
        seen.add(key)
        first_seen = datetime.fromtimestamp(first, now.tzinfo) if math.isfinite(first) else now
        last_seen = datetime.fromtimestamp(last, now.tzinfo) if math.isfinite(last) else now
        row = existing.get(key)
        if row is None:
            row = Violation(rule=rule, subject=subject, unit_id=unit, status=ViolationStatus.OPEN,
                            evidence=evidence, first_seen=first_seen, last_seen=last_seen,
                            deadline=(now + timedelta(days=RECTIFY_DAYS.get(rule, 15))).date())
            session.add(row)
            told.append(row)
            counts["opened"] += 1
            continue
        row.evidence, row.last_seen, row.unit_id = evidence, max(row.last_seen, last_seen), unit
        if row.status is ViolationStatus.RESOLVED:
            row.status, row.resolved_at, row.progress = ViolationStatus.OPEN, None, None
            row.deadline = (now + timedelta(days=RECTIFY_DAYS.get(rule, 15))).date()
            told.append(row)
            counts["reopened"] += 1
        else:
            counts["updated"] += 1
    for key, row in existing.items():
        if key not in seen and row.status in (ViolationStatus.OPEN, ViolationStatus.RECTIFYING):
            row.status, row.resolved_at = ViolationStatus.RESOLVED, now
            row.note = (f"{row.note}; " if row.note else "") + f"no longer found by the check of {local_time(now)}"
            row.note = row.note[-500:]
            counts["resolved"] += 1
    session.flush()
    for row in told:
        if row.unit_id is not None:
            emit(session, "extranet.violation.opened", unit_id=row.unit_id, entity="extranet_violation",
                 entity_id=row.id, key=f"extranet.violation.opened:{row.id}:{row.deadline}", deadline=row.deadline,
                 link=f"/api/v1/extranet/violations/{row.id}", data={"title": row.title, "subject": row.subject})
    by_rule: dict[str, int] = {}
    for rule, *_ in found:
        by_rule[str(rule)] = by_rule.get(str(rule), 0) + 1
    result = {**counts, "found": len(seen), "by_rule": by_rule}
    audit.record(session, principal, action="check", entity="extranet_compliance",
                 entity_id=now.isoformat(timespec="minutes"), after=result)
    return result


def _query(principal: Principal) -> Select[Violation]:
    return read.within(select(Violation), principal, unit=Violation.unit_id)


def list_violations(session: Session, principal: Principal, *, rule: int | None = None, unit: str | None = None,
                    status: ViolationStatus | None = None, limit: int = 50,
                    offset: int = 0) -> tuple[list[Violation], int]:
    authorize(principal, "extranet.violation:read")
    query = _query(principal)
    if rule is not None:
        if rule not in RECTIFY_DAYS:
            raise InvalidInput("a rule number from 1 to 12", field="rule")
        query = query.where(Violation.rule == rule)
    if unit is not None:
        query = query.where(under(session, principal, unit, Violation.unit_id))
    if status is not None:
        query = query.where(Violation.status == status)
    return read.page(session, query, limit=limit, offset=offset,
                     order_by=(Violation.rule, Violation.subject, Violation.id))


def get_violation(session: Session, principal: Principal, violation_id: int) -> Violation:
    authorize(principal, "extranet.violation:read")
    return read.one(session, _query(principal).where(Violation.id == violation_id),
                    missing=f"no violation with id {violation_id}")


def update_violation(session: Session, principal: Principal, violation_id: int, data: ViolationUpdate) -> Violation:
    """Rectifying (整改中), resolved or waived (豁免, with a note saying why); a deadline may be moved."""
    authorize(principal, "extranet.violation:write")
    row = get_violation(session, principal, violation_id)
    before = audit.snapshot(row, ("status", "note", "deadline"))
    if data.status == "waived" and not (data.note and data.note.strip()):
        raise InvalidInput("say why the violation is waived", field="note")
    if data.status is not None:
        row.status = ViolationStatus(data.status)
        row.resolved_at = utcnow() if row.status is ViolationStatus.RESOLVED else None
    if data.note is not None:
        row.note = data.note.strip()[:500]
    if data.deadline is not None:
        row.deadline = data.deadline
    session.flush()
    audit.record(session, principal, action="update", entity="extranet_violation", entity_id=row.id, before=before,
                 after=audit.snapshot(row, ("status", "note", "deadline")), unit_id=row.unit_id)
    return row


def scorecard(session: Session, principal: Principal, *, unit: str | None = None) -> list[ScorecardRow]:
    """评估 per unit: access (40), device collection (20) and violations (40 less 10 per open one); lowest first."""
    authorize(principal, "extranet.violation:read")
    query = read.within(select(Unit).where(Unit.kind.in_(REQUIRED_KINDS)), principal, unit=Unit.id)
    if unit is not None:
        query = query.where(under(session, principal, unit, Unit.id))
    units = list(session.scalars(query.order_by(Unit.code)))
    connected = connected_units(session)
    fresh = utcnow() - timedelta(hours=get_settings().extranet_fresh_hours)
    links: dict[int, list[tuple[LinkRole, LinkStatus]]] = {}
    for unit_id, role, status in session.execute(read.within(
            select(AccessLink.unit_id, AccessLink.role, AccessLink.status), principal, unit=AccessLink.unit_id)):
        links.setdefault(unit_id, []).append((role, status))
    devices: dict[int, list[datetime | None]] = {}
    for unit_id, last in session.execute(read.within(
            select(NetworkDevice.unit_id, NetworkDevice.last_success_at), principal, unit=NetworkDevice.unit_id)):
        devices.setdefault(unit_id, []).append(last)
    violations: dict[int, dict[ViolationStatus, int]] = {}
    counted = (select(Violation.unit_id, Violation.status, func.count()).where(Violation.unit_id.is_not(None))
               .group_by(Violation.unit_id, Violation.status))
    for owner_id, v_status, n in session.execute(read.within(counted, principal, unit=Violation.unit_id)):
        if owner_id is not None:
            violations.setdefault(owner_id, {})[v_status] = n
    rows = []
    for u in units:
        mine = violations.get(u.id, {})
        open_ = mine.get(ViolationStatus.OPEN, 0) + mine.get(ViolationStatus.RECTIFYING, 0)
        resolved = mine.get(ViolationStatus.RESOLVED, 0)
        own_devices = devices.get(u.id, [])
        collected = sum(1 for last in own_devices if last is not None and last >= fresh)
        score = (40 if u.id in connected else 0) + (round(20 * collected / len(own_devices)) if own_devices else 0) \
            + max(0, 40 - 10 * open_)
        unit_links = links.get(u.id, [])
        rows.append(ScorecardRow(
            unit_code=u.code, name=u.name, level=u.kind.level, connected=u.id in connected,
            links=sum(1 for _, s in unit_links if s is LinkStatus.ACTIVE),
            backup_line=any(r is LinkRole.BACKUP and s is LinkStatus.ACTIVE for r, s in unit_links),
            devices=len(own_devices), devices_collected=collected, violations_open=open_,
            violations_resolved=resolved,
            rectification_rate=round(resolved / (resolved + open_), 4) if resolved + open_ else None, score=score))
    rows.sort(key=lambda r: (r.score, r.unit_code))
    return rows
