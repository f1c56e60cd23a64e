"""CSV for people to open in a spreadsheet, safe to open: one writer for every export.

A cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before one) is a formula
to Excel and WPS: a department that names its business system ``=HYPERLINK(…)`` or a unit imported as
``=cmd|' /C calc'!A0`` would run something on the desk of whoever opens the showback. Such a text cell is
written with a leading apostrophe, which the spreadsheet shows as text (OWASP, "CSV Injection"). Numbers
are written as numbers: a negative amount stays a number. The same holds for ``.xlsx`` (:func:`xlsx_bytes`): a text
cell is stored as a string, never as a formula, and decimals are written as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import TYPE_STRING

__all__ = ["FORMULA_TRIGGERS", "XLSX_MEDIA_TYPE", "csv_text", "read_cell", "safe_cell", "xlsx_bytes"]

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

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


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str = "Sheet1") -> bytes:
    """An .xlsx workbook of one sheet: text cells as strings (openpyxl would store ``=…`` as a formula), each through
    :func:`safe_cell` as in CSV so a copy to CSV stays safe; Decimals as numbers."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    # A sheet title may hold neither []:*?/\ nor more than 31 characters.
    sheet.title = "".join(c for c in title if c not in "[]:*?/\\")[:31] or "Sheet1"
    for values in ([*header], *rows):
        row = []
        for value in values:
            value = safe_cell(value)
            row.append(float(value) if isinstance(value, Decimal) else value)
        sheet.append(row)
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = TYPE_STRING  # never a formula, whatever it starts with
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
