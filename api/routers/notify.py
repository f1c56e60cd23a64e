"""Notifications over HTTP: the outbox (a department sees its own), channels, who hears what, the wording."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response, status

from api.deps import PrincipalDep, SessionDep, UnitFilter, bounded_read
from api.routing import DomainRouter
from cloudctl.core.bounds import Id, Offset
from cloudctl.core.schemas import Page
from cloudctl.notify import sender as _sender  # noqa: F401  (registers the sender's jobs with this process)
from cloudctl.notify import service
from cloudctl.notify.models import DeliveryStatus
from cloudctl.notify.schemas import (
    ChannelCreate,
    ChannelPublic,
    ChannelUpdate,
    NotificationPublic,
    SubscriptionCreate,
    SubscriptionPublic,
    TemplateIn,
    TemplatePublic,
)

router = DomainRouter(prefix="/api/v1", tags=["notifications"])
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/notifications")
@bounded_read
def list_notifications(session: SessionDep, principal: PrincipalDep,
                       status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
                       unit: UnitFilter = None,
                       kind: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9_.*]+$",
                                                         description="an event kind, or a pattern: reclaim.*")] = None,
                       limit: Limit = 50, offset: Offset = 0) -> Page[NotificationPublic]:
    """The outbox, newest first: what was sent, waits, or failed, and why; a department sees its own."""
    rows, total = service.list_deliveries(session, principal, status=status_, unit=unit, kind=kind, limit=limit,
                                          offset=offset)
    return Page[NotificationPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/notifications/{notification_id}")
@bounded_read
def read_notification(notification_id: Id, session: SessionDep, principal: PrincipalDep) -> NotificationPublic:
    return NotificationPublic.model_validate(service.get_delivery(session, principal, notification_id))


@router.post("/notifications/{notification_id}/retry")
def retry_notification(notification_id: Id, session: SessionDep, principal: PrincipalDep) -> NotificationPublic:
    """Send a failed message again (check first that it did not arrive: a send interrupted midway may have)."""
    return NotificationPublic.model_validate(service.retry_delivery(session, principal, notification_id))


@router.get("/notify/channels")
def list_channels(session: SessionDep, principal: PrincipalDep) -> list[ChannelPublic]:
    return [ChannelPublic.model_validate(c) for c in service.list_channels(session, principal)]


@router.post("/notify/channels", status_code=status.HTTP_201_CREATED)
def create_channel(body: ChannelCreate, session: SessionDep, principal: PrincipalDep) -> ChannelPublic:
    return ChannelPublic.model_validate(service.create_channel(session, principal, name=body.name, kind=body.kind,
                                                               config=body.config, unit=body.unit,
                                                               enabled=body.enabled))


@router.patch("/notify/channels/{name}")
def update_channel(name: Annotated[str, Path(max_length=64)], body: ChannelUpdate, session: SessionDep,
                   principal: PrincipalDep) -> ChannelPublic:
    return ChannelPublic.model_validate(service.update_channel(session, principal, name, config=body.config,
                                                               enabled=body.enabled))


@router.get("/notify/subscriptions")
def list_subscriptions(session: SessionDep, principal: PrincipalDep, unit: UnitFilter = None,
                       role: Annotated[str | None, Query(max_length=16)] = None) -> list[SubscriptionPublic]:
    return [SubscriptionPublic.model_validate(s) for s in service.list_subscriptions(session, principal, unit=unit,
                                                                                      role=role)]


@router.post("/notify/subscriptions", status_code=status.HTTP_201_CREATED)
def create_subscription(body: SubscriptionCreate, session: SessionDep, principal: PrincipalDep) -> SubscriptionPublic:
    """A unit's people (a department names its own: its duty contact, its leader) or a bureau role's channel."""
    return SubscriptionPublic.model_validate(service.create_subscription(
        session, principal, channel=body.channel, events=body.events, unit=body.unit, role=body.role,
        address=body.address, name=body.name, digest=body.digest))


@router.delete("/notify/subscriptions/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_subscription(subscription_id: Id, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete_subscription(session, principal, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/notify/templates")
def list_templates(session: SessionDep, principal: PrincipalDep) -> list[TemplatePublic]:
    return [TemplatePublic.model_validate(t) for t in service.list_templates(session, principal)]


@router.put("/notify/templates/{kind}")
def set_template(kind: Annotated[str, Path(max_length=64)], body: TemplateIn, session: SessionDep,
                 principal: PrincipalDep) -> TemplatePublic:
    """Change an event kind's wording (``$unit_name``, ``$deadline``, ``$link`` …); both null: the built-in one."""
    service.set_template(session, principal, kind, subject=body.subject, body=body.body)
    return TemplatePublic.model_validate(next(t for t in service.list_templates(session, principal)
                                              if t["kind"] == kind))
