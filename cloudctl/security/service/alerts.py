"""Alerts and triage (告警研判): by webhook in, deduplicated, judged, and — for an attack — worked through
阻断、响应、排查、查杀、备案、回复 before they may close; blocked addresses form the firewalls' block list.

Two webhook forms are taken: a generic JSON object ``{"source", "source_ref", "title", "severity",
"src_ip", "dst_ip"}`` (one, or a list), and the Prometheus Alertmanager webhook (``{"version": "4",
"alerts": [...]}``), whose fingerprint is the reference. An alert is one per source and reference:
the same alert sent again counts a repeat instead of opening another.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints, ValidationError, field_validator
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize, can
from cloudctl.core.config import get_settings
from cloudctl.core.errors import Conflict, FieldError, InvalidInput, PermissionDenied
from cloudctl.core.export import csv_text
from cloudctl.core.models import utcnow
from cloudctl.core.text import NoControl
from cloudctl.security.models import (
    Alert,
    AlertStatus,
    BlockedAddress,
    Severity,
    StepStatus,
    TriageStep,
    Verdict,
)
from cloudctl.security.service.assets import owner

__all__ = ["OVERRIDE_INTERNAL", "STEPS", "AlertIn", "block", "blocklist", "check_block", "close_alert", "get_alert",
           "list_alerts", "receive", "set_verdict", "update_step"]

# The six steps, in order: (key, label, mandatory). 查杀 (malware removal) is done where malware was found,
# so it may be marked not applicable; the others may not be skipped.
STEPS: tuple[tuple[str, str, bool], ...] = (
    ("block", "阻断", True), ("respond", "响应", True), ("investigate", "排查", True), ("kill", "查杀", False),
    ("record", "备案", True), ("reply", "回复", True),
)
ALERTMANAGER_SEVERITY = {"critical": "critical", "page": "critical", "error": "high", "warning": "medium",
                         "info": "info", "none": "info"}


class AlertIn(BaseModel):
    """The generic webhook form."""

    source: Annotated[str, StringConstraints(min_length=1, max_length=64), NoControl]
    source_ref: Annotated[str, StringConstraints(min_length=1, max_length=128), NoControl]
    title: Annotated[str, StringConstraints(min_length=1, max_length=500), NoControl]
    severity: Severity = Severity.MEDIUM
    src_ip: str | None = None
    dst_ip: str | None = None

    @field_validator("src_ip", "dst_ip")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError("not an IP address") from None


def _from_alertmanager(payload: Mapping[str, Any]) -> list[tuple[AlertIn, dict[str, Any]]]:
    out = []
    receiver = str(payload.get("receiver") or "alertmanager")
    for n, alert in enumerate(payload.get("alerts") or []):
        if not isinstance(alert, Mapping):
            raise InvalidInput("each alert is an object", field=f"alerts.{n}")
        labels, annotations = dict(alert.get("labels") or {}), dict(alert.get("annotations") or {})
        ref = alert.get("fingerprint") or labels.get("alertname")
        if not ref:
            raise InvalidInput("an Alertmanager alert carries a fingerprint", field=f"alerts.{n}.fingerprint")
        item = {"source": f"alertmanager/{receiver}"[:64], "source_ref": str(ref),
                "title": annotations.get("summary") or labels.get("alertname") or "alert",
                "severity": ALERTMANAGER_SEVERITY.get(str(labels.get("severity", "warning")).lower(), "medium"),
                "src_ip": labels.get("src_ip"), "dst_ip": labels.get("dst_ip")}
        out.append((_parse(item, f"alerts.{n}"), dict(alert)))
    return out


def _parse(item: Mapping[str, Any], where: str) -> AlertIn:
    try:
        return AlertIn.model_validate(item)
    except ValidationError as exc:
        errors = [FieldError(f"{where}.{'.'.join(str(p) for p in e['loc'])}".strip("."), e["msg"])
                  for e in exc.errors()]
        raise InvalidInput(f"{len(errors)} invalid field(s)", errors=errors) from None


def receive(session: Session, principal: Principal, payload: Mapping[str, Any] | Sequence[Any]) -> list[Alert]:
    """Take a webhook's alerts: new ones open, known ones count a repeat. All of the payload, or nothing."""
    authorize(principal, "security.alert:receive")
    if isinstance(payload, Mapping) and "alerts" in payload:
        items = _from_alertmanager(payload)
    elif isinstance(payload, Mapping):
        items = [(_parse(payload, ""), dict(payload))]
    else:
        items = [(_parse(item if isinstance(item, Mapping) else {}, str(n)), dict(item) if isinstance(item, Mapping)
                  else {}) for n, item in enumerate(payload)]
    now = utcnow()
    alerts = []
    for data, raw in items:
        alert = session.scalar(select(Alert).where(Alert.source == data.source, Alert.source_ref == data.source_ref))
        if alert is None:
            alert = Alert(source=data.source, source_ref=data.source_ref, title=data.title, severity=data.severity,
                          src_ip=data.src_ip, dst_ip=data.dst_ip,
                          unit_id=owner(session, data.dst_ip) if data.dst_ip else None, received_at=now,
                          last_received_at=now, status=AlertStatus.NEW, raw=raw, repeats=0)
            session.add(alert)
            session.flush()
            audit.record(session, principal, action="receive", entity="security_alert", entity_id=alert.id,
                         after={"source": alert.source, "ref": alert.source_ref, "severity": alert.severity.value},
                         unit_id=alert.unit_id)
        else:
            alert.repeats += 1
            alert.last_received_at, alert.raw = now, raw
        alerts.append(alert)
    session.flush()
    return alerts


