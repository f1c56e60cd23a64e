"""CLI of the organisation domain: ``cloudctl unit|system|user|token …`` (thin: parse, call, print)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.markup import escape

from cloudctl.core import tabular
from cloudctl.core.auth import Role
from cloudctl.core.cli_support import OffsetOption, OutputOption, UnitFilter, limit_option, print_list, unit_of_work
from cloudctl.core.display import local_time
from cloudctl.core.errors import InvalidInput
from cloudctl.core.output import OutputFormat, console, print_one, print_rows
from cloudctl.core.schemas import field_errors, parse
from cloudctl.core.tabular import Column
from cloudctl.org import service
from cloudctl.org.models import UnitKind
from cloudctl.org.schemas import (
    BusinessSystemCreate,
    BusinessSystemPublic,
    BusinessSystemUpdate,
    TokenCreated,
    TokenPublic,
    UnitCreate,
    UnitPublic,
    UnitUpdate,
    UserCreate,
    UserPublic,
)

__all__ = ["system_app", "token_app", "unit_app", "user_app"]

unit_app = typer.Typer(help="Units (单位): the city, departments, counties, towns, villages.", no_args_is_help=True)
system_app = typer.Typer(help="Business systems (业务系统) of the units, with their MLPS level (等保).",
                         no_args_is_help=True)
user_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (Authorization: Bearer …).", no_args_is_help=True)

UNIT_COLUMNS = [
    ("code", lambda u: u.code), ("name 名称", lambda u: u.name), ("kind 类型", lambda u: u.kind),
    ("parent", lambda u: u.parent), ("contact 联系人", lambda u: u.contact_name),
    ("phone", lambda u: u.contact_phone),
]
SYSTEM_COLUMNS = [
    ("id", lambda s: s.id), ("unit", lambda s: s.unit_code), ("name 系统名称", lambda s: s.name),
    ("等保", lambda s: f"{s.mlps_level}级"), ("contact 联系人", lambda s: s.contact_name),
]


def _given(**values: Any) -> dict[str, Any]:
    """Only the options the operator actually gave, so an update touches nothing else."""
    return {k: v for k, v in values.items() if v is not None}


# ---------------------------------------------------------------- units


@unit_app.command("list")
def unit_list(
    kind: UnitKind | None = typer.Option(None, case_sensitive=False, help="city, department, county, …"),
    parent: str | None = typer.Option(None, help="only the children of this unit code"),
    q: str | None = typer.Option(None, "--q", "-q", help="part of the name or code"),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """List units."""
    with unit_of_work() as (session, principal):
        print_list(partial(service.list_units, session, principal, kind=kind, parent=parent, q=q), UnitPublic,
                   UNIT_COLUMNS, output, limit=limit, offset=offset, title="单位 units")


@unit_app.command("show")
def unit_show(code: str = typer.Argument(..., help="unit code"), output: OutputFormat = OutputOption) -> None:
    """Show one unit."""
    with unit_of_work() as (session, principal):
        unit = UnitPublic.model_validate(service.get_unit(session, principal, code))
    print_one(unit, output, title=f"单位 {unit.name}")


@unit_app.command("create")
def unit_create(
    code: str = typer.Argument(..., help="unique code, e.g. 990100-D01"),
    name: str = typer.Option(..., help="Chinese name, e.g. 市公安局"),
    kind: UnitKind = typer.Option(..., case_sensitive=False),
    parent: str | None = typer.Option(None, help="parent unit code (none only for the city)"),
    contact_name: str | None = typer.Option(None),
    contact_phone: str | None = typer.Option(None),
    contact_email: str | None = typer.Option(None),
    output: OutputFormat = OutputOption,
) -> None:
    """Create a unit."""
    data = parse(UnitCreate, _given(code=code, name=name, kind=kind, parent=parent, contact_name=contact_name,
                                    contact_phone=contact_phone, contact_email=contact_email))
    with unit_of_work() as (session, principal):
        unit = UnitPublic.model_validate(service.create_unit(session, principal, data))
    print_one(unit, output, title="created 已创建")


@unit_app.command("update")
def unit_update(
    code: str = typer.Argument(..., help="unit code"),
    name: str | None = typer.Option(None),
    kind: UnitKind | None = typer.Option(None, case_sensitive=False),
    parent: str | None = typer.Option(None, help="move under this unit code"),
    contact_name: str | None = typer.Option(None),
    contact_phone: str | None = typer.Option(None),
    contact_email: str | None = typer.Option(None),
    output: OutputFormat = OutputOption,
) -> None:
    """Change a unit's name, kind, parent or contacts."""
    changes = _given(name=name, kind=kind, parent=parent, contact_name=contact_name,
                     contact_phone=contact_phone, contact_email=contact_email)
    if not changes:
        raise InvalidInput("nothing to change: give at least one option", field="options")
    data = parse(UnitUpdate, changes)
    with unit_of_work() as (session, principal):
        unit = UnitPublic.model_validate(service.update_unit(session, principal, code, data))
    print_one(unit, output, title="updated 已更新")


