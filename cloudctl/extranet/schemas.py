"""Input and output shapes of the extranet domain."""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from cloudctl.core.schemas import Schema
from cloudctl.core.text import NoControl, NoControlMultiline
from cloudctl.extranet.models import (
    AddressRole,
    ApplicationStatus,
    LinkRole,
    LinkStatus,
    PrefixStatus,
    ViolationStatus,
    Zone,
)

__all__ = [
    "AccessRateRow",
    "AddressCreate",
    "AddressPublic",
    "AggregateCreate",
    "AggregatePublic",
    "ApplicationCreate",
    "ApplicationDecision",
    "ApplicationPublic",
    "Commitment",
    "DevicePublic",
    "LinkCreate",
    "LinkPublic",
    "LinkUpdate",
    "PrefixCreate",
    "PrefixPublic",
    "ScorecardRow",
    "ViolationPublic",
    "ViolationUpdate",
]

Vrf = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]


def _network(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 network in CIDR form with its host bits zero ({exc})") from None
    return str(network)


def _address(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise ValueError("not an IPv4 address") from None


class AggregateCreate(Schema):
    prefix: str = Field(description="a block the city received, e.g. 10.64.0.0/12")
    description: Annotated[str, StringConstraints(max_length=255), NoControlMultiline] | None = None

    _check = field_validator("prefix")(_network)


class AggregatePublic(Schema):
    id: int
    prefix: str
    description: str | None


class PrefixCreate(Schema):
    prefix: str
    zone: Zone
    vrf: Vrf = "global"
    status: PrefixStatus = PrefixStatus.ACTIVE
    unit_code: Annotated[str, StringConstraints(max_length=32), NoControl] | None = None
    vlan: int | None = Field(default=None, ge=1, le=4094)
    description: Annotated[str, StringConstraints(max_length=255), NoControlMultiline] | None = None

    _check = field_validator("prefix")(_network)


class PrefixPublic(Schema):
    id: int
    prefix: str
    zone: Zone
    vrf: str
    status: PrefixStatus
    unit_code: str | None
    vlan: int | None
    application_id: int | None
    description: str | None
    used: int = 0
    usable: int = 0
    utilisation: float = Field(default=0.0, description="used ÷ usable (network and broadcast excluded)")


class AddressCreate(Schema):
    address: str
    role: AddressRole = AddressRole.HOST
    unit_code: Annotated[str, StringConstraints(max_length=32), NoControl] | None = Field(
        default=None, description="default: the prefix's unit")
    mac: Annotated[str, StringConstraints(max_length=32), NoControl] | None = Field(
        default=None, description="the terminal registered to hold it")
    vrf: Vrf = "global"
    zone: Zone | None = Field(default=None, description="which zone's prefix, when the address is in several")
    description: Annotated[str, StringConstraints(max_length=255), NoControlMultiline] | None = None

    _check = field_validator("address")(_address)


class AddressPublic(Schema):
    id: int
    address: str
    prefix_id: int
    role: AddressRole
    mac: str | None
    application_id: int | None
    description: str | None


class Commitment(Schema):
    """The security commitment (安全承诺) the applying unit signs: without it no address is handed out."""

    signer: Annotated[str, StringConstraints(min_length=2, max_length=64), NoControl]
    accepted: bool
    signed_on: date | None = Field(default=None, description="default: today")
    text: Annotated[str, StringConstraints(max_length=4000), NoControlMultiline] | None = Field(
        default=None, description="default: the bureau's standard text")


class ApplicationCreate(Schema):
    zone: Zone
    vrf: Vrf = "global"
    prefix_length: int | None = Field(default=None, ge=16, le=30, description="a block of this size")
    count: int | None = Field(default=None, ge=1, le=256, description="or this many addresses")
    purpose: Annotated[str, StringConstraints(min_length=4, max_length=500), NoControlMultiline]
    commitment: Commitment
    unit_code: Annotated[str, StringConstraints(max_length=32), NoControl] | None = Field(
        default=None, description="default: the applicant's unit")

    @model_validator(mode="after")
    def _one_size(self) -> ApplicationCreate:
        if (self.prefix_length is None) == (self.count is None):
            raise ValueError("give exactly one of prefix_length and count")
        return self


class ApplicationDecision(Schema):
    reason: Annotated[str, StringConstraints(max_length=500), NoControlMultiline] | None = None


class ApplicationPublic(Schema):
    id: int
    unit_code: str
    zone: Zone
    vrf: str
    prefix_length: int | None
    count: int | None
    purpose: str
    commitment_signer: str
    commitment_signed_on: date
    commitment_accepted: bool
    status: ApplicationStatus
    submitted_by: str
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    allocated: list[str]
    created_at: datetime


class LinkCreate(Schema):
    unit_code: Annotated[str, StringConstraints(max_length=32), NoControl]
    carrier: Annotated[str, StringConstraints(min_length=1, max_length=32), NoControl]
    line_type: Annotated[str, StringConstraints(min_length=1, max_length=32), NoControl]
    bandwidth_mbps: int = Field(ge=1, le=400_000)
    role: LinkRole = LinkRole.PRIMARY
    status: LinkStatus = LinkStatus.ACTIVE
    commissioned_on: date | None = None
    circuit_id: Annotated[str, StringConstraints(max_length=64), NoControl] | None = None
    uses_shared_exit: bool = False
    description: Annotated[str, StringConstraints(max_length=255), NoControlMultiline] | None = None


class LinkUpdate(Schema):
    status: LinkStatus | None = None
    bandwidth_mbps: int | None = Field(default=None, ge=1, le=400_000)
    role: LinkRole | None = None
    uses_shared_exit: bool | None = None
    description: Annotated[str, StringConstraints(max_length=255), NoControlMultiline] | None = None


class LinkPublic(Schema):
    id: int
    unit_code: str
    direction: str
    carrier: str
    line_type: str
    bandwidth_mbps: int
    role: LinkRole
    status: LinkStatus
    commissioned_on: date | None
    circuit_id: str | None
    uses_shared_exit: bool


class AccessRateRow(BaseModel):
    """接入率 of one level or county: units connected ÷ units that must connect, and who is missing."""

    scope: str  # horizontal, vertical, or a county's code
    name: str
    required: int
    connected: int
    rate: float | None = Field(description="connected ÷ required; null when no unit here must connect "
                                           "(an empty denominator is not a full success)")
    rate_reason: str | None = Field(default=None, description="why the rate is null")
    missing: list[str] = Field(description="codes of the required units not (or no longer) connected")
    missing_names: list[str] = Field(default_factory=list, description="their names, in the same order")


class DevicePublic(Schema):
    id: int
    name: str
    host: str
    device_type: str
    role: str
    unit_code: str
    zone: Zone
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    parse_counts: dict[str, dict[str, int]] | None = Field(
        default=None, description="the last collection per command: rows parsed and rows skipped")
    skipped_rows: list[dict[str, str]] | None = Field(
        default=None, description="the rows it skipped (the first 50), each with command, raw line and reason")


class ViolationPublic(Schema):
    id: int
    rule: int
    title: str
    subject: str
    unit_code: str | None
    status: ViolationStatus
    evidence: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    deadline: date | None
    note: str | None
    resolved_at: datetime | None
    # The unit's last progress report: in_progress or fixed (please verify); the next check decides.
    progress: str | None


class ViolationUpdate(Schema):
    status: Literal["rectifying", "resolved", "waived"] | None = None
    note: Annotated[str, StringConstraints(max_length=500), NoControlMultiline] | None = None
    deadline: date | None = None


class ScorecardRow(BaseModel):
    """评估: one unit's access, open violations and rectification."""

    unit_code: str
    name: str
    level: str
    connected: bool
    links: int
    backup_line: bool
    devices: int
    devices_collected: int
    violations_open: int
    violations_resolved: int
    rectification_rate: float | None
    score: int = Field(description="0–100: access 40, collection 20, violations 40")
