"""Printing records for people (a Rich table) or for programs (JSON), the same way in every command."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from cloudctl.core.config import get_settings
from cloudctl.core.models import LabelledEnum

__all__ = ["Column", "OutputFormat", "console", "err_console", "print_json", "print_one", "print_rows"]

console = Console()
err_console = Console(stderr=True)


class OutputFormat(str, enum.Enum):
    TABLE = "table"
    JSON = "json"


Column = tuple[str, Callable[[Any], Any]]


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]–[/]"
    if isinstance(value, LabelledEnum):
        return value.rich
    if isinstance(value, datetime):
        return value.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool):
        return "[green]✓[/]" if value else "[red]✗[/]"
    return str(value)


def print_json(data: Any) -> None:
    """JSON for programs. ensure_ascii=False: unit names are Chinese and must stay readable."""
    print(json.dumps(data, ensure_ascii=False, indent=2))


def print_rows(
    rows: Sequence[BaseModel],
    columns: Sequence[Column],
    fmt: OutputFormat,
    *,
    title: str | None = None,
    total: int | None = None,
) -> None:
    """JSON prints every row as an array; the table shows the named columns."""
    if fmt is OutputFormat.JSON:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    table = Table(title=title, header_style="bold")
    for header, _ in columns:
        table.add_column(header)
    for row in rows:
        table.add_row(*(_cell(getter(row)) for _, getter in columns))
    console.print(table)
    shown = len(rows)
    if total is not None and total > shown:
        console.print(f"[dim]{shown} of {total} shown; use --limit/--offset for more[/]")


def print_one(record: BaseModel, fmt: OutputFormat, *, title: str | None = None,
              extra: dict[str, Any] | None = None, table_only: dict[str, Any] | None = None) -> None:
    """One record: a JSON object, or a two-column table of its fields.

    ``table_only`` replaces fields in the table by a text for people (a list as one line); JSON keeps them whole.
    """
    data = record.model_dump(mode="json")
    if fmt is OutputFormat.JSON:
        print_json({**data, **(extra or {})})
        return
    table = Table(title=title, show_header=False, box=None)
    table.add_column(style="bold cyan")
    table.add_column()
    for name in data:
        shown = table_only[name] if table_only and name in table_only else getattr(record, name, data[name])
        table.add_row(name, _cell(shown))
    for name, value in (extra or {}).items():
        table.add_row(name, _cell(value))
    console.print(table)
