"""Every `… import` and `sec import` with the files bureaus really have and the ones nobody should: one red line or
a clean import, never a traceback, and the same answer on SQLite and PostgreSQL (each test runs on both)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.models import utcnow
from cloudctl.core.output import console
from cloudctl.org.models import Unit, UnitKind
from cloudctl.reclaim.models import UtilisationDay
from cloudctl.security.models import Asset
from tests.factories import make_cloud, make_server, make_unit

SECURITY = Path(__file__).resolve().parents[1] / "data" / "security"
DAY = str(utcnow().date() - timedelta(days=3))


@pytest.fixture
def cli(fresh_url: str, fresh_engine: Engine, tmp_path: Path) -> Iterator[CliRunner]:
    reset_settings(Settings(data_dir=tmp_path / "data", database_url=fresh_url,
                            simulator_database_url=f"sqlite:///{tmp_path / 'simulator.db'}"))
    cli_state.schema_checked = False
    console.width = 200
    with Session(fresh_engine) as session:
        make_unit(session, "990100", "临江市", UnitKind.CITY)
        make_unit(session, "990100-D01", "市公安局", UnitKind.DEPARTMENT, "990100")
        make_cloud(session)
        make_server(session, "990100-D01", None, name="ga-web-01")
        session.commit()
    yield CliRunner()
    cli_state.act_as = None
    reset_settings()
    dispose_engines()


def _one_line_refusal(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 1, f"{args}: {result.output}{result.exception!r}"
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def _ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}{result.exception!r}"
    return result.output


# -- the files ---------------------------------------------------------------------------------------------------

def _write(tmp: Path, name: str, data: bytes | str) -> Path:
    path = tmp / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


HOSTILE: dict[str, Callable[[Path], Path]] = {
    "binary": lambda t: _write(t, "random.csv", os.urandom(4096)),
    "directory": lambda t: t,
    "missing": lambda t: t / "nope.csv",
    "empty": lambda t: _write(t, "empty.csv", b""),
    "200 KiB cell": lambda t: _write(t, "long.csv", "code,name,kind\n1,\"" + "长" * 200 * 1024 + "\",town\n"),
    "NUL in a cell": lambda t: _write(t, "nul.csv", "code,name,kind\n990100-X,市\x00局,department\n"),
    "ragged": lambda t: _write(t, "ragged.csv", "code,name,kind\n990100-X,市局,department,extra\n"),
    "not a workbook": lambda t: _write(t, "broken.xlsx", b"PK\x03\x04" + os.urandom(200)),
    "old Excel": lambda t: _write(t, "old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512)),
}


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_a_hostile_table_gets_one_line(cli: CliRunner, tmp_path: Path, hostile: str) -> None:
    path = HOSTILE[hostile](tmp_path)
    for command in (["unit", "import"], ["reclaim", "import"], ["extranet", "prefix", "import"]):
        line = _one_line_refusal(cli, *command, str(path))
        if hostile == "directory":
            assert "is a directory, not a file" in line


@pytest.mark.parametrize(("name", "text", "words"), [
    ("big-int.json", '[{"code": ' + "9" * 5000 + ', "name": "x", "kind": "town"}]', "5,000 digits"),
    ("deep.json", "[" * 10_000 + "]" * 10_000, "nests deeper"),
    ("deep.yaml", "- " * 5000 + "x", "nests deeper"),
    ("nul.json", '[{"code": "990100-X", "name": "市\\u0000局", "kind": "department", "parent": "990100"}]',
     "rows.1.name: must not contain control characters (found U+0000"),
    ("bidi.json", '[{"code": "990100-X", "name": "市\\u202e局", "kind": "department", "parent": "990100"}]',
     "U+202E"),
    ("long-email.json", '[{"code": "990100-X", "name": "市局", "kind": "department", "parent": "990100", '
     '"contact_email": "' + "a" * 60 + "@" + "b" * 60 + '.example.com"}]', "rows.1.contact_email: must be at most 128"),
    ("long-name.json", '[{"code": "990100-X", "name": "' + "局" * 65 + '", "kind": "department", "parent": "990100"}]',
     "rows.1.name: String should have at most 64 characters"),
])
def test_unit_documents_are_bounded_and_checked_before_the_database(cli: CliRunner, tmp_path: Path, name: str,
                                                                    text: str, words: str) -> None:
    line = _one_line_refusal(cli, "unit", "import", str(_write(tmp_path, name, text)))
    assert f"{name}: " in line
    assert words in line


def test_a_gbk_csv_and_an_xlsx_with_chinese_headers_import(cli: CliRunner, tmp_path: Path,
                                                           fresh_engine: Engine) -> None:
    gbk = _write(tmp_path, "units.csv", "单位编码,名称,类型,上级\r\n990100-D02,市人社局,市直部门,990100\r\n"
                 .encode("gbk"))
    assert json.loads(_ok(cli, "unit", "import", str(gbk), "-o", "json"))["created"] == 1
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["云主机", "日期", "指标", "P95", "P99", "最大值", "平均值", "样本数"])
    sheet.append(["ga-web-01", DAY, "cpu", 0.2, 0.3, 0.5, 0.1, 288])
    buffer = io.BytesIO()
    book.save(buffer)
    workbook = _write(tmp_path, "utilisation.xlsx", buffer.getvalue())
    assert json.loads(_ok(cli, "reclaim", "import", str(workbook), "-o", "json"))["rows"] == 1
    with Session(fresh_engine) as session:
        assert session.scalar(select(Unit.name).where(Unit.code == "990100-D02")) == "市人社局"
        assert session.scalar(select(UtilisationDay.p95)) == 0.2


def test_a_utilisation_csv_in_gbk_with_a_missing_column_names_it(cli: CliRunner, tmp_path: Path) -> None:
    text = "云主机,日期,指标,P95,P99,最大值,平均值\nga-web-01,2026-01-01,cpu,0.1,0.1,0.1,0.1\n"
    path = _write(tmp_path, "u.csv", text.encode("gbk"))
    line = _one_line_refusal(cli, "reclaim", "import", str(path))
    assert line == "error: u.csv: header: the header lacks the column(s) samples (样本数 / 采样数)"


def _nmap(port: str = "80", service: str = "http") -> str:
    return ('<?xml version="1.0"?><!DOCTYPE nmaprun><nmaprun start="1767225600"><host><status state="up"/>'
            '<address addr="10.64.1.20" addrtype="ipv4"/><ports><port protocol="tcp" portid="' + port + '">'
            '<state state="open"/><service name="' + service + '"/></port></ports></host></nmaprun>')


NESSUS_URL_HOST = ('<NessusClientData_v2><Report name="web">'
                   '<ReportHost name="https://zwfw.example.gov.test/app/login.do"><HostProperties/>'
                   '<ReportItem port="443" svc_name="www" protocol="tcp" severity="2" pluginID="98115" '
                   'pluginName="Missing CSP"/></ReportHost></Report></NessusClientData_v2>')


@pytest.mark.parametrize(("name", "fmt", "content", "words"), [
    ("port.xml", "nmap", _nmap(port=str(2**70)), "host[1]/ports/port[1].port: Input should be less than or equal to"),
    ("negative.xml", "nmap", _nmap(port="-1"), "Input should be greater than or equal to 0"),
    ("service.xml", "nmap", _nmap(service="s" * 80), "service: String should have at most 64 characters"),
    ("scan.csv", "nessus", (SECURITY / "scanner-export.csv").read_text(encoding="utf-8"), "not XML"),
    ("scan.html", "nessus", (SECURITY / "scanner-report.html").read_text(encoding="utf-8"), "an HTML report"),
    ("random.xml", "gvm", os.urandom(2048).hex(), "not XML"),
    ("laughs.xml", "nessus", (SECURITY / "billion-laughs.xml").read_text(encoding="utf-8"), "billion laughs"),
])
def test_sec_import_refuses_in_one_line(cli: CliRunner, tmp_path: Path, name: str, fmt: str, content: str,
                                        words: str) -> None:
    line = _one_line_refusal(cli, "sec", "import", str(_write(tmp_path, name, content)), "--format", fmt,
                             "--scope", "hostile")
    assert f"{name}: " in line
    assert words in line


def test_sec_import_names_formats_and_directories(cli: CliRunner, tmp_path: Path) -> None:
    nmap = str(SECURITY / "nmap-localhost.xml")
    unknown = _one_line_refusal(cli, "sec", "import", nmap, "--format", "qualys", "--scope", "s")
    assert "unknown report format 'qualys'" in unknown
    assert "--format nmap" in unknown
    assert "(--format gvm)" in unknown
    assert "is a directory, not a file" in _one_line_refusal(cli, "sec", "import", str(tmp_path), "--format",
                                                             "nmap", "--scope", "s")
    assert "U+0000" in _one_line_refusal(cli, "sec", "import", nmap, "--format", "nmap", "--scope", "a\x00b")


def test_a_web_scanner_host_named_by_url_is_stored_the_same_on_both_databases(cli: CliRunner, tmp_path: Path,
                                                                             fresh_engine: Engine) -> None:
    path = _write(tmp_path, "web.nessus", NESSUS_URL_HOST)
    assert json.loads(_ok(cli, "sec", "import", str(path), "--format", "nessus", "--scope", "web", "-o",
                          "json"))["created"] == 1
    with Session(fresh_engine) as session:
        asset = session.scalar(select(Asset))
        assert asset is not None
        assert (asset.kind, asset.ip, asset.hostname, asset.url) == (
            "web", None, "zwfw.example.gov.test", "https://zwfw.example.gov.test/app/login.do")
    listed = json.loads(_ok(cli, "sec", "findings", "-o", "json"))
    assert [(f["ip"], f["target"]) for f in listed] == [(None, "zwfw.example.gov.test")]


def test_a_hostile_inventory_fails_the_collection_in_one_line(cli: CliRunner, tmp_path: Path) -> None:
    for name, data in (("deep.yml", ("- " * 5000 + "x").encode()), ("binary.yml", os.urandom(512)),
                       ("big.yml", b"all: {vars: {timeout: " + b"9" * 5000 + b"}}")):
        result = cli.invoke(app, ["extranet", "collect", "--inventory", str(_write(tmp_path, name, data))])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        # the progress bar, then one red line
        assert result.output.strip().splitlines()[-1].startswith("error: job ")
        assert name in result.output
