"""Who hears what, and the outbox: every domain writes events here, in its own transaction; only the sender
(:mod:`cloudctl.notify.sender`) talks to the outside.

:func:`emit` records the event and one outbox row (a *delivery*) per recipient, rendered from the event kind's
template, in the caller's transaction: a change that rolls back leaves no message behind, and a message whose
change committed is never lost, whether or not a sender is running. Recipients, by default:

- the unit the event concerns: its subscriptions whose event pattern matches; a unit with none that match hears
  it at its contact e-mail (``units.contact_email``) through the bureau's mail channel;
- the bureau's role channels: the subscriptions of each role the event kind names (ops for requests, the security
  team for tickets, the duty officer for attacks and overdue duty reports).

An urgent event goes at once; another waits out the quiet hours, and goes in the next daily digest to a
subscription that asked for one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from fnmatch import fnmatchcase
from string import Template as TextTemplate
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, Role, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.display import local_time
from cloudctl.core.errors import Conflict, InvalidInput, NotFound
from cloudctl.core.models import BEIJING, utcnow
from cloudctl.notify.channels import SECRET_FIELDS, check_config
from cloudctl.notify.events import EVENTS, EventKind
from cloudctl.notify.models import Channel, ChannelKind, Delivery, DeliveryStatus, Event, Subscription, Template
from cloudctl.org.models import Unit
from cloudctl.org.service import get_unit, under

__all__ = ["create_channel", "create_subscription", "delete_subscription", "emit", "get_channel",
           "get_delivery", "list_channels", "list_deliveries", "list_subscriptions", "list_templates",
           "public_config", "render", "retry_delivery", "send_after", "set_template", "template_for", "update_channel"]

BUREAU_ROLES = frozenset({Role.OPS.value, Role.SECOPS.value, Role.DUTY.value, Role.ADMIN.value})


# ---------------------------------------------------------------- templates


def template_for(session: Session, kind: str) -> tuple[str, str]:
    """(subject, body) of an event kind: the operator's, or the built-in one."""
    own = session.scalar(select(Template).where(Template.kind == kind))
    if own is not None:
        return own.subject, own.body
    spec = EVENTS[kind]
    return spec.subject, spec.body


def render(subject: str, body: str, values: Mapping[str, Any]) -> tuple[str, str]:
    """The message: ``$name`` replaced by the event's values (an unknown name stays as written)."""
    text = {k: "" if v is None else str(v) for k, v in values.items()}
    return (TextTemplate(subject).safe_substitute(text)[:255], TextTemplate(body).safe_substitute(text))


def set_template(session: Session, principal: Principal, kind: str, *, subject: str | None,
                 body: str | None) -> Template | None:
    """Change the wording of one kind (both None: back to the built-in one)."""
    authorize(principal, "notify.template:write")
    if kind not in EVENTS:
        raise InvalidInput(f"one of {', '.join(sorted(EVENTS))}", field="kind")
    own = session.scalar(select(Template).where(Template.kind == kind))
    before = {"subject": own.subject, "body": own.body} if own else None
    if subject is None and body is None:
        if own is not None:
            session.delete(own)
            audit.record(session, principal, action="reset", entity="notify_template", entity_id=kind, before=before)
        return None
    spec = EVENTS[kind]
    for name, text in (("subject", subject), ("body", body)):
        if text is not None:
            try:
                TextTemplate(text).substitute({k: "" for k in _names(spec)})
            except (KeyError, ValueError) as exc:
                raise InvalidInput(f"names a value the event does not have, or a stray $: {exc}", field=name) from None
    if own is None:
        own = Template(kind=kind, subject=subject or spec.subject, body=body or spec.body, updated_by=principal.actor)
        session.add(own)
    else:
        own.subject, own.body, own.updated_by = subject or own.subject, body or own.body, principal.actor
    session.flush()
    audit.record(session, principal, action="update", entity="notify_template", entity_id=kind, before=before,
                 after={"subject": own.subject, "body": own.body})
    return own


def _names(spec: EventKind) -> set[str]:
    """The values an event of this kind carries: those its built-in wording uses, and the common ones."""
    found: set[str] = {"unit_code", "unit_name", "deadline", "link", "kind", "label"}
    for text in (spec.subject, spec.body):
        for match in TextTemplate.pattern.finditer(text):
            name = match.group("named") or match.group("braced")
            if name:
                found.add(name)
    return found


# ---------------------------------------------------------------- emitting


def _minutes(text: str) -> int:
    hour, minute = text.split(":")
    return int(hour) * 60 + int(minute)


