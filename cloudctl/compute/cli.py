"""CLI of the government cloud: ``cloudctl cloud …`` and ``cloudctl quota …`` (thin: parse, call, print)."""

from __future__ import annotations

from functools import partial
from typing import cast, get_args

import typer
from rich.text import Text

from cloudctl.compute import provisioning, service, volumes
from cloudctl.compute.models import AddressKind, CloudKind, RequestStatus
from cloudctl.compute.providers.base import ServerAction
from cloudctl.compute.schemas import (
    CapacityRow,
    CloudCreate,
    CloudPublic,
    FlavorPublic,
    QuotaPublic,
    QuotaSet,
    RequestItemPublic,
    RequestPublic,
    ServerPublic,
    VolumePublic,
    VolumeQuotaPublic,
    VolumeQuotaSet,
)
from cloudctl.core.cli_support import OffsetOption, OutputOption, UnitFilter, limit_option, print_list, unit_of_work
from cloudctl.core.display import local_time
from cloudctl.core.errors import InvalidInput
from cloudctl.core.output import OutputFormat, console, print_one, print_rows
from cloudctl.core.schemas import parse

__all__ = ["cloud_app", "quota_app", "report_app", "request_app", "server_app", "volume_app"]

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
                       ("RAM GiB", lambda f: f"{f.ram_gib:g}"), ("disk GiB", lambda f: f.disk_gib)],
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

    def amount(row: CapacityRow, value: float) -> str:
        return f"{value:,.0f} {row.unit}"

    print_rows(rows, [
        ("cloud", lambda r: r.cloud), ("resource", lambda r: r.resource),
        ("capacity 容量", lambda r: amount(r, r.capacity)), ("allocated 已分配", lambda r: amount(r, r.allocated)),
        ("used 已使用", lambda r: amount(r, r.used)), ("headroom 余量", lambda r: amount(r, r.headroom)),
        ("alloc %", lambda r: f"{r.allocated_ratio:.0%}" if r.allocated_ratio is not None else None),
        ("used %", lambda r: f"{r.used_ratio:.0%}" if r.used_ratio is not None else None),
    ], output, title="容量 capacity")


QUOTA_COLUMNS = [
    ("unit", lambda q: q.unit_code), ("cloud", lambda q: q.cloud),
    ("vCPU used/reserved/limit", lambda q: f"{q.used_vcpus}/{q.reserved_vcpus}/{_limit(q.limit_vcpus)}"),
    ("RAM GiB used/reserved/limit", lambda q: f"{q.used_ram_gib:g}/{q.reserved_ram_gib:g}/"
                                              f"{_limit(q.limit_ram_gib)}"),
    ("disk GiB", lambda q: f"{q.used_disk_gib}/{q.reserved_disk_gib}/{_limit(q.limit_disk_gib)}"),
    ("instances", lambda q: f"{q.used_instances}/{q.reserved_instances}/{_limit(q.limit_instances)}"),
    ("synced", lambda q: q.synced_at),
]


def _limit(value: float | None) -> str:
    return "∞" if value is None else f"{value:g}"


