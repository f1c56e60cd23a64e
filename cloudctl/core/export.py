"""CSV for people to open in a spreadsheet, safe to open: one writer for every export.

A cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before one) is a formula
to Excel and WPS: a department that names its business system ``=HYPERLINK(…)`` or a unit imported as
``=cmd|' /C calc'!A0`` would run something on the desk of whoever opens the showback. Such a text cell is
written with a leading apostrophe, which the spreadsheet shows as text (OWASP, "CSV Injection"). Numbers
are written as numbers: a negative amount stays a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["FORMULA_TRIGGERS", "csv_text", "read_cell", "safe_cell"]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet should get it: text that would start a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def read_cell(text: str) -> str:
    """A cell as :func:`safe_cell` wrote it, read back: the apostrophe before a formula trigger taken off, so an
    export imported again (``extranet prefix export`` → ``prefix import``) round-trips."""
    if text.startswith("'") and text[1:].startswith(FORMULA_TRIGGERS):
        return text[1:]
    return text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The CSV text of a header and rows, every cell through :func:`safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(h) for h in header])
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue()
