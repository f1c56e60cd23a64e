"""The reading layer of every tabular import: encodings, workbooks, headers, ragged rows, limits, hostile input."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

from cloudctl.core import tabular
from cloudctl.core.errors import InvalidInput
from cloudctl.core.export import csv_text
from cloudctl.core.tabular import Column

COLUMNS = (Column("code", ("编码", "单位编码"), required=True), Column("name", ("名称",), required=True),
           Column("parent", ("上级",)), Column("description", ("备注",)))


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refusal(path: Path, **options: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught, tabular.in_file(path):
        tabular.read_table(path, COLUMNS, **options)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_what_excel_writes_is_read_whatever_the_encoding(tmp_path: Path, encoding: str) -> None:
    text = "编码,名称,上级\r\n990102,东湖区,990100\r\n990102001,青山镇,990102\r\n,,\r\n"
    table = tabular.read_table(_write(tmp_path, "units.csv", text.encode(encoding)), COLUMNS)
    assert [dict(r) for r in table.rows] == [{"code": "990102", "name": "东湖区", "parent": "990100"},
                                             {"code": "990102001", "name": "青山镇", "parent": "990102"}]
    assert [r.number for r in table.rows] == [2, 3]  # as the spreadsheet numbers them
    assert table.encoding == ("gb18030" if encoding.startswith("gb") else "utf-8")


def test_a_stated_encoding_is_used_and_a_wrong_one_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "units.csv", "code,name\n1,东湖区\n".encode("gbk"))
    assert tabular.read_table(path, COLUMNS, encoding="gbk").rows[0]["name"] == "东湖区"
    wrong = _refusal(path, encoding="utf-8")
    assert wrong.field == "encoding"
    assert "not utf-8 text" in str(wrong)
    assert _refusal(path, encoding="klingon").field == "encoding"


def test_a_workbook_is_read_with_numbers_and_dates_as_a_csv_would_hold_them(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["单位编码", "名称", "备注"])
    sheet.append([990100, "市政府", None])
    sheet.append([990101.0, "  市公安局 ", "2026-01-05"])
    sheet.append([None, None, None])
    buffer = io.BytesIO()
    book.save(buffer)
    table = tabular.read_table(_write(tmp_path, "units.xlsx", buffer.getvalue()), COLUMNS)
    assert [dict(r) for r in table.rows] == [{"code": "990100", "name": "市政府"},
                                             {"code": "990101", "name": "市公安局", "description": "2026-01-05"}]


@pytest.mark.parametrize(("content", "field", "words"), [
    ("code,name,colour\n1,a,red\n", "header", "unknown column(s) 'colour'"),
    ("code,parent\n1,2\n", "header", "lacks the column(s) name (名称)"),
    ("code,名称,NAME\n1,a,b\n", "header", "'name' twice, as '名称' and 'NAME'"),
    ("code,code,name\n1,1,a\n", "header", "'code' twice"),
    ("code,name\n1,a\n2,b,c\n", "rows.3", "3 cells where the header has 2"),
    ("code,name,parent\n1,a,b\n2,b\n", "rows.3", "2 cells where the header has 3"),
    ("code,name\n1,a\x00b\n", "rows.2.name", "U+0000"),
    ("code,name\n1,a\x1b[31mred\n", "rows.2.name", "U+001B"),
    ("code,name\n1,a\u202eb\n", "rows.2.name", "U+202E"),
    ("code,name\n1,\"" + "x" * 200_000 + "\"\n", "rows.2.name", "200,000 characters"),
    ("", "file", "no header row"),
])
def test_a_bad_table_is_refused_naming_file_row_and_column(tmp_path: Path, content: str, field: str,
                                                           words: str) -> None:
    refusal = _refusal(_write(tmp_path, "units.csv", content.encode("utf-8")))
    assert refusal.field == field
    assert words in str(refusal)
    assert str(refusal).startswith("units.csv: ")
    assert "\n" not in str(refusal)


def test_trailing_empty_cells_are_not_cells(tmp_path: Path) -> None:
    table = tabular.read_table(_write(tmp_path, "u.csv", b"code,name,,\n1,a,,\n"), COLUMNS)
    assert [dict(r) for r in table.rows] == [{"code": "1", "name": "a"}]


@pytest.mark.parametrize(("data", "words"), [
    (bytes(range(256)) * 8, "neither UTF-8 nor GB18030"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "neither UTF-8 nor GB18030"),
    (b"PK\x03\x04not really a zip", "not an .xlsx workbook"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "Excel 97-2003"),
])
def test_a_file_that_is_not_a_table_is_refused(tmp_path: Path, data: bytes, words: str) -> None:
    assert words in str(_refusal(_write(tmp_path, "units.csv", data)))


def test_a_directory_a_missing_file_and_the_limits(tmp_path: Path) -> None:
    assert "is a directory, not a file" in str(_refusal(tmp_path))
    assert "no such file" in str(_refusal(tmp_path / "nope.csv"))
    many = _write(tmp_path, "many.csv", b"code,name\n" + b"1,a\n" * 11)
    assert "more than 10 rows" in str(_refusal(many, max_rows=10))
    assert "over the limit of 20 bytes" in str(_refusal(many, max_bytes=20))


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\x00" * (600 * 1024 * 1024))
    assert "unpacks to" in str(_refusal(_write(tmp_path, "bomb.xlsx", buffer.getvalue())))


@pytest.mark.parametrize(("text", "kind", "words"), [
    ('[{"code": ' + "9" * 5000 + "}]", "json", "5,000 digits"),
    ("[" * 10_000 + "]" * 10_000, "json", "nests deeper"),
    ("- " * 3000 + "a", "yaml", "nests deeper"),
    ("a: " + "9" * 5000, "yaml", "not valid YAML"),
    ("{", "json", "not valid JSON"),
    ("a: [", "yaml", "not valid YAML"),
])
def test_a_hostile_document_is_refused(text: str, kind: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        tabular.load_document(text, kind)
    assert words in str(caught.value)


def test_records_are_checked_as_table_rows_are() -> None:
    rows = tabular.rows_of_records([{"编码": 990100, "name": "市"}, {"CODE": "2", "名称": "县", "上级": None}], COLUMNS)
    assert [(r.number, dict(r)) for r in rows] == [(1, {"code": "990100", "name": "市"}),
                                                   (2, {"code": "2", "name": "县"})]
    for records, field in (([{"code": "1"}], "rows.1.name"), ([{"code": "1", "name": {"a": 1}}], "rows.1.name"),
                           ([{"code": "1", "name": "a", "size": 3}], "rows.1"), (["x"], "rows.1"),
                           ({"code": "1"}, "file")):
        with pytest.raises(InvalidInput) as caught:
            tabular.rows_of_records(records, COLUMNS)
        assert caught.value.field == field


# -- properties: whatever the bytes, a table or our own refusal --------------------------------------------------


@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_give_rows_or_a_refusal(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "any.csv"
    path.write_bytes(data)
    try:
        table = tabular.read_table(path, COLUMNS)
    except InvalidInput as exc:
        refusal = str(exc)
    else:
        assert all(set(row) <= {"code", "name", "parent", "description"} for row in table.rows)
        return
    assert refusal
    assert "\n" not in refusal


_CELL = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@given(header=st.lists(st.sampled_from(["code", "name", "编码", "名称", "parent", "备注", "x", ""]), max_size=6),
       rows=st.lists(st.lists(_CELL, max_size=7), max_size=8), encoding=st.sampled_from(["utf-8", "gb18030"]))
def test_arbitrary_tables_give_rows_or_a_refusal(tmp_path_factory: pytest.TempPathFactory, header: list[str],
                                                 rows: list[list[str]], encoding: str) -> None:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    path = tmp_path_factory.mktemp("tables") / "any.csv"
    try:
        path.write_bytes(buffer.getvalue().encode(encoding))
    except UnicodeEncodeError:
        return
    try:
        table = tabular.read_table(path, COLUMNS)
    except InvalidInput:
        return
    for row in table.rows:
        assert set(row) <= {"code", "name", "parent", "description"}
        assert all(value == value.strip() and value for value in row.values())


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _CELL,
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_CELL, inner, max_size=4),
                     max_leaves=30)


@given(document=_JSON)
def test_arbitrary_documents_give_rows_or_a_refusal(document: object) -> None:
    for kind, text in (("json", json.dumps(document, ensure_ascii=False)), ("json", json.dumps(document))):
        try:
            rows = tabular.rows_of_records(tabular.load_document(text, kind), COLUMNS)
        except InvalidInput:
            continue
        assert all(isinstance(v, str) for row in rows for v in row.values())


def test_a_cell_our_exports_neutralised_reads_back_as_it_was(tmp_path: Path) -> None:
    # What `extranet prefix export --format csv` writes for a formula-shaped description, imported again.
    path = tmp_path / "plan.csv"
    path.write_text(csv_text(["code", "name", "description"], [["990100-D01", "市公安局", "=SUM(1,2)"],
                                                               ["990100-D02", "-2+3", "'plain"]]), encoding="utf-8")
    rows = tabular.read_table(path, COLUMNS).rows
    assert [(r["name"], r["description"]) for r in rows] == [("市公安局", "=SUM(1,2)"), ("-2+3", "'plain")]
