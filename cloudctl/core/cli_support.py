"""What every CLI command shares: the acting principal, the unit of work, the --output option, and how a list
is printed (:func:`print_list`)."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import typer
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudctl.core import read
from cloudctl.core.auth import Principal, principal_of_user, system_principal
from cloudctl.core.config import get_settings
from cloudctl.core.db import get_engine, session_scope
from cloudctl.core.errors import CloudctlError, NotFound
from cloudctl.core.migrate import current_revision, head_revision
from cloudctl.core.output import Column, OutputFormat, print_json_rows, print_rows

__all__ = ["TABLE_PAGE", "OffsetOption", "OutputOption", "SchemaOutOfDate", "UnitFilter", "cli_state",
           "limit_option", "print_list", "rows_of", "unit_of_work"]

OutputOption = typer.Option(OutputFormat.TABLE, "--output", "-o", help="table (Rich) or json", case_sensitive=False)


# What --unit means in every command that filters by it (cloudctl.core.read): the unit and all below it.
UnitFilter = typer.Option(None, "--unit", help="a unit code: that unit and every unit under it")

# Rows of a table page when --limit is not given.
TABLE_PAGE = 50
OffsetOption = typer.Option(0, "--offset", min=0, help="rows to skip")
Lister = Callable[..., tuple[Sequence[Any], int]]
M = TypeVar("M", bound=BaseModel)


def limit_option() -> Any:
    """``--limit``: how many rows. A table shows a page of this many (default 50); ``--output json`` prints every
    matching row unless it is given. The read kit refuses more than the configured ``api_page_limit_max``."""
    return typer.Option(None, min=1, help=f"rows: a table page of this many (default {TABLE_PAGE}); with --output "
                                          "json only this many (default: every matching row)")


def rows_of(rows: Sequence[Any]) -> Lister:
    """A list already in memory (a scorecard, a report) as a lister, pages of it with its length."""
    return lambda *, limit, offset: (rows[offset:offset + limit], len(rows))


def print_list(lister: Lister, public: type[M] | Callable[[Sequence[Any]], Sequence[M]],
               columns: Sequence[Column], output: OutputFormat, *, limit: int | None, offset: int = 0,
               title: str | None = None) -> Sequence[M]:
    """A list command's output, the same in every command, inside its unit of work.

    ``lister(limit=, offset=)`` answers ``(rows, total)`` (a service's list function with its filters bound);
    ``public`` turns rows into what is shown (a schema, or a function over a page of rows). ``--output json``
    without ``--limit`` prints every matching row, read and written a page at a time; with it, that page. A
    table shows one page (``--limit``, default :data:`TABLE_PAGE`) and says "showing N of M".

    Answers the page it printed, for a command that shows more about those rows below the table (nothing when
    every row was streamed as JSON).
    """
    def shown(rows: Sequence[Any]) -> Sequence[M]:
        if isinstance(public, type) and issubclass(public, BaseModel):
            return [public.model_validate(row) for row in rows]
        return cast(Callable[[Sequence[Any]], Sequence[M]], public)(rows)

    if output is OutputFormat.JSON and limit is None:
        def pages(*, limit: int, offset: int) -> tuple[Sequence[M], int]:
            rows, total = lister(limit=limit, offset=offset + start)
            return shown(rows), total

        start = offset
        print_json_rows(read.every(pages))
        return []
    rows, total = lister(limit=limit or min(TABLE_PAGE, get_settings().api_page_limit_max), offset=offset)
    page = shown(rows)
    print_rows(page, columns, output, title=title, total=total, offset=offset)
    return page


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
        principal = principal_of_user(session, cli_state.act_as, via="cli")
        if principal is None:
            raise NotFound(f"no active user named {cli_state.act_as!r}", field="--as")
        return principal
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
