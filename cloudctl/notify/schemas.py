"""Input and output shapes of notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from cloudctl.core.schemas import Schema
from cloudctl.core.text import NoControl, NoControlMultiline
from cloudctl.notify.models import ChannelKind, DeliveryStatus
from cloudctl.notify.service import public_config

__all__ = ["ChannelCreate", "ChannelPublic", "ChannelUpdate", "NotificationPublic", "SubscriptionCreate",
           "SubscriptionPublic", "TemplateIn", "TemplatePublic"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"), NoControl]


class NotificationPublic(Schema):
    id: int
    kind: str
    unit_code: str | None
    channel: str = Field(validation_alias="channel_name")
    address: str
    subject: str
    body: str
    urgent: bool
    digest: bool
    status: DeliveryStatus
    attempts: int
    send_after: datetime
    sent_at: datetime | None
    last_error: str | None
    deadline: datetime | None
    created_at: datetime


class ChannelPublic(Schema):
    id: int
    name: str
    kind: ChannelKind
    unit_code: str | None
    config: dict[str, Any]
    enabled: bool

    @field_validator("config")
    @classmethod
    def _mask(cls, value: dict[str, Any]) -> dict[str, Any]:
        return public_config(value)


class ChannelCreate(Schema):
    name: Name
    kind: ChannelKind
    unit: Annotated[str, StringConstraints(max_length=32), NoControl] | None = Field(
        default=None, description="a department's own robot; none for the bureau's channels")
    config: dict[str, str | int | dict[str, str]] = Field(
        description="smtp: host, port, security (starttls|ssl|none), username, password, sender, sender_name; "
                    "dingtalk/feishu: url, secret; wecom: url; webhook: url, secret; sms: url, body, headers, token")
    enabled: bool = True


class ChannelUpdate(Schema):
    config: dict[str, str | int | dict[str, str]] | None = None
    enabled: bool | None = None


class SubscriptionPublic(Schema):
    id: int
    unit_code: str | None
    role: str | None
    events: str
    channel: str = Field(validation_alias="channel_name")
    address: str
    name: str | None
    digest: bool
    enabled: bool


class SubscriptionCreate(Schema):
    channel: Name
    events: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                             pattern=r"^[a-z0-9_.*]+$")] = "*"
    unit: Annotated[str, StringConstraints(max_length=32), NoControl] | None = None
    role: Annotated[str, StringConstraints(max_length=16), NoControl] | None = None
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255), NoControl] = ""
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64), NoControl] | None = None
    digest: bool = False


class TemplatePublic(Schema):
    kind: str
    label: str
    urgent: bool
    roles: list[str]
    subject: str
    body: str
    custom: bool


class TemplateIn(Schema):
    """Both null: back to the built-in wording."""

    subject: Annotated[str, StringConstraints(min_length=1, max_length=255), NoControl] | None = None
    body: Annotated[str, StringConstraints(min_length=1, max_length=4000), NoControlMultiline] | None = None
