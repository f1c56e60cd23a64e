"""Input and output shapes of the organisation domain (the Create / Update / Public family)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, StringConstraints, computed_field

from cloudctl.core.auth import Role
from cloudctl.core.schemas import Schema
from cloudctl.core.text import NoControl, NoControlMultiline
from cloudctl.org.models import UnitKind

__all__ = [
    "BusinessSystemCreate",
    "BusinessSystemPublic",
    "BusinessSystemUpdate",
    "MePublic",
    "TokenCreated",
    "TokenPublic",
    "UnitCreate",
    "UnitPublic",
    "UnitUpdate",
    "UserCreate",
    "UserPublic",
]

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _phone(value: str) -> str:
    if not re.fullmatch(r"[0-9+() -]{3,32}", value):
        raise ValueError("must be a phone number (digits, spaces, + - ( ) only)")
    return value


def _email_fits(value: str) -> str:
    if len(value) > 128:
        raise ValueError(f"must be at most 128 characters, not {len(value)}")
    return value


UnitCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32, pattern=CODE_PATTERN)]
UnitName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
                     AfterValidator(_not_blank), NoControl]
SystemName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
                       AfterValidator(_not_blank), NoControl]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoControl]
Description = Annotated[str, StringConstraints(max_length=2000), NoControlMultiline]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32), AfterValidator(_phone)]
Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=64,
                                            pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
MlpsLevel = Annotated[int, Field(ge=1, le=4, description="等保级别 1–4 (GB/T 22239-2019)")]


class Contacts(Schema):
    contact_name: PersonName | None = None
    contact_phone: Phone | None = None
    # An address may be 254 characters; the column holds 128, and PostgreSQL alone would refuse a longer one.
    contact_email: Annotated[EmailStr, AfterValidator(_email_fits)] | None = None


class UnitCreate(Contacts):
    code: UnitCode = Field(description="unique unit code, e.g. an administrative division code")
    name: UnitName = Field(description="Chinese name, e.g. 市公安局")
    kind: UnitKind
    parent: UnitCode | None = Field(default=None, description="the parent unit's code; none only for the city")


class UnitUpdate(Contacts):
    name: UnitName | None = None
    kind: UnitKind | None = None
    parent: UnitCode | None = None


class UnitPublic(Schema):
    id: int
    code: str
    name: str
    kind: UnitKind
    parent: str | None = Field(validation_alias="parent_code")
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def kind_label(self) -> str:
        return self.kind.label

    @computed_field  # type: ignore[prop-decorator]
    @property
    def level(self) -> str:
        return self.kind.level


class BusinessSystemCreate(Contacts):
    unit_code: UnitCode
    name: SystemName
    mlps_level: MlpsLevel
    user_facing: bool = Field(default=False, description="serves the public directly; sized with more headroom")
    description: Description | None = None


class BusinessSystemUpdate(Contacts):
    name: SystemName | None = None
    mlps_level: MlpsLevel | None = None
    user_facing: bool | None = None
    description: Description | None = None


class BusinessSystemPublic(Schema):
    id: int
    unit_code: str
    name: str
    mlps_level: int
    user_facing: bool
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime


class UserCreate(Schema):
    username: Username
    role: Role
    unit: UnitCode | None = None
    display_name: PersonName | None = None


class UserPublic(Schema):
    id: int
    username: str
    display_name: str | None
    role: Role
    unit: str | None = Field(validation_alias="unit_code")
    active: bool
    created_at: datetime


class TokenPublic(Schema):
    id: int
    username: str
    prefix: str
    description: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="the secret; shown once, only its hash is stored")


class MePublic(Schema):
    username: str
    display_name: str | None
    role: Role
    role_label: str
    unit: str | None
    unit_name: str | None
    token_expires_at: datetime | None
