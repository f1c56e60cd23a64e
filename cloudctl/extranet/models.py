"""Tables of the extranet domain: access links, the IP address plan, IP applications, what the wire shows,
and compliance violations.

The *plan* (aggregates, prefixes, addresses: what was allocated) and the *observation* (ARP and MAC
entries: what the network shows) live in separate tables, as NetBox and phpIPAM users learned to: a
plan row is changed by people with an approval behind it; an observation is overwritten by the next
collection. Compliance is the difference between the two.

Addresses are IPv4, stored as text for people and as integers (``start``/``end``/``value``) for range
queries; the integers are BigInteger so 255.255.255.255 fits on PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudctl.core.models import Base, LabelledEnum, TimestampMixin, enum_column
from cloudctl.org.models import Unit

__all__ = [
    "RULE_TITLES",
    "AccessLink",
    "AddressRole",
    "Aggregate",
    "ApplicationStatus",
    "ArpObservation",
    "IPAddress",
    "IPApplication",
    "LinkRole",
    "LinkStatus",
    "MacObservation",
    "NetworkDevice",
    "Prefix",
    "PrefixStatus",
    "Violation",
    "ViolationStatus",
    "Zone",
]


class Zone(LabelledEnum):
    """The extranet's zones; the enterprise access zone must stay apart from the government ones."""

    PUBLIC = "public", "公用网络区", "cyan"
    DEDICATED = "dedicated", "专用网络区", "blue"
    INTERNET = "internet", "互联网接入区", "magenta"
    ENTERPRISE = "enterprise", "企业接入区", "yellow"
    MANAGEMENT = "management", "管理区", "white"


class LinkStatus(LabelledEnum):
    PLANNED = "planned", "规划中", "white"
    ACTIVE = "active", "在用", "green"
    DOWN = "down", "中断", "red"
    RETIRED = "retired", "已撤销", "bright_black"


class LinkRole(LabelledEnum):
    PRIMARY = "primary", "主用线路", "cyan"
    BACKUP = "backup", "备用线路", "blue"


class AccessLink(TimestampMixin, Base):
    """A unit's line into the extranet: horizontal for municipal units, vertical for counties and below."""

    __tablename__ = "extranet_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    carrier: Mapped[str] = mapped_column(String(32))  # 电信、联通、移动、广电
    line_type: Mapped[str] = mapped_column(String(32))  # MSTP、裸光纤、SDH、VPN…
    bandwidth_mbps: Mapped[int]
    role: Mapped[LinkRole] = mapped_column(enum_column(LinkRole, 16))
    status: Mapped[LinkStatus] = mapped_column(enum_column(LinkStatus, 16), index=True)
    commissioned_on: Mapped[date | None] = mapped_column(Date)
    circuit_id: Mapped[str | None] = mapped_column(String(64))
    # Uses the city's shared Internet exit (统一互联网出口) instead of a line of its own.
    uses_shared_exit: Mapped[bool] = mapped_column(default=False, server_default=false())
    description: Mapped[str | None] = mapped_column(String(255))

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code

    @property
    def direction(self) -> str:
        return self.unit.kind.level


class Aggregate(TimestampMixin, Base):
    """A block the city received (from the province's plan); every prefix must sit inside one."""

    __tablename__ = "extranet_aggregates"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(18), unique=True)
    start: Mapped[int] = mapped_column(BigInteger)
    end: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(String(255))


class PrefixStatus(LabelledEnum):
    CONTAINER = "container", "地址池", "blue"  # a pool that applications are allocated from
    ACTIVE = "active", "在用", "green"
    RESERVED = "reserved", "预留", "yellow"
    DEPRECATED = "deprecated", "停用", "bright_black"