def send_after(now: datetime, *, urgent: bool, digest: bool) -> datetime:
    """When a message may go: urgent at once; otherwise after the quiet hours, or at the next digest time."""
    settings = get_settings()
    here = now.astimezone(BEIJING)
    if digest and not urgent:
        at = datetime.combine(here.date(), time.fromisoformat(settings.notify_digest_time), tzinfo=BEIJING)
        return (at if at > here else at + timedelta(days=1)).astimezone(UTC)
    if urgent or not settings.notify_quiet_hours:
        return now
    start, end = (_minutes(part) for part in settings.notify_quiet_hours.split("-"))
    minute = here.hour * 60 + here.minute
    quiet = start <= minute < end if start < end else (minute >= start or minute < end)
    if not quiet:
        return now
    ends = datetime.combine(here.date(), time(end // 60, end % 60), tzinfo=BEIJING)
    if ends <= here:
        ends += timedelta(days=1)
    return ends.astimezone(UTC)


def _bureau_mail(session: Session) -> Channel | None:
    return session.scalar(select(Channel).where(Channel.kind == ChannelKind.SMTP, Channel.unit_id.is_(None),
                                                Channel.enabled.is_(True)).order_by(Channel.id).limit(1))


def _recipients(session: Session, spec: EventKind, unit: Unit | None,
                roles: Sequence[str]) -> list[tuple[Channel, str, bool, int | None]]:
    """(channel, address, digest, unit id of the people reached) per recipient, each once."""
    found: dict[tuple[int, str], tuple[Channel, str, bool, int | None]] = {}
    if unit is not None:
        own = [s for s in session.scalars(select(Subscription).where(Subscription.unit_id == unit.id,
                                                                     Subscription.enabled.is_(True)))
               if fnmatchcase(spec.key, s.events) and s.channel.enabled]
        for sub in own:
            found.setdefault((sub.channel_id, sub.address), (sub.channel, sub.address, sub.digest, unit.id))
        if not own and unit.contact_email:
            mail = _bureau_mail(session)
            if mail is not None:
                found.setdefault((mail.id, unit.contact_email), (mail, unit.contact_email, False, unit.id))
    wanted = set(spec.roles) | set(roles)
    if wanted:
        for sub in session.scalars(select(Subscription).where(Subscription.role.in_(sorted(wanted)),
                                                              Subscription.enabled.is_(True))):
            if fnmatchcase(spec.key, sub.events) and sub.channel.enabled:
                found.setdefault((sub.channel_id, sub.address), (sub.channel, sub.address, sub.digest, None))
    return list(found.values())


def emit(session: Session, kind: str, *, unit_id: int | None, entity: str | None = None,
         entity_id: object = None, key: str | None = None, data: Mapping[str, Any] | None = None,
         deadline: datetime | date | None = None, link: str | None = None, roles: Sequence[str] = (),
         now: datetime | None = None) -> Event | None:
    """Record an event and its messages in the caller's transaction; the same ``key`` twice is one event.

    ``key`` defaults to the kind and the record (``compute.request.approved:resource_request:12``): pass one that
    names the occurrence when the same record may be told the same thing again (a ticket overdue on a new
    deadline). Returns the new event, or None when the key was already there.
    """
    spec = EVENTS.get(kind)
    if spec is None:
        raise InvalidInput(f"unknown event kind {kind!r}", field="kind")
    key = key or f"{kind}:{entity}:{entity_id}"
    if session.scalar(select(Event.id).where(Event.key == key)) is not None:
        return None
    now = now or utcnow()
    unit = session.get(Unit, unit_id) if unit_id is not None else None
    # A date deadline (a ticket's, a violation's) is a Beijing date: it ends at 23:59 there. People read it, as every
    # time, in the display zone with the zone named.
    deadline_at = (datetime.combine(deadline, time(23, 59), tzinfo=BEIJING).astimezone(UTC)
                   if isinstance(deadline, date) and not isinstance(deadline, datetime) else deadline)
    base = get_settings().notify_base_url.rstrip("/")
    values: dict[str, Any] = {"unit_code": unit.code if unit else "", "unit_name": unit.name if unit else "全市",
                              "deadline": local_time(deadline_at) if deadline_at else "—",
                              "link": f"{base}{link}" if link else base, "kind": kind, "label": spec.label,
                              **(data or {})}
    event = Event(key=key[:255], kind=kind, unit_id=unit_id, entity=entity,
                  entity_id=None if entity_id is None else str(entity_id), urgent=spec.urgent, deadline=deadline_at,
                  data={k: v if isinstance(v, int | float | bool) or v is None else str(v) for k, v in values.items()},
                  created_at=now)
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        return None  # another transaction recorded the same occurrence first
    subject_tpl, body_tpl = template_for(session, kind)
    subject, body = render(subject_tpl, body_tpl, values)
    for channel, address, digest, people in _recipients(session, spec, unit, roles):
        session.add(Delivery(event_id=event.id, idempotency_key=f"{event.key}|{channel.id}|{address}"[:400],
                             unit_id=people, channel_id=channel.id, address=address, subject=subject, body=body,
                             urgent=spec.urgent, digest=digest and not spec.urgent, status=DeliveryStatus.PENDING,
                             send_after=send_after(now, urgent=spec.urgent, digest=digest), created_at=now))
    session.flush()
    return event


# ---------------------------------------------------------------- the outbox


def list_deliveries(session: Session, principal: Principal, *, status: DeliveryStatus | None = None,
                    unit: str | None = None, kind: str | None = None, limit: int = 50,
                    offset: int = 0) -> tuple[list[Delivery], int]:
    """The outbox, newest first; a department sees the messages to its own people."""
    authorize(principal, "notify.notification:read")
    query = read.within(select(Delivery), principal, unit=Delivery.unit_id)
    if status is not None:
        query = query.where(Delivery.status == status)
    if unit is not None:
        query = query.where(under(session, principal, unit, Delivery.unit_id))
    if kind is not None:
        # A misspelt kind must not read as "no such messages": a pattern that names no event kind is refused.
        if not any(fnmatchcase(known, kind) for known in EVENTS):
            raise InvalidInput(f"no event kind matches {kind!r}; one of: {', '.join(sorted(EVENTS))}", field="kind")
        query = query.where(Delivery.event.has(Event.kind.like(kind.replace("*", "%"))))
    return read.page(session, query, limit=limit, offset=offset, order_by=(Delivery.id.desc(),))


def get_delivery(session: Session, principal: Principal, delivery_id: int) -> Delivery:
    authorize(principal, "notify.notification:read")
    return read.one(session, read.within(select(Delivery).where(Delivery.id == delivery_id), principal,
                                         unit=Delivery.unit_id), missing=f"no notification with id {delivery_id}")


def retry_delivery(session: Session, principal: Principal, delivery_id: int) -> Delivery:
    """Send a failed message again (after the receiver was checked: a message interrupted mid-send may have
    arrived)."""
    authorize(principal, "notify.notification:retry")
    row = get_delivery(session, principal, delivery_id)
    moved = session.execute(update(Delivery).where(Delivery.id == row.id, Delivery.status == DeliveryStatus.FAILED)
                            .values(status=DeliveryStatus.PENDING, attempts=0, send_after=utcnow(),
                                    claimed_by=None, claimed_at=None)
                            .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    if not moved:
        raise Conflict(f"notification {row.id} is {row.status.value}; only a failed one is retried", field="status")
    session.refresh(row)
    audit.record(session, principal, action="retry", entity="notification", entity_id=row.id,
                 before={"status": "failed"}, after={"status": "pending"}, unit_id=row.unit_id)
    return row


# ---------------------------------------------------------------- channels and subscriptions


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A channel's config as it may be shown: secrets masked."""
    return {k: ("***" if k in SECRET_FIELDS and v else v) for k, v in config.items()}


def get_channel(session: Session, principal: Principal, name: str) -> Channel:
    authorize(principal, "notify.channel:read")
    query = select(Channel).where(Channel.name == name)
    if principal.is_scoped:  # a department sees the bureau's channels (to subscribe) and its own
        query = query.where(Channel.unit_id.is_(None) | read.visible(principal, Channel.unit_id))
    return read.one(session, query, missing=f"no channel named {name!r}", field="channel")


def list_channels(session: Session, principal: Principal) -> list[Channel]:
    authorize(principal, "notify.channel:read")
    query = select(Channel)
    if principal.is_scoped:
        query = query.where(Channel.unit_id.is_(None) | read.visible(principal, Channel.unit_id))
    return list(session.scalars(query.order_by(Channel.name)))


def create_channel(session: Session, principal: Principal, *, name: str, kind: ChannelKind,
                   config: Mapping[str, Any], unit: str | None = None, enabled: bool = True) -> Channel:
    authorize(principal, "notify.channel:write")
    if session.scalar(select(Channel.id).where(Channel.name == name)) is not None:
        raise Conflict(f"a channel named {name!r} already exists", field="name")
    owner = get_unit(session, principal, unit, field_name="unit") if unit else None
    channel = Channel(name=name, kind=kind, unit_id=owner.id if owner else None, unit=owner,
                      config=check_config(kind.value, config), enabled=enabled)
    session.add(channel)
    session.flush()
    audit.record(session, principal, action="create", entity="notify_channel", entity_id=name,
                 after={"kind": kind.value, "unit": unit, "config": public_config(channel.config), "enabled": enabled},
                 unit_id=channel.unit_id)
    return channel


def update_channel(session: Session, principal: Principal, name: str, *, config: Mapping[str, Any] | None = None,
                   enabled: bool | None = None) -> Channel:
    """Change some of a channel's settings (the others kept) or switch it on or off."""
    authorize(principal, "notify.channel:write")
    channel = get_channel(session, principal, name)
    before = {"config": public_config(channel.config), "enabled": channel.enabled}
    if config:
        channel.config = check_config(channel.kind.value, {**channel.config, **config})
    if enabled is not None:
        channel.enabled = enabled
    session.flush()
    audit.record(session, principal, action="update", entity="notify_channel", entity_id=name, before=before,
                 after={"config": public_config(channel.config), "enabled": channel.enabled},
                 unit_id=channel.unit_id)
    return channel


def list_subscriptions(session: Session, principal: Principal, *, unit: str | None = None,
                       role: str | None = None) -> list[Subscription]:
    authorize(principal, "notify.subscription:read")
    query = read.within(select(Subscription), principal, unit=Subscription.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, Subscription.unit_id))
    if role is not None:
        if role not in BUREAU_ROLES:
            raise InvalidInput(f"no bureau role {role!r}; one of: {', '.join(sorted(BUREAU_ROLES))}", field="role")
        query = query.where(Subscription.role == role)
    return list(session.scalars(query.order_by(Subscription.id)))


def create_subscription(session: Session, principal: Principal, *, channel: str, events: str = "*",
                        unit: str | None = None, role: str | None = None, address: str = "",
                        name: str | None = None, digest: bool = False) -> Subscription:
    """A unit's people (a department names its own) or a bureau role hear ``events`` through ``channel``."""
    authorize(principal, "notify.subscription:write")
    if (unit is None) == (role is None):
        raise InvalidInput("a subscription is a unit's or a bureau role's: give one of them", field="unit")
    if principal.is_scoped and role is not None:
        raise InvalidInput("a department subscribes its own unit's people, not a bureau role", field="role")
    if role is not None and role not in BUREAU_ROLES:
        raise InvalidInput(f"one of {', '.join(sorted(BUREAU_ROLES))}", field="role")
    if events != "*" and not any(fnmatchcase(k, events) for k in EVENTS):
        raise InvalidInput("matches no event kind (e.g. security.*, reclaim.notice, *)", field="events")
    owner = get_unit(session, principal, unit, field_name="unit") if unit else None
    via = get_channel(session, principal, channel)
    if via.unit_id is not None and (owner is None or not owner.path.startswith(via.unit.path if via.unit else "")):
        raise InvalidInput(f"channel {via.name} belongs to another unit", field="channel")
    if via.kind.needs_address and not address:
        raise InvalidInput(f"a {via.kind.label} subscription names the address to send to", field="address")
    if not via.kind.needs_address and address:
        raise InvalidInput(f"a {via.kind.label} needs no address: the channel is the destination", field="address")
    if via.kind is ChannelKind.SMTP and "@" not in address:
        raise InvalidInput("an e-mail address", field="address")
    sub = Subscription(unit_id=owner.id if owner else None, unit=owner, role=role, events=events, channel=via,
                       channel_id=via.id, address=address, name=name, digest=digest)
    session.add(sub)
    session.flush()
    audit.record(session, principal, action="create", entity="notify_subscription", entity_id=sub.id,
                 after={"unit": unit, "role": role, "events": events, "channel": via.name, "address": address,
                        "name": name, "digest": digest}, unit_id=sub.unit_id)
    return sub


def delete_subscription(session: Session, principal: Principal, subscription_id: int) -> None:
    authorize(principal, "notify.subscription:write")
    sub = read.one(session, read.within(select(Subscription).where(Subscription.id == subscription_id), principal,
                                        unit=Subscription.unit_id),
                   missing=f"no subscription with id {subscription_id}")
    if principal.is_scoped and sub.unit_id is None:
        raise NotFound(f"no subscription with id {subscription_id}", field="id")
    audit.record(session, principal, action="delete", entity="notify_subscription", entity_id=sub.id,
                 before={"events": sub.events, "channel": sub.channel.name, "address": sub.address},
                 unit_id=sub.unit_id)
    session.delete(sub)
    session.flush()


def list_templates(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """Every event kind with the wording in force (the operator's or the built-in one)."""
    authorize(principal, "notify.template:read")
    own = {t.kind: t for t in session.scalars(select(Template))}
    rows = []
    for kind, spec in sorted(EVENTS.items()):
        subject, body = (own[kind].subject, own[kind].body) if kind in own else (spec.subject, spec.body)
        rows.append({"kind": kind, "label": spec.label, "urgent": spec.urgent, "roles": list(spec.roles),
                     "subject": subject, "body": body, "custom": kind in own})
    return rows