def _query(principal: Principal) -> Select[Alert]:
    return read.within(select(Alert), principal, unit=Alert.unit_id)


def get_alert(session: Session, principal: Principal, alert_id: int) -> Alert:
    authorize(principal, "security.alert:read")
    return read.one(session, _query(principal).where(Alert.id == alert_id), missing=f"no alert with id {alert_id}")


def list_alerts(session: Session, principal: Principal, *, status: AlertStatus | None = None,
                verdict: Verdict | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Alert], int]:
    authorize(principal, "security.alert:read")
    query = _query(principal)
    if status is not None:
        query = query.where(Alert.status == status)
    if verdict is not None:
        query = query.where(Alert.verdict == verdict)
    return read.page(session, query, limit=limit, offset=offset, order_by=(Alert.id.desc(),))


def set_verdict(session: Session, principal: Principal, alert_id: int, verdict: Verdict,
                note: str | None = None) -> Alert:
    """Judge an alert; an attack opens the six steps, in order."""
    authorize(principal, "security.alert:triage")
    alert = get_alert(session, principal, alert_id)
    if alert.status is AlertStatus.CLOSED:
        raise Conflict(f"alert {alert.id} is closed", field="status")
    if alert.verdict is Verdict.ATTACK and verdict is not Verdict.ATTACK and any(
            s.status is not StepStatus.PENDING for s in alert.steps):
        raise Conflict("the response to this attack has begun: its verdict stays", field="verdict")
    before = {"verdict": alert.verdict.value if alert.verdict else None}
    now = utcnow()
    alert.verdict, alert.verdict_by, alert.verdict_note = verdict, principal.actor, note
    alert.verdict_at = alert.verdict_at or now  # time to triage counts the first verdict
    alert.status = AlertStatus.TRIAGED
    if verdict is Verdict.ATTACK and not alert.steps:
        for position, (key, _, mandatory) in enumerate(STEPS):
            alert.steps.append(TriageStep(step=key, position=position, mandatory=mandatory,
                                          status=StepStatus.PENDING, started_at=now))
    session.flush()
    audit.record(session, principal, action="verdict", entity="security_alert", entity_id=alert.id, before=before,
                 after={"verdict": verdict.value, "note": note}, unit_id=alert.unit_id)
    return alert


