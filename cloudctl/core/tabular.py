"""Tabular files as bureaus hand them over: one reading layer for every import that takes rows.

A bureau's table comes out of Excel: a ``.xlsx`` workbook, or a CSV that Chinese Excel writes in GB18030 (GBK)
unless told otherwise, with or without a UTF-8 byte-order mark, headers in Chinese or English, blank rows at the
end. Everything here turns such a file into rows of stripped strings keyed by the import's own column names, or
refuses it with one :class:`InvalidInput` that names the file, the row (as a spreadsheet numbers it: the header
is row 1) and the column:

- the encoding is UTF-8 (BOM or not), else detected by charset-normalizer among the encodings Chinese offices
  write (GB18030, which contains GBK and GB2312); ``encoding=`` states it instead;
- header names match case-insensitively, with the Chinese names of :class:`Column.aliases`; a missing required
  column, an unknown column and a column given twice (under two of its names, say) are refused by name;
- a row with more cells than the header, or fewer, is refused with its number (trailing empty cells are not
  cells: Excel writes them for a formatted column);
- a cell holding a control character (NUL, ESC, a bidi override) is refused; so is a cell over ``max_field``
  characters, a file over ``max_bytes`` and a table over ``max_rows`` rows.

YAML and JSON lists of mappings go through the same column check (:func:`rows_of_records`), so every import
speaks one language whatever the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import yaml
from charset_normalizer import from_bytes

from cloudctl.core.errors import CloudctlError, InvalidInput
from cloudctl.core.export import read_cell
from cloudctl.core.text import control_character

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_FIELD",
    "MAX_ROWS",
    "Column",
    "Row",
    "Table",
    "decode",
    "ensure_file",
    "in_file",
    "load_document",
    "numbered",
    "read_bytes",
    "read_table",
    "rows_of_records",
]

# A city's unit tree is ~2,000 rows and a month of utilisation of 510 servers ~60,000; these are far past both
# and still small enough to hold in memory while every row is checked before anything is written.
MAX_BYTES = 64 * 1024 * 1024
MAX_ROWS = 500_000
# The longest column any import stores is a 4,000-character text; a longer cell is a broken or hostile file.
MAX_FIELD = 32 * 1024
# Lists of mappings of scalars are two levels deep; a few more leave room for a wrapping {"units": [...]}.
MAX_DEPTH = 8
# JSON integers longer than this are no count, id or port of ours (a 64-bit number has 20 digits).
_MAX_DIGITS = 24
# Encodings charset-normalizer may choose from when a file is not UTF-8: what Chinese Windows and Excel write.
# Left unrestricted it calls short GBK text cp949 (Korean), which decodes to the wrong characters.
_DETECTABLE = ("gb18030",)
# The uncompressed size an .xlsx may unpack to: a workbook is XML, about ten times its zipped size.
_MAX_UNZIPPED = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Column:
    """A column an import reads: its name in the schema, and the other names a header may give it."""

    name: str
    aliases: tuple[str, ...] = ()
    required: bool = False

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


class Row(dict[str, str]):
    """One data row: column name → stripped, non-empty text; ``number`` is the row as the file numbers it."""

    number: int

    def __init__(self, values: Mapping[str, str], number: int) -> None:
        super().__init__(values)
        self.number = number


@dataclass(frozen=True, slots=True)
class Table:
    """The rows of one file, and what was found about it (the encoding, for a text file)."""

    file: str
    rows: list[Row] = field(default_factory=list)
    encoding: str | None = None


def numbered(rows: Sequence[Mapping[str, Any]]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(row number, row): the file's own number for a :class:`Row`, else the position counted from 1."""
    for position, row in enumerate(rows, 1):
        yield (row.number if isinstance(row, Row) else position), row


@contextmanager
def in_file(path: Path | str) -> Iterator[None]:
    """Name the file in every cloudctl error raised inside: ``units.csv: rows.3.name: …``."""
    try:
        yield
    except CloudctlError as exc:
        exc.source = exc.source or Path(path).name
        raise


