"""Tables of notifications: channels, who hears what, templates, events, and the outbox of messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudctl.core.models import Base, LabelledEnum, TimestampMixin, enum_column, utcnow
from cloudctl.org.models import Unit

__all__ = ["Channel", "ChannelKind", "Delivery", "DeliveryStatus", "Event", "Subscription", "Template"]


class ChannelKind(LabelledEnum):
    SMTP = "smtp", "电子邮件", "cyan"
    DINGTALK = "dingtalk", "钉钉群机器人", "blue"
    WECOM = "wecom", "企业微信群机器人", "green"
    FEISHU = "feishu", "飞书机器人", "magenta"
    WEBHOOK = "webhook", "通用Webhook", "white"
    SMS = "sms", "短信网关", "yellow"

    @property
    def needs_address(self) -> bool:
        """E-mail and SMS go to a person's address; a robot or a webhook is its own destination."""
        return self in (ChannelKind.SMTP, ChannelKind.SMS)


class Channel(TimestampMixin, Base):
    """A way out: a mail server, a group robot, a webhook or an SMS gateway, with its settings.

    ``config`` holds what the kind needs (host, port and credentials; a robot's URL — government editions run
    on their own hosts — and its signing secret); secrets in it are never shown back."""

    __tablename__ = "notify_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[ChannelKind] = mapped_column(enum_column(ChannelKind, 16))
    # A department's own group robot belongs to its unit; the bureau's channels to none.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)

    unit: Mapped[Unit | None] = relationship(lazy="joined")

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None


class Subscription(TimestampMixin, Base):
    """Who hears which events through which channel: a unit's (its contacts, its duty contact, its leader) or a
    bureau role's (the ops group, the security team, the duty officer)."""

    __tablename__ = "notify_subscriptions"
    __table_args__ = (CheckConstraint("(unit_id IS NULL) <> (role IS NULL)", name="unit_or_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    role: Mapped[str | None] = mapped_column(String(16))
    # An event kind, or a pattern of them ("security.*", "*").
    events: Mapped[str] = mapped_column(String(64), default="*")
    channel_id: Mapped[int] = mapped_column(ForeignKey("notify_channels.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(255), default="")
    name: Mapped[str | None] = mapped_column(String(64))
    # Non-urgent events gathered into one message a day (每日汇总) instead of one each.
    digest: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)

    unit: Mapped[Unit | None] = relationship(lazy="joined")
    channel: Mapped[Channel] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None

    @property
    def channel_name(self) -> str:
        return self.channel.name


class Template(TimestampMixin, Base):
    """An operator's wording of one event kind's message, over the built-in one."""

    __tablename__ = "notify_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(128))


class Event(Base):
    """Something someone must hear about, written in the transaction of the change itself.

    ``key`` says which occurrence it is (a request's approval, a ticket's overdue day): emitting the same key twice
    is one event, so a reminder sweep that runs again, or a retried job, tells nobody twice."""

    __tablename__ = "notify_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    entity: Mapped[str | None] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    urgent: Mapped[bool] = mapped_column(default=False)
    deadline: Mapped[datetime | None]
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class DeliveryStatus(LabelledEnum):
    PENDING = "pending", "待发送", "white"
    SENDING = "sending", "发送中", "cyan"
    SENT = "sent", "已发送", "green"
    FAILED = "failed", "发送失败", "red"


class Delivery(Base):
    """One message of one event to one recipient: the outbox row the sender delivers, once.

    ``idempotency_key`` is the event's key, the channel and the address: the unique constraint makes a second
    row for the same event and recipient impossible, and the sender moves a row pending → sending with a
    conditional UPDATE before it sends, so two senders never both send it."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_notifications_idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("notify_events.id", ondelete="CASCADE"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(400))
    # The unit whose people receive it (null for the bureau's own channels): a department sees its own.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("notify_channels.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(255), default="")
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    urgent: Mapped[bool] = mapped_column(default=False)
    digest: Mapped[bool] = mapped_column(default=False)
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus, 16), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    # Not sent before: quiet hours' end, the digest time, or a retry's backoff.
    send_after: Mapped[datetime] = mapped_column(index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    event: Mapped[Event] = relationship(lazy="joined", innerjoin=True)
    channel: Mapped[Channel] = relationship(lazy="joined", innerjoin=True)
    unit: Mapped[Unit | None] = relationship(lazy="joined")

    @property
    def kind(self) -> str:
        return self.event.kind

    @property
    def channel_name(self) -> str:
        return self.channel.name

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None

    @property
    def deadline(self) -> datetime | None:
        return self.event.deadline
