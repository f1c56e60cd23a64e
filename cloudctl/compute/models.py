"""Tables of the government-cloud domain: clouds, their flavors, and each unit's project and quota."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudctl.core.models import Base, LabelledEnum, TimestampMixin, enum_column
from cloudctl.org.models import Unit

__all__ = ["Cloud", "CloudKind", "Flavor", "Quota", "UnitProject"]


class CloudKind(LabelledEnum):
    OPENSTACK = "openstack", "OpenStack云", "cyan"
    KUBERNETES = "kubernetes", "容器云", "blue"
    SIMULATOR = "simulator", "模拟云", "magenta"


class Cloud(TimestampMixin, Base):
    """One provider cloud of the city's "one cloud" (一朵云): the city's own centre or a carrier's."""

    __tablename__ = "clouds"
    __table_args__ = (
        CheckConstraint("cpu_allocation_ratio > 0 AND ram_allocation_ratio > 0", name="positive_ratios"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[CloudKind] = mapped_column(enum_column(CloudKind, 16))
    # An OpenStack cloud name in clouds.yaml, or a kubeconfig context; nothing for the simulator.
    connection: Mapped[str | None] = mapped_column(String(255))
    region: Mapped[str | None] = mapped_column(String(64))
    # Over-commit the bureau allows on this cloud; capacity views multiply by these as Placement does.
    cpu_allocation_ratio: Mapped[float] = mapped_column(default=4.0)
    ram_allocation_ratio: Mapped[float] = mapped_column(default=1.0)
    default_image: Mapped[str | None] = mapped_column(String(128))
    default_network: Mapped[str | None] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(default=True)


class Flavor(Base):
    """The flavor catalogue of a cloud, as last synced from the provider."""

    __tablename__ = "flavors"
    __table_args__ = (UniqueConstraint("cloud_id", "name", name="uq_flavors_cloud_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gb: Mapped[int]
    provider_id: Mapped[str] = mapped_column(String(64), default="")

    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)


class UnitProject(Base):
    """A unit's tenant on a cloud: its OpenStack project or Kubernetes namespace."""

    __tablename__ = "unit_projects"
    __table_args__ = (UniqueConstraint("unit_id", "cloud_id", name="uq_unit_projects_unit_id_cloud_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(String(128))


class Quota(TimestampMixin, Base):
    """A unit's quota (配额) on one cloud: limits, usage synced from the provider, and reservations.

    Reservations are held by approved requests not yet provisioned, so two approvals can
    never both take the last vCPUs: a reservation is one conditional UPDATE that only
    succeeds while ``used + reserved + asked <= limit``.
    """

    __tablename__ = "quotas"
    __table_args__ = (
        UniqueConstraint("unit_id", "cloud_id", name="uq_quotas_unit_id_cloud_id"),
        CheckConstraint("reserved_vcpus >= 0 AND reserved_ram_mb >= 0 AND reserved_disk_gb >= 0 "
                        "AND reserved_instances >= 0", name="reservations_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    limit_vcpus: Mapped[int | None]
    limit_ram_mb: Mapped[int | None]
    limit_disk_gb: Mapped[int | None]
    limit_instances: Mapped[int | None]
    used_vcpus: Mapped[int] = mapped_column(default=0)
    used_ram_mb: Mapped[int] = mapped_column(default=0)
    used_disk_gb: Mapped[int] = mapped_column(default=0)
    used_instances: Mapped[int] = mapped_column(default=0)
    reserved_vcpus: Mapped[int] = mapped_column(default=0)
    reserved_ram_mb: Mapped[int] = mapped_column(default=0)
    reserved_disk_gb: Mapped[int] = mapped_column(default=0)
    reserved_instances: Mapped[int] = mapped_column(default=0)
    synced_at: Mapped[datetime | None]

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)
    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code

    @property
    def cloud_name(self) -> str:
        return self.cloud.name
