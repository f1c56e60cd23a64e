"""CSV cells that a spreadsheet would run as a formula are written as text (OWASP, CSV injection)."""

from __future__ import annotations

import csv
import io

import pytest

from cloudctl.core.export import csv_text, safe_cell
from cloudctl.core.text import escape_json_controls, visible


@pytest.mark.parametrize(("cell", "written"), [
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"), ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("市公安局", "市公安局"), ("10.0.0.1", "10.0.0.1"), ("", ""),
    (-5, -5), (-0.5, -0.5), (None, None),
])
def test_safe_cell(cell: object, written: object) -> None:
    assert safe_cell(cell) == written


def test_csv_text_reads_back_as_text() -> None:
    text = csv_text(["name", "amount"], [['=HYPERLINK("http://x","y")', -12.5], ["社保卡系统", 3]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["name", "amount"], ["'=HYPERLINK(\"http://x\",\"y\")", "-12.5"], ["社保卡系统", "3"]]


def test_visible_and_json_escapes() -> None:
    assert visible("a\x1b[2Jb\x00\u202e\n") == "a␛[2Jb␀\ufffd\n"
    assert visible("a\r\nb", keep="\n\r\t") == "a\r\nb"
    assert visible("a\r\nb") == "a␍\nb"
    assert escape_json_controls('{"x": "a\x9b\u202eb"}') == '{"x": "a\\u009b\\u202eb"}'
