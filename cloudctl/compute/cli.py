"""CLI of the government cloud: ``cloudctl cloud …`` and ``cloudctl quota …`` (thin: parse, call, print)."""

from __future__ import annotations

import typer

from cloudctl.compute import service
from cloudctl.compute.models import CloudKind
from cloudctl.compute.schemas import CapacityRow, CloudCreate, CloudPublic, FlavorPublic, QuotaPublic, QuotaSet
from cloudctl.core.cli_support import OutputOption, unit_of_work
from cloudctl.core.output import OutputFormat, console, print_one, print_rows
from cloudctl.core.schemas import parse

__all__ = ["cloud_app", "quota_app"]

cloud_app = typer.Typer(help="Provider clouds of the one city cloud (一朵云): registry, flavors, capacity.",
                        no_args_is_help=True)
quota_app = typer.Typer(help="Quotas (配额) of each unit on each cloud.", no_args_is_help=True)


@cloud_app.command("list")
def cloud_list(output: OutputFormat = OutputOption) -> None:
    """List the clouds."""
    with unit_of_work() as (session, principal):
        items = [CloudPublic.model_validate(c) for c in service.list_clouds(session, principal)]
    print_rows(items, [
        ("name", lambda c: c.name), ("名称", lambda c: c.display_name), ("kind", lambda c: c.kind),
        ("region", lambda c: c.region), ("cpu ×", lambda c: c.cpu_allocation_ratio),
        ("ram ×", lambda c: c.ram_allocation_ratio), ("enabled", lambda c: c.enabled),
    ], output, title="云平台 clouds")