@quota_app.command("show")
def quota_show(
    unit: str | None = UnitFilter,
    cloud: str | None = typer.Option(None, help="one cloud's quotas"),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Quotas: used / reserved / limit."""
    with unit_of_work() as (session, principal):
        print_list(partial(service.list_quotas, session, principal, unit=unit, cloud=cloud), QuotaPublic,
                   QUOTA_COLUMNS, output, limit=limit, offset=offset, title="配额 quotas")


@quota_app.command("set")
def quota_set(
    unit: str = typer.Argument(..., help="unit code"),
    cloud: str = typer.Argument(..., help="cloud name"),
    vcpus: int | None = typer.Option(None, "--vcpus"),
    ram_gib: int | None = typer.Option(None, "--ram-gib", help="memory, GiB"),
    disk_gib: int | None = typer.Option(None, "--disk-gib", help="disk, GiB"),
    instances: int | None = typer.Option(None, "--instances"),
    output: OutputFormat = OutputOption,
) -> None:
    """Set a unit's limits on a cloud and push them to the provider (memory and disk in GiB)."""
    given = {k: v for k, v in {"vcpus": vcpus, "ram_gib": ram_gib, "disk_gib": disk_gib,
                               "instances": instances}.items() if v is not None}
    data = parse(QuotaSet, given)
    with unit_of_work() as (session, principal):
        quota = QuotaPublic.model_validate(service.set_quota(session, principal, unit, cloud, data))
    print_one(quota, output, title="配额 quota")


@quota_app.command("sync")
def quota_sync(
    unit: str | None = typer.Argument(None, help="unit code (and the units under it); default: every quota"),
    cloud: str | None = typer.Argument(None, help="cloud name; default: every cloud"),
    output: OutputFormat = OutputOption,
) -> None:
    """Read limits and usage back from the providers (someone may have changed them there)."""
    with unit_of_work() as (session, principal):
        if unit is not None and cloud is not None:
            one = QuotaPublic.model_validate(service.sync_quota(session, principal, unit, cloud))
        else:
            items = [QuotaPublic.model_validate(q)
                     for q in service.sync_quotas(session, principal, unit=unit, cloud=cloud)]
    if unit is not None and cloud is not None:
        print_one(one, output, title="配额 quota")
    else:
        print_rows(items, QUOTA_COLUMNS, output, title="配额 quotas synced")


request_app = typer.Typer(help="Resource requests (资源申请): review, approve, reject.", no_args_is_help=True)
server_app = typer.Typer(help="Servers (云主机) on every cloud: inventory and sync.", no_args_is_help=True)

REQUEST_COLUMNS = [
    ("id", lambda r: r.id), ("unit", lambda r: r.unit_code), ("cloud", lambda r: r.cloud),
    ("status", lambda r: r.status), ("items", lambda r: ", ".join(_item_text(i) for i in r.items)),
    ("vCPU", lambda r: sum(i.vcpus * i.count for i in r.items)), ("by", lambda r: r.submitted_by),
    ("submitted", lambda r: r.created_at), ("auto", lambda r: r.auto_approved),
]


def _item_text(item: RequestItemPublic) -> str:
    if item.kind == "quota":
        return f"配额 +{item.vcpus} vCPU +{item.ram_gib:g} GiB +{item.instances} 台"
    return f"{item.count}×{item.flavor}"


@request_app.command("list")
def request_list(
    unit: str | None = UnitFilter,
    status: RequestStatus | None = typer.Option(None, case_sensitive=False),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Requests, newest first."""
    with unit_of_work() as (session, principal):
        print_list(partial(provisioning.list_requests, session, principal, unit=unit, status=status), RequestPublic,
                   REQUEST_COLUMNS, output, limit=limit, offset=offset, title="资源申请 requests")


@request_app.command("show")
def request_show(request_id: int = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """One request with its items."""
    with unit_of_work() as (session, principal):
        request = RequestPublic.model_validate(provisioning.get_request(session, principal, request_id))
    if output is OutputFormat.JSON:
        print_one(request, output)
        return
    print_one(request, output, title=f"资源申请 request {request.id}", table_omits=("items", "approvals"))
    print_rows(request.items, [
        ("item", lambda i: i.id), ("flavor", lambda i: i.flavor), ("count", lambda i: i.count),
        ("status", lambda i: i.status), ("built", lambda i: i.provisioned), ("error", lambda i: i.error),
    ], output)
    if request.approvals:
        print_rows(request.approvals, [
            ("step", lambda a: a.step), ("decision", lambda a: a.decision), ("by", lambda a: a.by),
            ("role", lambda a: a.role), ("at", lambda a: a.at), ("note", lambda a: a.note),
        ], output, title="审批 approvals")


@request_app.command("approve")
def request_approve(
    request_id: int = typer.Argument(...),
    reason: str | None = typer.Option(None, help="a note for the department"),
) -> None:
    """Approve: reserve the quota and start provisioning (refused whole if it does not fit)."""
    with unit_of_work() as (session, principal):
        request = provisioning.approve_request(session, principal, request_id, reason)
        if request.status is RequestStatus.SUBMITTED:  # the department leader's step: ops' comes next
            console.print(f"request {request.id} approved by its department leader (部门负责人); it waits for ops")
        elif request.job_id is None:  # a quota increase: the limits are raised at once, nothing to provision
            console.print(f"request {request.id} approved; {request.unit_code}'s quota on {request.cloud_name} raised")
        else:
            console.print(f"request {request.id} approved; provisioning job {request.job_id} "
                          f"(cloudctl job watch {request.job_id})")


@request_app.command("reject")
def request_reject(
    request_id: int = typer.Argument(...),
    reason: str = typer.Option(..., help="why; the department reads it"),
) -> None:
    """Reject with a reason."""
    with unit_of_work() as (session, principal):
        request = provisioning.reject_request(session, principal, request_id, reason)
        console.print(f"request {request.id} rejected")


SERVER_COLUMNS = [
    ("id", lambda s: s.id), ("name", lambda s: s.name),
    ("unit", lambda s: s.unit_code or Text("orphan 无主", style="red")),
    ("system 业务系统", lambda s: s.business_system), ("cloud", lambda s: s.cloud), ("flavor", lambda s: s.flavor),
    ("status", lambda s: s.status), ("host", lambda s: s.host),
    ("addresses 地址", lambda s: _addresses(s) or None),
]


def _addresses(server: ServerPublic) -> str:
    return ", ".join(a.ip + (" (浮动)" if a.kind is AddressKind.FLOATING else "") for a in server.addresses)


@server_app.command("list")
def server_list(
    unit: str | None = UnitFilter,
    cloud: str | None = typer.Option(None),
    status: str | None = typer.Option(None, help="Nova's words: ACTIVE, SHUTOFF, ERROR …"),
    orphans: bool = typer.Option(False, "--orphans", help="only servers whose project maps to no unit"),
    ip: str | None = typer.Option(None, "--ip", help="the server holding this address (fixed or floating)"),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Servers in the inventory."""
    with unit_of_work() as (session, principal):
        print_list(partial(provisioning.list_servers, session, principal, unit=unit, cloud=cloud, status=status,
                           orphans=orphans, ip=ip), ServerPublic, SERVER_COLUMNS, output, limit=limit, offset=offset,
                   title="云主机 servers")


@server_app.command("show")
def server_show(server_id: int = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """One server."""
    with unit_of_work() as (session, principal):
        server = ServerPublic.model_validate(provisioning.get_server(session, principal, server_id))
    print_one(server, output, title=f"云主机 {server.name}", table_only={"addresses": _addresses(server) or None})


@server_app.command("sync")
def server_sync(cloud: str | None = typer.Argument(None, help="one cloud; default: every enabled cloud")) -> None:
    """Read every server from the providers into the inventory; flag orphans."""
    with unit_of_work() as (session, principal):
        names = [cloud] if cloud else [c.name for c in service.list_clouds(session, principal, enabled=True)]
        for name in names:
            counts = provisioning.sync_servers(session, principal, name)
            console.print(f"{name}: {counts['servers']} servers, {counts['orphans']} orphans, "
                          f"{counts['gone']} gone")


report_app = typer.Typer(help="Reports for the bureau and the departments.", no_args_is_help=True)



@server_app.command("decommission")
def server_decommission(
    server_id: int = typer.Argument(...),
    grace_days: int = typer.Option(7, "--grace-days", help="days before it is deleted"),
    withdraw: bool = typer.Option(False, "--withdraw", help="keep the server after all"),
) -> None:
    """Stop a server now and delete it after a grace period (下线), or withdraw that."""
    with unit_of_work() as (session, principal):
        if withdraw:
            server = provisioning.withdraw_decommission(session, principal, server_id)
            console.print(f"server {server.name} is kept")
            return
        server = provisioning.decommission_server(session, principal, server_id, grace_days=grace_days)
        due = server.decommission_at
        console.print(f"server {server.name} {server.status}; deleted after {local_time(due) if due else '–'}")


@server_app.command("delete-due")
def server_delete_due() -> None:
    """Delete the servers whose grace period is over and give their resources back to the quotas."""
    with unit_of_work() as (session, principal):
        deleted = provisioning.delete_due_servers(session, principal)
        console.print(f"{len(deleted)} server(s) deleted" + "".join(f"\n  {s.name}" for s in deleted))


@server_app.command("resize")
def server_resize(
    server_id: int = typer.Argument(...),
    flavor: str = typer.Argument(..., help="a flavor of the server's cloud (cloudctl cloud flavors CLOUD)"),
    no_confirm: bool = typer.Option(False, "--no-confirm",
                                    help="leave it in VERIFY_RESIZE, to confirm later with `server action`"),
    output: OutputFormat = OutputOption,
) -> None:
    """Resize a server to another flavor; growth must fit the unit's quota."""
    with unit_of_work() as (session, principal):
        server = ServerPublic.model_validate(
            provisioning.resize_server(session, principal, server_id, flavor, confirm=not no_confirm))
    print_one(server, output, title=f"云主机 {server.name}")


@server_app.command("action")
def server_action(
    server_id: int = typer.Argument(...),
    action: str = typer.Argument(..., help="stop, start, shelve, shelve_offload, unshelve, confirm_resize"),
) -> None:
    """Operate a server; its new state is what the cloud reports."""
    if action not in get_args(ServerAction):
        raise InvalidInput(f"unknown action {action!r}; one of {', '.join(get_args(ServerAction))}", field="action")
    with unit_of_work() as (session, principal):
        server = provisioning.operate_server(session, principal, server_id, cast(ServerAction, action))
        console.print(f"server {server.name}: {server.status}")


volume_app = typer.Typer(help="Block volumes (云硬盘) on every cloud with block storage: inventory and sync.",
                         no_args_is_help=True)


@volume_app.command("list")
def volume_list(
    unit: str | None = UnitFilter,
    cloud: str | None = typer.Option(None, help="one cloud"),
    status: str | None = typer.Option(None, help="available, in-use …"),
    unattached_days: int | None = typer.Option(None, "--unattached-days", min=0, max=3650,
                                               help="only volumes unattached at least this many days"),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Volumes the caller sees, with their size, type and what they are attached to."""
    with unit_of_work() as (session, principal):
        print_list(lambda *, limit, offset: volumes.list_volumes(session, principal, unit=unit, cloud=cloud,
                                                                 status=status, unattached_days=unattached_days,
                                                                 limit=limit, offset=offset),
                   VolumePublic, [("id", lambda v: v.id), ("name", lambda v: v.name), ("cloud", lambda v: v.cloud),
                                  ("unit", lambda v: v.unit_code or "（孤立 orphan）"),
                                  ("type", lambda v: v.volume_type),
                                  ("GiB", lambda v: v.size_gib), ("status", lambda v: v.status),
                                  ("server", lambda v: v.server or ""),
                                  ("unattached since", lambda v: local_time(v.detached_since)
                                   if v.detached_since else "")],
                   output, limit=limit, offset=offset, title="云硬盘 volumes")


@volume_app.command("show")
def volume_show(volume_id: int = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """One volume."""
    with unit_of_work() as (session, principal):
        volume = VolumePublic.model_validate(volumes.get_volume(session, principal, volume_id))
    print_one(volume, output, title=f"云硬盘 {volume.name}")


@volume_app.command("sync")
def volume_sync(cloud: str | None = typer.Argument(None, help="one cloud; default: every enabled cloud with "
                                                               "block storage")) -> None:
    """Read every volume from the clouds into the inventory; flag orphans and unattached volumes."""
    with unit_of_work() as (session, principal):
        names = [cloud] if cloud else [c.name for c in service.list_clouds(session, principal, enabled=True)]
        for name in names:
            try:
                counts = volumes.sync_volumes(session, principal, name)
            except InvalidInput:
                if cloud:
                    raise
                continue
            console.print(f"{name}: {counts['volumes']} volumes, {counts['unattached']} unattached, "
                          f"{counts['orphans']} orphans, {counts['gone']} gone, {counts['snapshots']} snapshots")


volume_quota_app = typer.Typer(help="Block storage quotas in GiB per volume type, per unit and cloud.",
                               no_args_is_help=True)
volume_app.add_typer(volume_quota_app, name="quota")

VOLUME_QUOTA_COLUMNS = [
    ("unit", lambda q: q.unit_code), ("cloud", lambda q: q.cloud), ("type", lambda q: q.volume_type),
    ("used GiB", lambda q: q.used_gib), ("reserved GiB", lambda q: q.reserved_gib),
    ("limit GiB", lambda q: "不限 unlimited" if q.limit_gib is None else q.limit_gib),
    ("synced", lambda q: local_time(q.synced_at) if q.synced_at else ""),
]


@volume_quota_app.command("list")
def volume_quota_list(
    unit: str | None = UnitFilter,
    cloud: str | None = typer.Option(None, help="one cloud"),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Quotas per volume type: used, reserved by approved requests, and the limit, in GiB."""
    with unit_of_work() as (session, principal):
        print_list(partial(volumes.list_volume_quotas, session, principal, unit=unit, cloud=cloud), VolumeQuotaPublic,
                   VOLUME_QUOTA_COLUMNS, output, limit=limit, offset=offset, title="云硬盘配额 volume quotas")


@volume_quota_app.command("set")
def volume_quota_set(
    unit: str = typer.Argument(..., help="unit code"),
    cloud: str = typer.Argument(..., help="cloud name"),
    volume_type: str = typer.Argument(..., help="volume type (ssd, hdd …)"),
    limit_gib: int | None = typer.Option(None, "--limit-gib", help="GiB; omit with --unlimited"),
    unlimited: bool = typer.Option(False, "--unlimited", help="lift the limit"),
    output: OutputFormat = OutputOption,
) -> None:
    """Set a unit's GiB limit for one volume type and push it to the cloud."""
    if (limit_gib is None) != unlimited:
        raise InvalidInput("give --limit-gib or --unlimited", field="limit_gib")
    data = parse(VolumeQuotaSet, {"limit_gib": limit_gib})
    with unit_of_work() as (session, principal):
        quota = VolumeQuotaPublic.model_validate(
            volumes.set_volume_quota(session, principal, unit, cloud, volume_type, data.limit_gib))
    print_one(quota, output, title="云硬盘配额 volume quota")


@volume_quota_app.command("sync")
def volume_quota_sync(cloud: str = typer.Argument(..., help="cloud name"),
                      output: OutputFormat = OutputOption) -> None:
    """Read every unit's per-type limits and use back from the cloud."""
    with unit_of_work() as (session, principal):
        rows = [VolumeQuotaPublic.model_validate(q) for q in volumes.sync_volume_quotas(session, principal, cloud)]
    print_rows(rows, VOLUME_QUOTA_COLUMNS, output, title="云硬盘配额 volume quotas synced")
