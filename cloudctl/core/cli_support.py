"""What every CLI command shares: the acting principal, the unit of work, and the --output option."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.auth import Principal, system_principal
from cloudctl.core.db import get_engine, session_scope
from cloudctl.core.errors import CloudctlError, NotFound
from cloudctl.core.migrate import current_revision, head_revision
from cloudctl.core.output import OutputFormat

__all__ = ["OutputOption", "SchemaOutOfDate", "UnitFilter", "cli_state", "limit_option", "unit_of_work"]

OutputOption = typer.Option(OutputFormat.TABLE, "--output", "-o", help="table (Rich) or json", case_sensitive=False)


# What --unit means in every command that filters by it (cloudctl.core.read): the unit and all below it.
UnitFilter = typer.Option(None, "--unit", help="a unit code: that unit and every unit under it")


def limit_option(default: int = 50) -> Any:
    """``--limit``: rows of one page; the read kit refuses more than the configured ``api_page_limit_max``."""
    return typer.Option(default, min=1, help="rows per page (at most the configured api_page_limit_max)")


class SchemaOutOfDate(CloudctlError):
    status = 503
    title = "Database schema out of date"
    slug = "schema-out-of-date"


class _CliState:
    """Set by the root callback: who the operator acts as (``--as``)."""

    act_as: str | None = None
    schema_checked: bool = False


cli_state = _CliState()


def _principal(session: Session) -> Principal:
    if cli_state.act_as:
        from cloudctl.org.models import User
        from cloudctl.org.service import principal_for_user

        user = session.scalar(select(User).where(User.username == cli_state.act_as))
        if user is None or not user.active:
            raise NotFound(f"no active user named {cli_state.act_as!r}", field="--as")
        return principal_for_user(user, via="cli")
    # Without --as the operator is the machine's administrator acting locally: audited under the OS name.
    return system_principal(getpass.getuser(), via="cli")


def _check_schema() -> None:
    if cli_state.schema_checked:
        return
    current, head = current_revision(get_engine()), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database is at schema {current or 'none'}, cloudctl needs {head}: run `cloudctl db upgrade`"
        )
    cli_state.schema_checked = True


@contextmanager
def unit_of_work() -> Iterator[tuple[Session, Principal]]:
    """One transaction for one command, as the acting principal."""
    _check_schema()
    with session_scope() as session:
        yield session, _principal(session)