# -- bytes and text ----------------------------------------------------------------------------------------------


def ensure_file(path: Path) -> None:
    """InvalidInput unless ``path`` is a file: "a directory, not a file", or "no such file"."""
    if Path(path).is_dir():
        raise InvalidInput(f"{path} is a directory, not a file", field="file")
    if not Path(path).exists():
        raise InvalidInput(f"no such file: {path}", field="file")


def read_bytes(path: Path, *, max_bytes: int = MAX_BYTES) -> bytes:
    """The file's bytes; a missing file, a directory, an unreadable or oversized file is InvalidInput."""
    path = Path(path)
    ensure_file(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {path}", field="file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or type(exc).__name__}", field="file") from None
    if len(data) > max_bytes:
        raise InvalidInput(f"{path.name} is over the limit of {max_bytes:,} bytes for an import: split it",
                           field="file")
    return data


def decode(data: bytes, *, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding) of a text file: the encoding given, else UTF-8 (BOM or not), else detected."""
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise InvalidInput(f"unknown encoding {encoding!r} (e.g. utf-8, gb18030)", field="encoding") from None
        try:
            return _without_bom(data.decode(codec)), codec
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"the file is not {codec} text: byte {exc.start + 1} is 0x{data[exc.start]:02x}",
                               field="encoding") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise InvalidInput("the file starts as UTF-16 text but is not", field="file") from None
    try:
        return _without_bom(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data, cp_isolation=list(_DETECTABLE)).best()
    if best is None:
        raise InvalidInput("the file is neither UTF-8 nor GB18030/GBK text (a binary file?): save it as CSV UTF-8, "
                           "or state its encoding with --encoding", field="file")
    return str(best), best.encoding


def _without_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


# -- tables ------------------------------------------------------------------------------------------------------


def read_table(path: Path, columns: Sequence[Column], *, encoding: str | None = None, max_rows: int = MAX_ROWS,
               max_field: int = MAX_FIELD, max_bytes: int = MAX_BYTES) -> Table:
    """The rows of a ``.csv`` (any other name is read as CSV text too) or ``.xlsx`` file."""
    path = Path(path)
    data = read_bytes(path, max_bytes=max_bytes)
    if path.suffix.lower() in (".xlsx", ".xlsm") or data.startswith(b"PK\x03\x04"):
        if encoding is not None:
            raise InvalidInput("a workbook has no text encoding: leave --encoding out", field="encoding")
        cells = _xlsx_cells(data)
        return Table(path.name, _rows(cells, columns, max_rows=max_rows, max_field=max_field, exact=False))
    if path.suffix.lower() == ".xls" or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise InvalidInput("this is an old Excel 97-2003 (.xls) workbook: save it as .xlsx or CSV", field="file")
    text, found = decode(data, encoding=encoding)
    return Table(path.name, _rows(_csv_cells(text, max_field), columns, max_rows=max_rows, max_field=max_field,
                                  exact=True), encoding=found)


def _csv_cells(text: str, max_field: int) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, cells) of CSV text; the csv module's errors as InvalidInput."""
    previous = csv.field_size_limit()
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    start = 1
    try:
        # The module's limit is set well above ours, so that a long cell reaches the check that names its column;
        # a cell past even that is named by its row alone.
        csv.field_size_limit(max_field * 32)
        for cells in reader:
            yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        reason = (f"a cell holds over {max_field * 32:,} characters, over the limit of {max_field:,}"
                  if "field limit" in str(exc) else f"not readable as CSV ({exc})")
        raise InvalidInput(reason, field=f"rows.{start}") from None
    finally:
        csv.field_size_limit(previous)