@cloud_app.command("show")
def cloud_show(name: str = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """Show one cloud."""
    with unit_of_work() as (session, principal):
        cloud = CloudPublic.model_validate(service.get_cloud(session, principal, name))
    print_one(cloud, output, title=f"云平台 {cloud.display_name}")


@cloud_app.command("create")
def cloud_create(
    name: str = typer.Argument(..., help="short name, e.g. city-cloud"),
    display_name: str = typer.Option(..., help="e.g. 市政务云中心"),
    kind: CloudKind = typer.Option(..., case_sensitive=False),
    connection: str | None = typer.Option(None, help="clouds.yaml cloud name or kubeconfig context"),
    region: str | None = typer.Option(None),
    cpu_allocation_ratio: float = typer.Option(4.0, help="CPU over-commit"),
    ram_allocation_ratio: float = typer.Option(1.0, help="RAM over-commit"),
    output: OutputFormat = OutputOption,
) -> None:
    """Register a provider cloud."""
    data = parse(CloudCreate, {"name": name, "display_name": display_name, "kind": kind, "connection": connection,
                               "region": region, "cpu_allocation_ratio": cpu_allocation_ratio,
                               "ram_allocation_ratio": ram_allocation_ratio})
    with unit_of_work() as (session, principal):
        cloud = CloudPublic.model_validate(service.create_cloud(session, principal, data))
    print_one(cloud, output, title="created 已创建")


@cloud_app.command("sync-flavors")
def cloud_sync_flavors(name: str = typer.Argument(...)) -> None:
    """Bring the flavor catalogue in line with the provider."""
    with unit_of_work() as (session, principal):
        added, changed, removed = service.sync_flavors(session, principal, name)
    console.print(f"{name}: {added} added, {changed} changed, {removed} removed")


@cloud_app.command("flavors")
def cloud_flavors(name: str = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """The flavors a unit may ask for on a cloud."""
    with unit_of_work() as (session, principal):
        items = [FlavorPublic.model_validate(f) for f in service.list_flavors(session, principal, name)]
    print_rows(items, [("flavor", lambda f: f.name), ("vCPU", lambda f: f.vcpus),
                       ("RAM GB", lambda f: f"{f.ram_mb / 1024:g}"), ("disk GB", lambda f: f.disk_gb)],
               output, title=f"规格 flavors of {name}")


@cloud_app.command("capacity")
def cloud_capacity(
    name: str | None = typer.Argument(None, help="one cloud; default: every enabled cloud"),
    output: OutputFormat = OutputOption,
) -> None:
    """Capacity (with over-commit), allocated to quotas, used, and headroom by resource."""
    with unit_of_work() as (session, principal):
        names = [name] if name else [c.name for c in service.list_clouds(session, principal, enabled=True)]
        rows: list[CapacityRow] = [row for n in names for row in service.capacity(session, principal, n)]

    def amount(row: CapacityRow, value: int) -> str:
        return f"{value / 1024:,.0f} GB" if row.resource == "ram_mb" else f"{value:,}"

    print_rows(rows, [
        ("cloud", lambda r: r.cloud), ("resource", lambda r: r.resource.replace("_mb", "")),
        ("capacity 容量", lambda r: amount(r, r.capacity)), ("allocated 已分配", lambda r: amount(r, r.allocated)),
        ("used 已使用", lambda r: amount(r, r.used)), ("headroom 余量", lambda r: amount(r, r.headroom)),
        ("alloc %", lambda r: f"{r.allocated_ratio:.0%}" if r.allocated_ratio is not None else None),
        ("used %", lambda r: f"{r.used_ratio:.0%}" if r.used_ratio is not None else None),
    ], output, title="容量 capacity")


QUOTA_COLUMNS = [
    ("unit", lambda q: q.unit_code), ("cloud", lambda q: q.cloud),
    ("vCPU used/reserved/limit", lambda q: f"{q.used_vcpus}/{q.reserved_vcpus}/{_limit(q.limit_vcpus)}"),
    ("RAM GB", lambda q: f"{q.used_ram_mb // 1024}/{q.reserved_ram_mb // 1024}/"
                         f"{_limit(q.limit_ram_mb and q.limit_ram_mb // 1024)}"),
    ("instances", lambda q: f"{q.used_instances}/{q.reserved_instances}/{_limit(q.limit_instances)}"),
    ("synced", lambda q: q.synced_at),
]


def _limit(value: int | None) -> str:
    return "∞" if value is None else str(value)


@quota_app.command("show")
def quota_show(
    unit: str | None = typer.Option(None, help="one unit's quotas"),
    cloud: str | None = typer.Option(None, help="one cloud's quotas"),
    limit: int = typer.Option(50, min=1, max=1000),
    offset: int = typer.Option(0, min=0),
    output: OutputFormat = OutputOption,
) -> None:
    """Quotas: used / reserved / limit."""
    with unit_of_work() as (session, principal):
        rows, total = service.list_quotas(session, principal, unit=unit, cloud=cloud, limit=limit, offset=offset)
        items = [QuotaPublic.model_validate(q) for q in rows]
    print_rows(items, QUOTA_COLUMNS, output, title="配额 quotas", total=total)


@quota_app.command("set")
def quota_set(
    unit: str = typer.Argument(..., help="unit code"),
    cloud: str = typer.Argument(..., help="cloud name"),
    vcpus: int | None = typer.Option(None, "--vcpus"),
    ram_gb: int | None = typer.Option(None, "--ram-gb"),
    disk_gb: int | None = typer.Option(None, "--disk-gb"),
    instances: int | None = typer.Option(None, "--instances"),
    output: OutputFormat = OutputOption,
) -> None:
    """Set a unit's limits on a cloud and push them to the provider."""
    given = {k: v for k, v in {"vcpus": vcpus, "ram_gb": ram_gb, "disk_gb": disk_gb, "instances": instances}.items()
             if v is not None}
    data = parse(QuotaSet, given)
    with unit_of_work() as (session, principal):
        quota = QuotaPublic.model_validate(service.set_quota(session, principal, unit, cloud, data))
    print_one(quota, output, title="配额 quota")


@quota_app.command("sync")
def quota_sync(
    unit: str = typer.Argument(..., help="unit code"),
    cloud: str = typer.Argument(..., help="cloud name"),
    output: OutputFormat = OutputOption,
) -> None:
    """Read a unit's limits and usage back from the provider."""
    with unit_of_work() as (session, principal):
        quota = QuotaPublic.model_validate(service.sync_quota(session, principal, unit, cloud))
    print_one(quota, output, title="配额 quota")