def update_step(session: Session, principal: Principal, alert_id: int, step: str, *, status: StepStatus,
                evidence: str | None = None, block_addresses: Sequence[str] = (), override: bool = False) -> Alert:
    """Mark a step done (with evidence) or not applicable; steps go in order, and only 查杀 may be skipped.
    阻断 done may name the addresses it blocked: they go on the block list, through the same guard as any block."""
    authorize(principal, "security.alert:triage")
    alert = get_alert(session, principal, alert_id)
    if alert.verdict is not Verdict.ATTACK:
        raise Conflict("only an alert judged an attack has response steps", field="verdict")
    if alert.status is AlertStatus.CLOSED:
        raise Conflict(f"alert {alert.id} is closed", field="status")
    found = next((s for s in alert.steps if s.step == step), None)
    if found is None:
        raise InvalidInput(f"one of {', '.join(k for k, _, _ in STEPS)}", field="step")
    if status is StepStatus.PENDING:
        raise InvalidInput("done or skipped", field="status")
    if status is StepStatus.SKIPPED and found.mandatory:
        raise Conflict(f"{found.step} ({dict((k, v) for k, v, _ in STEPS)[found.step]}) cannot be skipped",
                       field="status")
    if status is StepStatus.DONE and not (evidence and evidence.strip()):
        raise InvalidInput("record what was done", field="evidence")
    earlier = [s for s in alert.steps if s.position < found.position and s.status is StepStatus.PENDING]
    if earlier:
        raise Conflict(f"{earlier[0].step} comes first", field="step")
    if block_addresses:
        if found.step != "block" or status is not StepStatus.DONE:
            raise InvalidInput("addresses are blocked by the block step (阻断) done", field="block")
        for address in block_addresses:
            block(session, principal, address, reason=evidence or "", alert_id=alert.id, override=override)
    found.status, found.actor, found.done_at, found.evidence = status, principal.actor, utcnow(), evidence
    session.flush()
    audit.record(session, principal, action=f"step-{step}", entity="security_alert", entity_id=alert.id,
                 after={"step": step, "status": status.value, "evidence": evidence}, unit_id=alert.unit_id)
    return alert


def close_alert(session: Session, principal: Principal, alert_id: int) -> Alert:
    authorize(principal, "security.alert:triage")
    alert = get_alert(session, principal, alert_id)
    if alert.status is AlertStatus.CLOSED:
        raise Conflict(f"alert {alert.id} is already closed", field="status")
    if alert.verdict is None:
        raise Conflict("judge the alert first (false_positive, attack or undetermined)", field="verdict")
    if alert.verdict is Verdict.UNDETERMINED:
        raise Conflict("an undetermined alert is judged before it closes", field="verdict")
    open_steps = [s.step for s in alert.steps if s.mandatory and s.status is not StepStatus.DONE]
    if open_steps:
        raise Conflict(f"steps still open: {', '.join(open_steps)}", field="steps")
    alert.status, alert.closed_at, alert.closed_by = AlertStatus.CLOSED, utcnow(), principal.actor
    session.flush()
    audit.record(session, principal, action="close", entity="security_alert", entity_id=alert.id,
                 after={"verdict": alert.verdict.value}, unit_id=alert.unit_id)
    return alert


# Never a target of a block, whoever asks: the host itself, link-local neighbours, multicast groups and
# addresses that are no host's (0.0.0.0/8, 240.0.0.0/4 with the broadcast address).
_NEVER_BLOCKED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(network), label) for network, label in (
        ("0.0.0.0/8", "this network"), ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"), ("::/128", "unspecified"), ("::1/128", "loopback"),
        ("fe80::/10", "link-local"), ("ff00::/8", "multicast")))
# Blocking the city's own addresses cuts a unit or a government system off: only an administrator may, saying why.
OVERRIDE_INTERNAL = "blocklist.internal:override"