def _xlsx_cells(data: bytes) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells as text) of the first worksheet of an .xlsx workbook (read-only, values not formulas)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise InvalidInput("the file is not an .xlsx workbook (not a readable zip archive)", field="file") from None
    if unzipped > _MAX_UNZIPPED:
        raise InvalidInput(f"the workbook unpacks to {unzipped:,} bytes, over the limit of {_MAX_UNZIPPED:,}",
                           field="file")
    from openpyxl import load_workbook

    try:
        # openpyxl parses the workbook's XML with defusedxml when it is installed (it is: the scanner imports use it).
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises whatever its zip, XML and style readers raise on a broken file
        raise InvalidInput(f"the file is not a readable .xlsx workbook ({type(exc).__name__})", field="file") from None
    try:
        sheets = [sheet for sheet in book.worksheets if getattr(sheet, "sheet_state", "visible") == "visible"]
        if not sheets:
            raise InvalidInput("the workbook has no visible worksheet", field="file")
        for number, values in enumerate(sheets[0].iter_rows(values_only=True), 1):
            yield number, [_cell_text(value) for value in values]
    except CloudctlError:
        raise
    except Exception as exc:  # as above: a row that openpyxl cannot read is a broken workbook, not our bug
        raise InvalidInput(f"the workbook cannot be read ({type(exc).__name__})", field="file") from None
    finally:
        book.close()


def _cell_text(value: Any) -> str:
    """A spreadsheet value as the text a CSV of it would hold: 990100 not 990100.0, a date as YYYY-MM-DD."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _rows(cells: Iterable[tuple[int, list[str]]], columns: Sequence[Column], *, max_rows: int, max_field: int,
          exact: bool) -> list[Row]:
    """``exact``: every record has as many cells as the header (CSV); a worksheet's short row is empty cells."""
    iterator = iter(cells)
    header = next((_trim(candidate) for _, candidate in iterator if any(cell.strip() for cell in candidate)), None)
    if header is None:
        raise InvalidInput("the file holds no header row and no data", field="file")
    names = _header(header, columns)
    rows: list[Row] = []
    for number, raw in iterator:
        values = _trim(raw)
        if not values:
            continue  # a blank line, or Excel's empty rows under the table
        if len(values) > len(names):
            raise InvalidInput(f"{len(values)} cells where the header has {len(names)} (an unquoted comma?)",
                               field=f"rows.{number}")
        if exact and len(raw) < len(names):
            raise InvalidInput(f"{len(raw)} cells where the header has {len(names)}", field=f"rows.{number}")
        if len(rows) >= max_rows:
            raise InvalidInput(f"the file holds more than {max_rows:,} rows: split it", field="file")
        row: dict[str, str] = {}
        for name, value in zip(names, values, strict=False):
            text = _checked(read_cell(value.strip()), name, number, max_field)
            if text:
                row[name] = text
        rows.append(Row(row, number))
    return rows


def _trim(cells: list[str]) -> list[str]:
    """The cells without the empty ones at the end of the row."""
    end = len(cells)
    while end and not str(cells[end - 1]).strip():
        end -= 1
    return [str(cell) for cell in cells[:end]]


def _header(cells: list[str], columns: Sequence[Column]) -> list[str]:
    """The schema name of each header cell; missing, unknown and repeated columns refused by name."""
    lookup = {alias.strip().lower(): column.name for column in columns for alias in column.names()}
    names: list[str] = []
    given: dict[str, str] = {}
    unknown: list[str] = []
    for cell in cells:
        text = cell.strip().lstrip("\ufeff").strip()
        found = control_character(text)
        if found is not None:
            raise InvalidInput(f"the header holds a control character ({found}): is this a text table?",
                               field="header")
        if not text:
            raise InvalidInput(f"the header has an empty column name in column {len(names) + 1}", field="header")
        name = lookup.get(text.lower())
        if name is None:
            unknown.append(text)
            names.append(text)
            continue
        if name in given:
            same = "twice" if given[name].lower() == text.lower() else f"twice, as {given[name]!r} and {text!r}"
            raise InvalidInput(f"the header names the column {name!r} {same}", field="header")
        given[name] = text
        names.append(name)
    if unknown:
        raise InvalidInput(f"unknown column(s) {', '.join(repr(_short(u)) for u in unknown[:5])}; the columns are "
                           f"{_describe(columns)}", field="header")
    missing = [column for column in columns if column.required and column.name not in given]
    if missing:
        raise InvalidInput(f"the header lacks the column(s) {', '.join(_named(c) for c in missing)}", field="header")
    return names


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _named(column: Column) -> str:
    return f"{column.name} ({' / '.join(column.aliases)})" if column.aliases else column.name