class Prefix(TimestampMixin, Base):
    """A prefix of the plan: a pool (container), or a block allocated to a unit in one zone and VRF."""

    __tablename__ = "extranet_prefixes"
    # (vrf, zone, prefix) may repeat nowhere: the same block twice in one routing domain is a plan error.
    __table_args__ = (UniqueConstraint("vrf", "zone", "prefix", name="uq_extranet_prefixes_vrf_zone_prefix"),
                      Index("ix_extranet_prefixes_zone_start", "zone", "start"))

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(18))
    start: Mapped[int] = mapped_column(BigInteger)
    end: Mapped[int] = mapped_column(BigInteger)
    length: Mapped[int]
    zone: Mapped[Zone] = mapped_column(enum_column(Zone, 16))
    # The VPN instance (VRF) the prefix is routed in; "global" when the zone has one routing table.
    vrf: Mapped[str] = mapped_column(String(32), default="global")
    status: Mapped[PrefixStatus] = mapped_column(enum_column(PrefixStatus, 16), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    # The VLAN the block is served on at the unit's access device: how an observation gets its zone.
    vlan: Mapped[int | None]
    application_id: Mapped[int | None] = mapped_column(ForeignKey("extranet_ip_applications.id",
                                                                  ondelete="SET NULL"), index=True)
    description: Mapped[str | None] = mapped_column(String(255))

    unit: Mapped[Unit | None] = relationship(lazy="joined")
    application: Mapped[IPApplication | None] = relationship(lazy="select")

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None


class AddressRole(LabelledEnum):
    HOST = "host", "终端/主机", "white"
    GATEWAY = "gateway", "网关", "cyan"
    VRRP = "vrrp", "VRRP 虚地址", "blue"  # moves between routers by design: exempt from duplicate rules
    VIP = "vip", "服务虚地址", "blue"
    LOOPBACK = "loopback", "环回地址", "bright_black"


class IPAddress(TimestampMixin, Base):
    """An address of the plan: approved to a unit (through an application), with its role and MAC binding."""

    __tablename__ = "extranet_addresses"
    __table_args__ = (UniqueConstraint("prefix_id", "value", name="uq_extranet_addresses_prefix_value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(15))
    value: Mapped[int] = mapped_column(BigInteger, index=True)
    prefix_id: Mapped[int] = mapped_column(ForeignKey("extranet_prefixes.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    role: Mapped[AddressRole] = mapped_column(enum_column(AddressRole, 16))
    # The terminal registered to hold it (终端地址安全管理), aa:bb:cc:dd:ee:ff.
    mac: Mapped[str | None] = mapped_column(String(17))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("extranet_ip_applications.id",
                                                                  ondelete="SET NULL"), index=True)
    description: Mapped[str | None] = mapped_column(String(255))

    prefix: Mapped[Prefix] = relationship(lazy="joined", innerjoin=True)
    application: Mapped[IPApplication | None] = relationship(lazy="select")


class ApplicationStatus(LabelledEnum):
    SUBMITTED = "submitted", "待审批", "white"
    APPROVED = "approved", "已分配", "green"
    REJECTED = "rejected", "已驳回", "red"
    RELEASED = "released", "已回收", "bright_black"
    CANCELLED = "cancelled", "已撤回", "bright_black"


class IPApplication(TimestampMixin, Base):
    """An IP address application (IP地址申请) with the unit's signed security commitment (安全承诺)."""

    __tablename__ = "extranet_ip_applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    zone: Mapped[Zone] = mapped_column(enum_column(Zone, 16))
    vrf: Mapped[str] = mapped_column(String(32), default="global")
    # Either a block of this size, or this many single addresses from the unit's own blocks.
    prefix_length: Mapped[int | None]
    count: Mapped[int | None]
    purpose: Mapped[str] = mapped_column(String(500))
    commitment_signer: Mapped[str] = mapped_column(String(64))
    commitment_signed_on: Mapped[date] = mapped_column(Date)
    commitment_accepted: Mapped[bool]
    commitment_text: Mapped[str] = mapped_column(Text)
    status: Mapped[ApplicationStatus] = mapped_column(enum_column(ApplicationStatus, 16), index=True)
    submitted_by: Mapped[str] = mapped_column(String(128))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    # What approval handed out, as text (CIDRs or addresses), for the record and the department.
    allocated: Mapped[list[str]] = mapped_column(JSON, default=list)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code


class NetworkDevice(TimestampMixin, Base):
    """A switch or router that collection logs into, as the inventory names it (credentials stay there)."""

    __tablename__ = "extranet_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(64))
    device_type: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    # The zone of the networks behind the device, when a VLAN does not say otherwise.
    zone: Mapped[Zone] = mapped_column(enum_column(Zone, 16), default=Zone.PUBLIC)
    last_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    # The last successful collection, per command: {"display arp brief": {"parsed": 209, "skipped": 1}, …}, and
    # the rows skipped, each with its raw line and why ([{"command", "line", "reason"}], the first few kept).
    parse_counts: Mapped[dict[str, dict[str, int]] | None] = mapped_column(JSON)
    skipped_rows: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code


class ArpObservation(Base):
    """An IP ↔ MAC pair a device's ARP table showed, first and last time seen."""

    __tablename__ = "extranet_arp"
    __table_args__ = (UniqueConstraint("device_id", "value", "mac", name="uq_extranet_arp_device_value_mac"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("extranet_devices.id", ondelete="CASCADE"), index=True)
    ip: Mapped[str] = mapped_column(String(15))
    value: Mapped[int] = mapped_column(BigInteger, index=True)
    mac: Mapped[str] = mapped_column(String(17), index=True)
    interface: Mapped[str | None] = mapped_column(String(64))
    vlan: Mapped[int | None]
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(index=True)


class MacObservation(Base):
    """A MAC a device's MAC table showed on a port and VLAN."""

    __tablename__ = "extranet_mac"
    __table_args__ = (UniqueConstraint("device_id", "mac", "vlan", "port", name="uq_extranet_mac_device_mac_port"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("extranet_devices.id", ondelete="CASCADE"), index=True)
    mac: Mapped[str] = mapped_column(String(17), index=True)
    vlan: Mapped[int] = mapped_column(default=0)
    port: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    # An access port faces terminals; an uplink or trunk carries many MACs by design.
    access_port: Mapped[bool] = mapped_column(default=True)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(index=True)


# The compliance rules, in the users' words: what each violation number means.
RULE_TITLES: dict[int, str] = {
    1: "地址不在本区规划网段内 (IP outside every allocated prefix of its zone)",
    2: "跨单位使用地址 (an IP allocated to one unit seen at another)",
    3: "未审批或未签安全承诺 (in use without an approved application or security commitment)",
    4: "IP 地址冲突 (one IP with several MACs)",
    5: "IP-MAC 绑定变更 (a registered IP↔MAC binding changed)",
    6: "私接设备 (too many MACs on one access port)",
    7: "私设 NAT (many IPs behind one MAC)",
    8: "跨区泄漏 (an address of one zone seen in another)",
    9: "地址规划冲突 (overlapping prefixes, or outside every aggregate, or without a unit)",
    10: "采集中断 (an active link but no successful collection)",
    11: "网段使用率异常 (a prefix nearly full, or unused)",
    12: "已批地址长期未用 (an approved address not seen for 90 days)",
}


class ViolationStatus(LabelledEnum):
    OPEN = "open", "待整改", "red"
    RECTIFYING = "rectifying", "整改中", "yellow"
    RESOLVED = "resolved", "已整改", "green"
    WAIVED = "waived", "已豁免", "bright_black"


class Violation(TimestampMixin, Base):
    """A compliance finding: one per rule and subject (an IP, a MAC, a port, a prefix, a unit)."""

    __tablename__ = "extranet_violations"
    __table_args__ = (UniqueConstraint("rule", "subject", name="uq_extranet_violations_rule_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[int] = mapped_column(index=True)
    subject: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    status: Mapped[ViolationStatus] = mapped_column(enum_column(ViolationStatus, 16), index=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    deadline: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(String(500))
    resolved_at: Mapped[datetime | None]

    unit: Mapped[Unit | None] = relationship(lazy="joined")

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None

    @property
    def title(self) -> str:
        return RULE_TITLES.get(self.rule, f"rule {self.rule}")