# The columns (or keys) of `unit import`, with the names a Chinese spreadsheet gives them.
UNIT_IMPORT_COLUMNS = (
    Column("code", ("编码", "单位编码", "代码"), required=True),
    Column("name", ("名称", "单位名称"), required=True),
    Column("kind", ("类型", "单位类型"), required=True),
    Column("parent", ("上级", "上级单位", "上级编码")),
    Column("contact_name", ("联系人",)),
    Column("contact_phone", ("电话", "联系电话")),
    Column("contact_email", ("邮箱", "电子邮箱")),
)
_KIND_BY_LABEL = {kind.label: kind.value for kind in UnitKind}


def read_unit_rows(path: Path, *, encoding: str | None = None) -> list[tuple[int, UnitCreate]]:
    """Read a CSV or .xlsx (header: code,name,kind,parent,contact_name,contact_phone,contact_email, or their
    Chinese names), YAML or JSON file. Every row is checked before anything is written; the error names the
    row and the field."""
    tabular.ensure_file(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        raw = tabular.load_document(tabular.decode(tabular.read_bytes(path), encoding=encoding)[0],
                                    "json" if suffix == ".json" else "yaml")
        if isinstance(raw, dict) and "units" in raw:
            raw = raw["units"]
        if not isinstance(raw, list):
            raise InvalidInput("expected a list of units (or a mapping with a 'units' list)", field="file")
        rows = tabular.rows_of_records(raw, UNIT_IMPORT_COLUMNS)
    elif suffix in (".csv", ".txt", ".xlsx", ".xlsm", ".xls"):
        rows = tabular.read_table(path, UNIT_IMPORT_COLUMNS, encoding=encoding).rows
    else:
        raise InvalidInput(f"unknown file type {suffix or '(none)'}; use .csv, .xlsx, .yaml or .json", field="file")
    units: list[tuple[int, UnitCreate]] = []
    for number, row in tabular.numbered(rows):
        values = dict(row)
        # 市直部门, 县/市/区 …: the kind as the bureau's own tables write it.
        values["kind"] = _KIND_BY_LABEL.get(values.get("kind", ""), values.get("kind", ""))
        try:
            units.append((number, UnitCreate.model_validate(values)))
        except ValidationError as exc:
            errors = field_errors(exc, prefix=("rows", number))
            raise InvalidInput(errors[0].reason, errors=errors) from None
    return units


@unit_app.command("import")
def unit_import(
    file: Path = typer.Argument(..., help="CSV, .xlsx, YAML or JSON file of units"),
    update: bool = typer.Option(False, "--update", help="update units that already exist instead of refusing"),
    encoding: str | None = typer.Option(None, help="the file's encoding (default: UTF-8, else GB18030 detected)"),
    output: OutputFormat = OutputOption,
) -> None:
    """Import units from a file: all rows land or none (parents may come after their children)."""
    with tabular.in_file(file):
        rows = read_unit_rows(file, encoding=encoding)
        with unit_of_work() as (session, principal):
            result = service.import_units(session, principal, [unit for _, unit in rows], update_existing=update,
                                          numbers=[number for number, _ in rows])
    counts = {"created": len(result.created), "updated": len(result.updated), "unchanged": len(result.unchanged)}
    if output is OutputFormat.JSON:
        print(json.dumps({**counts, "codes": {
            "created": result.created, "updated": result.updated, "unchanged": result.unchanged}},
            ensure_ascii=False, indent=2))
    else:
        console.print(", ".join(f"{v} {k}" for k, v in counts.items()))


# ---------------------------------------------------------------- business systems


@system_app.command("list")
def system_list(
    unit: str | None = UnitFilter,
    mlps_level: int | None = typer.Option(None, "--mlps-level", min=1, max=4, help="等保级别"),
    q: str | None = typer.Option(None, "--q", "-q", help="part of the name"),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """List business systems."""
    with unit_of_work() as (session, principal):
        print_list(partial(service.list_systems, session, principal, unit=unit, mlps_level=mlps_level, q=q),
                   BusinessSystemPublic, SYSTEM_COLUMNS, output, limit=limit, offset=offset,
                   title="业务系统 business systems")


@system_app.command("show")
def system_show(system_id: int = typer.Argument(..., help="system id"), output: OutputFormat = OutputOption) -> None:
    """Show one business system."""
    with unit_of_work() as (session, principal):
        system = BusinessSystemPublic.model_validate(service.get_system(session, principal, system_id))
    print_one(system, output, title=f"业务系统 {system.name}")


@system_app.command("create")
def system_create(
    unit: str = typer.Option(..., help="owning unit code"),
    name: str = typer.Option(..., help="system name, e.g. 社会保障卡管理系统"),
    mlps_level: int = typer.Option(..., "--mlps-level", help="等保级别 1–4"),
    user_facing: bool = typer.Option(False, "--user-facing", help="serves the public directly (面向公众)"),
    contact_name: str | None = typer.Option(None),
    contact_phone: str | None = typer.Option(None),
    contact_email: str | None = typer.Option(None),
    description: str | None = typer.Option(None),
    output: OutputFormat = OutputOption,
) -> None:
    """Register a business system of a unit."""
    data = parse(BusinessSystemCreate, _given(
        unit_code=unit, name=name, mlps_level=mlps_level, user_facing=user_facing, contact_name=contact_name,
        contact_phone=contact_phone, contact_email=contact_email, description=description))
    with unit_of_work() as (session, principal):
        system = BusinessSystemPublic.model_validate(service.create_system(session, principal, data))
    print_one(system, output, title="created 已创建")


@system_app.command("update")
def system_update(
    system_id: int = typer.Argument(..., help="system id"),
    name: str | None = typer.Option(None),
    mlps_level: int | None = typer.Option(None, "--mlps-level"),
    user_facing: bool | None = typer.Option(None, "--user-facing/--internal",
                                            help="serves the public directly, or only internal users"),
    contact_name: str | None = typer.Option(None),
    contact_phone: str | None = typer.Option(None),
    contact_email: str | None = typer.Option(None),
    description: str | None = typer.Option(None),
    output: OutputFormat = OutputOption,
) -> None:
    """Change a business system."""
    changes = _given(name=name, mlps_level=mlps_level, user_facing=user_facing,
                     contact_name=contact_name, contact_phone=contact_phone,
                     contact_email=contact_email, description=description)
    if not changes:
        raise InvalidInput("nothing to change: give at least one option", field="options")
    data = parse(BusinessSystemUpdate, changes)
    with unit_of_work() as (session, principal):
        system = BusinessSystemPublic.model_validate(service.update_system(session, principal, system_id, data))
    print_one(system, output, title="updated 已更新")


# ---------------------------------------------------------------- users and tokens


@user_app.command("create")
def user_create(
    username: str = typer.Argument(..., help="login name: lower-case letters, digits, . _ -"),
    role: Role = typer.Option(..., case_sensitive=False, help="admin, ops, secops, duty, auditor or dept"),
    unit: str | None = typer.Option(None, help="the unit a dept user is bound to"),
    display_name: str | None = typer.Option(None, help="the person's name, e.g. 张伟"),
    output: OutputFormat = OutputOption,
) -> None:
    """Create a user."""
    data = parse(UserCreate, _given(username=username, role=role, unit=unit, display_name=display_name))
    with unit_of_work() as (session, principal):
        user = UserPublic.model_validate(service.create_user(session, principal, data))
    print_one(user, output, title="created 已创建")


@user_app.command("list")
def user_list(
    role: Role | None = typer.Option(None, case_sensitive=False),
    unit: str | None = UnitFilter,
    output: OutputFormat = OutputOption,
) -> None:
    """List users."""
    with unit_of_work() as (session, principal):
        items = [UserPublic.model_validate(u) for u in service.list_users(session, principal, role=role, unit=unit)]
    print_rows(items, [
        ("username", lambda u: u.username), ("name", lambda u: u.display_name), ("role", lambda u: u.role),
        ("unit", lambda u: u.unit), ("active", lambda u: u.active),
    ], output, title="用户 users")


def _token_public(token: Any) -> dict[str, Any]:
    return {"id": token.id, "username": token.user.username, "prefix": token.prefix,
            "description": token.description, "created_at": token.created_at, "expires_at": token.expires_at,
            "revoked_at": token.revoked_at, "last_used_at": token.last_used_at}


@token_app.command("create")
def token_create(
    user: str = typer.Option(..., "--user", help="the user the token acts as"),
    ttl_days: int | None = typer.Option(None, "--ttl-days", help="days until it expires (default from settings)"),
    description: str | None = typer.Option(None, help="what the token is for"),
    output: OutputFormat = OutputOption,
) -> None:
    """Issue a token. It is shown once: only its hash is stored."""
    with unit_of_work() as (session, principal):
        token, secret = service.create_token(session, principal, user, ttl_days=ttl_days, description=description)
        created = TokenCreated.model_validate({**_token_public(token), "token": secret})
    if output is OutputFormat.JSON:
        print_one(created, output)
        return
    expires = local_time(created.expires_at)
    console.print(f"token for [bold]{escape(created.username)}[/] (id {created.id}, expires {expires}):", markup=True)
    console.print(secret, markup=False, highlight=False)
    console.print("[yellow]shown once: store it now; only its hash is kept[/]", markup=True)


@token_app.command("list")
def token_list(user: str | None = typer.Option(None, "--user"), output: OutputFormat = OutputOption) -> None:
    """List tokens (never their secrets)."""
    with unit_of_work() as (session, principal):
        items = [TokenPublic.model_validate(_token_public(t))
                 for t in service.list_tokens(session, principal, username=user)]
    print_rows(items, [
        ("id", lambda t: t.id), ("user", lambda t: t.username), ("prefix", lambda t: t.prefix),
        ("expires", lambda t: t.expires_at), ("revoked", lambda t: t.revoked_at),
        ("last used", lambda t: t.last_used_at), ("description", lambda t: t.description),
    ], output, title="API tokens")


@token_app.command("revoke")
def token_revoke(token: str = typer.Argument(..., help="token id or the prefix shown by `token list`")) -> None:
    """Revoke a token at once."""
    with unit_of_work() as (session, principal):
        revoked = service.revoke_token(session, principal, token)
        console.print(f"token {revoked.id} ({revoked.prefix}…) of {revoked.user.username} revoked")