def _describe(columns: Sequence[Column]) -> str:
    return ", ".join(_named(c) + (" (required)" if c.required else "") for c in columns)


def _checked(value: str, column: str, number: int, max_field: int) -> str:
    if len(value) > max_field:
        raise InvalidInput(f"the cell holds {len(value):,} characters, over the limit of {max_field:,}",
                           field=f"rows.{number}.{column}")
    found = control_character(value, multiline=True)
    if found is not None:
        raise InvalidInput(f"must not contain control characters (found {found})", field=f"rows.{number}.{column}")
    return value


# -- YAML and JSON -----------------------------------------------------------------------------------------------


def load_document(text: str, kind: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """A YAML or JSON document (``kind`` "yaml" or "json"), refused when it is malformed, deeper than
    ``max_depth`` or holds an integer of more than a few dozen digits."""

    def small_int(digits: str) -> int:
        if len(digits.lstrip("-")) > _MAX_DIGITS:
            raise InvalidInput(f"the file holds a number of {len(digits):,} digits, more than any field takes",
                               field="file")
        return int(digits)

    try:
        document = json.loads(text, parse_int=small_int) if kind == "json" else yaml.safe_load(text)
    except RecursionError:
        raise InvalidInput(f"the file nests deeper than {max_depth} levels", field="file") from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"not valid {kind.upper()}: {_first_line(str(exc))}", field="file") from None
    except ValueError as exc:  # YAML integers past Python's digit limit
        raise InvalidInput(f"not valid {kind.upper()}: {_first_line(str(exc))}", field="file") from None
    _bounded(document, max_depth)
    return document


def _bounded(document: Any, max_depth: int) -> None:
    """Depth and integer size of a loaded document, walked without recursion (YAML aliases are visited once)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if isinstance(node, int) and not isinstance(node, bool) and node.bit_length() > 80:
            raise InvalidInput("the file holds a number larger than any field takes", field="file")
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            raise InvalidInput(f"the file nests deeper than {max_depth} levels", field="file")
        if id(node) in seen:
            continue
        seen.add(id(node))
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unreadable"


def rows_of_records(records: Any, columns: Sequence[Column], *, max_rows: int = MAX_ROWS,
                    max_field: int = MAX_FIELD) -> list[Row]:
    """A YAML or JSON list of mappings as rows, checked as a table's are: keys matched like headers, values
    scalars (a number or a date becomes its text), each item numbered from 1."""
    if not isinstance(records, list):
        raise InvalidInput("expected a list of rows", field="file")
    if len(records) > max_rows:
        raise InvalidInput(f"the file holds more than {max_rows:,} rows: split it", field="file")
    lookup = {alias.strip().lower(): column.name for column in columns for alias in column.names()}
    rows: list[Row] = []
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise InvalidInput("not a mapping of fields", field=f"rows.{number}")
        row: dict[str, str] = {}
        for key, value in record.items():
            name = lookup.get(str(key).strip().lower())
            if name is None:
                raise InvalidInput(f"unknown field {_short(str(key))!r}; the fields are {_describe(columns)}",
                                   field=f"rows.{number}")
            if name in row:
                raise InvalidInput(f"the field {name!r} is given twice", field=f"rows.{number}.{name}")
            if isinstance(value, dict | list):
                shape = "mapping" if isinstance(value, dict) else "list"
                raise InvalidInput(f"a single value is expected, not a {shape}", field=f"rows.{number}.{name}")
            text = _checked(_cell_text(value).strip(), name, number, max_field)
            if text:
                row[name] = text
        missing = [c for c in columns if c.required and c.name not in row]
        if missing:
            raise InvalidInput("missing", field=f"rows.{number}.{missing[0].name}")
        rows.append(Row(row, number))
    return rows