def _as_network(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        network = ipaddress.ip_network(address.strip(), strict=False)
    except ValueError:
        raise InvalidInput(f"{address!r} is not an address or a network", field="ip") from None
    # An IPv4-mapped IPv6 network (::ffff:10.0.0.0/104) is the IPv4 network it maps.
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and \
            network.network_address.ipv4_mapped is not None:
        return ipaddress.IPv4Network((network.network_address.ipv4_mapped, network.prefixlen - 96))
    return network


def _internal(session: Session, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
    """What of the city's own the network covers: a block of the extranet plan, or a cloud server's address."""
    from cloudctl.compute.models import ServerAddress
    from cloudctl.extranet.models import Aggregate, Prefix

    if isinstance(network, ipaddress.IPv4Network):
        first, last = int(network.network_address), int(network.broadcast_address)
        for model in (Prefix, Aggregate):
            hit = session.scalar(select(model.prefix).where(model.start <= last, model.end >= first)
                                 .order_by(model.start).limit(1))
            if hit is not None:
                return f"the extranet plan's {hit}"
    if network.num_addresses == 1:
        held = session.scalar(select(ServerAddress.ip).where(ServerAddress.ip == str(network.network_address))
                              .limit(1))
    else:
        held = next((ip for ip in session.scalars(select(ServerAddress.ip).distinct())
                     if _in(ip, network)), None)
    return f"a cloud server's address {held}" if held is not None else None


def _in(ip: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(ip) in network
    except ValueError:
        return False


def check_block(session: Session, principal: Principal, address: str, *,
                override: bool = False) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network to block, once it passes the guard: no broader than the configured prefix, never loopback,
    link-local, multicast or reserved, and inside the city's own space (extranet plan, cloud servers) only by an
    administrator's explicit override. Both the block list and the 阻断 step come through here."""
    network = _as_network(address)
    settings = get_settings()
    widest = settings.blocklist_min_prefix_v4 if network.version == 4 else settings.blocklist_min_prefix_v6
    if network.prefixlen < widest:
        raise InvalidInput(f"{network} is broader than /{widest}: block the attacking addresses, not a region "
                           "of the Internet", field="ip")
    for special, label in _NEVER_BLOCKED:
        if network.version == special.version and network.overlaps(special):
            raise InvalidInput(f"{network} is {label} ({special}): never blocked", field="ip")
    inside = _internal(session, network)
    if inside is not None:
        if not override:
            raise InvalidInput(f"{network} covers {inside}: blocking it cuts the city's own systems off; an "
                               "administrator may override, with the reason", field="ip")
        if not can(principal, OVERRIDE_INTERNAL):
            raise PermissionDenied(f"{network} covers {inside}: only an administrator may block it",
                                   permission=OVERRIDE_INTERNAL)
    return network


def block(session: Session, principal: Principal, address: str, *, reason: str, expires_at: datetime | None = None,
          alert_id: int | None = None, override: bool = False) -> BlockedAddress:
    """Put an address or network on the firewalls' block list, through :func:`check_block`."""
    authorize(principal, "security.alert:triage")
    if len(reason.strip()) < 2:
        raise InvalidInput("say why it is blocked", field="reason")
    network = check_block(session, principal, address, override=override)
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("the expiry is in the past", field="expires_at")
    if alert_id is not None:
        get_alert(session, principal, alert_id)
    text = str(network.network_address) if network.num_addresses == 1 else str(network)
    row = BlockedAddress(ip=text, reason=reason.strip(), alert_id=alert_id, created_by=principal.actor,
                         created_at=now, expires_at=expires_at)
    session.add(row)
    session.flush()
    after: dict[str, Any] = {"reason": row.reason, "expires_at": expires_at, "alert": alert_id}
    if override:
        after["override"] = True
    audit.record(session, principal, action="block", entity="blocklist", entity_id=text, after=after)
    return row


def blocklist(session: Session, principal: Principal, *, fmt: str = "txt") -> str:
    """The addresses blocked now, for the firewalls: one per line, or CSV with reason and expiry."""
    authorize(principal, "security.alert:read")
    now = utcnow()
    rows = list(session.scalars(select(BlockedAddress).where(
        BlockedAddress.lifted_at.is_(None), or_(BlockedAddress.expires_at.is_(None), BlockedAddress.expires_at > now))
        .order_by(BlockedAddress.ip)))
    if fmt == "txt":
        return "".join(f"{r.ip}\n" for r in sorted({r.ip: r for r in rows}.values(), key=lambda r: r.ip))
    if fmt != "csv":
        raise InvalidInput("txt or csv", field="format")
    return csv_text(["ip", "reason", "expires_at", "alert_id", "created_by", "created_at"],
                    [[r.ip, r.reason, r.expires_at.isoformat() if r.expires_at else "", r.alert_id or "",
                      r.created_by, r.created_at.isoformat()] for r in rows])
