"""Printing records for people (a Rich table) or for programs (JSON), the same way in every command.

A table never hides a value: a cell too wide for its column folds onto the next line instead of being cut to "…",
and columns of short identifiers (unit codes, addresses) stay on one line when the terminal has the width. Times in
a table are in the display zone, named once under the table; JSON carries every time in UTC with its offset.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cloudctl.core.config import get_settings
from cloudctl.core.display import local_time, zone_label
from cloudctl.core.models import LabelledEnum
from cloudctl.core.text import escape_json_controls, visible

__all__ = ["Column", "OutputFormat", "console", "err_console", "print_json", "print_json_rows", "print_one",
           "print_rows", "write_text"]


class _Console(Console):
    """A Rich console that shows control characters in the text it is given (␛ for ESC) instead of passing them
    to the terminal: a name stored with an escape sequence cannot clear the operator's screen or recolour it.
    Every string a command prints, and every table cell, becomes text here; Rich's own styling comes after."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(visible(text), **kwargs)

    def print(self, *objects: Any, markup: bool | None = None, **kwargs: Any) -> None:
        """Strings print as typed unless the caller asks for markup: a message that names a server, a user or a
        unit (``f"server {name} is kept"``) shows ``[/]`` in a name as it is instead of failing in Rich's markup
        parser or restyling the line. Tables keep the console's default, their cells are escaped in :func:`_cell`."""
        if markup is None and all(isinstance(o, str) for o in objects):
            markup = False
        super().print(*objects, markup=markup, **kwargs)


console = _Console()
err_console = _Console(stderr=True)

# The longest identifier-like word (no spaces) a column keeps on one line: "990102001001", "2001:db8::10".
_IDENTIFIER_MAX = 16
_FOLDED_MIN = 4  # the least a column that folds is left


class OutputFormat(str, enum.Enum):
    TABLE = "table"
    JSON = "json"


Column = tuple[str, Callable[[Any], Any]]


def _cell(value: Any, *, zone: bool = False) -> str:
    """A table cell as Rich markup. Values are text, never markup: a system someone named ``[red]x[/]`` or ``[/]``
    shows as typed (and cannot break the table); a column that wants style gives a :class:`~rich.text.Text`."""
    if value is None:
        return "[dim]–[/]"
    if isinstance(value, LabelledEnum):
        return value.rich
    if isinstance(value, datetime):
        return local_time(value, zone=zone)
    if isinstance(value, bool):
        return "[green]✓[/]" if value else "[red]✗[/]"
    if isinstance(value, Text):
        return value.markup
    return escape(str(value))


def _title(title: str | None) -> Text | None:
    """A table's title as text: it often carries a name (``业务系统 {name}``), which is never markup."""
    return None if title is None else Text(title)


def _whole(cells: list[list[str]], headers: Sequence[str], width: int) -> list[bool]:
    """Which columns stay on one line: those of single words (codes, addresses, ids) no wider than
    :data:`_IDENTIFIER_MAX`, narrowest first, while the others keep room to fold into."""
    costs: list[int | None] = []
    for n, header in enumerate(headers):
        plain = [Text.from_markup(row[n]).plain for row in cells]
        single = all(len(text.split()) <= 1 for text in plain)
        cost = max([cell_len(text) for text in plain] + [cell_len(header)])
        costs.append(cost if single and cost <= _IDENTIFIER_MAX else None)
    budget = width - (3 * len(headers) + 1)  # a rule and two spaces of padding per column, and the last rule
    whole = [False] * len(headers)
    left = len(headers)
    for n in sorted((i for i in range(len(headers)) if costs[i] is not None), key=lambda i: costs[i] or 0):
        cost = costs[n] or 0
        if cost + _FOLDED_MIN * (left - 1) > budget:
            break
        whole[n], budget, left = True, budget - cost, left - 1
    return whole


def print_json(data: Any) -> None:
    """JSON for programs. ensure_ascii=False: unit names are Chinese and must stay readable; control characters
    are escaped (json escapes C0, we escape DEL, C1 and bidi controls)."""
    print(escape_json_controls(json.dumps(data, ensure_ascii=False, indent=2)))


def write_text(text: str) -> None:
    """Text a command writes as it is (a block list, CSV): line breaks kept, every other control character shown."""
    sys.stdout.write(visible(text, keep="\n\r\t"))


def print_json_rows(rows: Iterable[BaseModel]) -> None:
    """A JSON array written a row at a time, as :func:`print_json` writes a list (control characters escaped the
    same way): any number of rows in little memory."""
    out = sys.stdout
    first = True
    for row in rows:
        text = escape_json_controls(json.dumps(row.model_dump(mode="json"), ensure_ascii=False, indent=2))
        out.write(("[\n" if first else ",\n") + "\n".join("  " + line for line in text.splitlines()))
        first = False
    out.write("[]\n" if first else "\n]\n")
    out.flush()


def print_rows(
    rows: Sequence[BaseModel],
    columns: Sequence[Column],
    fmt: OutputFormat,
    *,
    title: str | None = None,
    total: int | None = None,
    offset: int = 0,
) -> None:
    """JSON prints every row given as an array; the table shows the named columns, and, given the ``total`` of
    which ``rows`` are one page, which rows of how many it shows."""
    if fmt is OutputFormat.JSON:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    values = [[getter(row) for _, getter in columns] for row in rows]
    cells = [[_cell(value) for value in row] for row in values]
    headers = [header for header, _ in columns]
    caption = None
    if any(isinstance(value, datetime) for row in values for value in row):
        caption = f"times 时间: {zone_label()} ({get_settings().display_timezone})"
    table = Table(title=_title(title), header_style="bold", caption=caption, caption_justify="left")
    for header, whole in zip(headers, _whole(cells, headers, console.width), strict=True):
        table.add_column(header, overflow="fold", no_wrap=whole)
    for row_cells in cells:
        table.add_row(*row_cells)
    console.print(table)
    if total is not None:
        shown = len(rows)
        where = f"rows {offset + 1}–{offset + shown}" if shown and offset else str(shown)
        more = "; --offset and --limit page on, --output json prints them all" if offset + shown < total else ""
        console.print(f"[dim]showing {where} of {total}{more}[/]", markup=True)


def print_one(record: BaseModel, fmt: OutputFormat, *, title: str | None = None,
              extra: dict[str, Any] | None = None, table_only: dict[str, Any] | None = None,
              table_omits: Sequence[str] = ()) -> None:
    """One record: a JSON object, or a two-column table of its fields (times with their zone).

    ``table_only`` replaces fields in the table by a text for people (a list as one line); ``table_omits`` leaves
    fields out of it (shown as a table of their own below); JSON keeps them whole.
    """
    data = record.model_dump(mode="json")
    if fmt is OutputFormat.JSON:
        print_json({**data, **(extra or {})})
        return
    table = Table(title=_title(title), show_header=False, box=None)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for name in data:
        if name in table_omits:
            continue
        shown = table_only[name] if table_only and name in table_only else getattr(record, name, data[name])
        table.add_row(name, _cell(shown, zone=True))
    for name, value in (extra or {}).items():
        table.add_row(name, _cell(value, zone=True))
    console.print(table)
