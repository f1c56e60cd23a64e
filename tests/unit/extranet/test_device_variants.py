"""Device output as current releases of the three vendors print it: every sample in tests/data/extranet parses to
its expected entries; one unreadable or unusable row costs that row; any text gives tables or ProviderError."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ntc_templates.parse import parse_output
from sqlalchemy.orm import Session
from textfsm import parser as textfsm_parser

from cloudctl.core.errors import ProviderError
from cloudctl.extranet.devices import COMMANDS, Device
from cloudctl.extranet.netmiko_collector import read_tables
from cloudctl.extranet.schemas import DevicePublic
from cloudctl.extranet.service import collection
from tests.factories import ADMIN, build_mini_city
from tests.support.devicesim import ArpRow, MacRow, render, vendor_mac
from tests.unit.extranet.test_devices import arp_rows, expected_arp, expected_mac, mac_rows

DATA = Path(__file__).resolve().parents[2] / "data" / "extranet"
VARIANTS = sorted(path.name.removesuffix(".expected.json") for path in DATA.glob("*.expected.json"))


def _sample(variant: str) -> dict[str, Any]:
    expected: dict[str, Any] = json.loads((DATA / f"{variant}.expected.json").read_text(encoding="utf-8"))
    expected["arp_text"] = (DATA / expected["arp_output"]).read_text(encoding="utf-8")
    expected["mac_text"] = (DATA / expected["mac_output"]).read_text(encoding="utf-8")
    return expected


def test_every_vendor_release_has_a_sample() -> None:
    assert VARIANTS == ["cisco_ios-15", "cisco_ios-xe", "hp_comware-5", "hp_comware-7", "huawei_vrp-v5",
                        "huawei_vrp-v8"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_sample_parses_to_its_expected_entries(variant: str) -> None:
    sample = _sample(variant)
    tables = read_tables(variant, sample["device_type"], sample["arp_text"], sample["mac_text"])
    assert [asdict(e) for e in tables.arp] == sample["arp"]
    assert [asdict(e) for e in tables.mac] == sample["mac"]
    assert [asdict(s) for s in tables.skipped] == sample["skipped"]
    assert tables.counts == sample["counts"]


# What ntc-templates 9.3 itself does with these variants, pinned so that an upgrade that changes it is noticed
# (and the local fixes in cloudctl/extranet/templates can go).
@pytest.mark.parametrize(("variant", "table", "line"), [
    ("huawei_vrp-v8", "arp", "ARP Entry Types: D - Dynamic, S - Static, I - Interface"),
    ("huawei_vrp-v8", "mac", "Flags: * - Backup"),
    ("cisco_ios-xe", "mac", "  20    a0b4.3910.20ff    STATIC"),
])
def test_the_stock_template_raises_on_these_variants(variant: str, table: str, line: str) -> None:
    sample = _sample(variant)
    command = COMMANDS[sample["device_type"]][0 if table == "arp" else 1]
    with pytest.raises(textfsm_parser.TextFSMError) as caught:
        parse_output(platform=sample["device_type"], command=command, data=sample[f"{table}_text"])
    assert f"Input Line: {line}" in str(caught.value)


def test_the_stock_comware_template_drops_static_arp_entries_without_a_word() -> None:
    sample = _sample("hp_comware-5")
    rows = parse_output(platform="hp_comware", command="display arp", data=sample["arp_text"])
    assert len(rows) == len(sample["arp"]) - 1


def test_vrp_v8s_summary_line_after_a_long_table_costs_nothing() -> None:
    rows = arp_rows("huawei_vrp", 209)
    text = render("huawei_vrp", "arp", rows) + "\nRedirect:0      OpenFlow:0\n"
    tables = read_tables("core", "huawei_vrp", text, render("huawei_vrp", "mac", mac_rows("huawei_vrp")))
    assert tables.arp == expected_arp(rows)
    assert tables.skipped == []


@pytest.mark.parametrize("vendor", ["huawei_vrp", "hp_comware", "cisco_ios"])
def test_one_bad_row_costs_one_row(vendor: str) -> None:
    rows = mac_rows(vendor, 31)
    lines = render(vendor, "mac", rows).splitlines()
    # An entry in a layout no template knows, in the middle of the table; and a line that is no entry at all.
    odd = f"{vendor_mac(vendor, '02aa00000001')} (learning) ?"
    lines[len(lines) // 2:len(lines) // 2] = [odd, "%% a line a newer release prints %%"]
    arp = render(vendor, "arp", arp_rows(vendor, 12))
    tables = read_tables("sw", vendor, arp, "\n".join(lines))
    assert tables.mac == expected_mac(rows)
    assert tables.arp == expected_arp(arp_rows(vendor, 12))
    assert odd in [s.line for s in tables.skipped]
    assert {s.reason for s in tables.skipped} == {"the template cannot read this line"}
    assert tables.counts[COMMANDS[vendor][1]] == {"parsed": 31, "skipped": len(tables.skipped)}


def test_a_static_mac_entry_without_a_port_costs_that_entry_alone() -> None:
    rows = [*mac_rows("cisco_ios", 30), MacRow("0011.2233.4455", 10, "", "static")]
    tables = read_tables("sw", "cisco_ios", render("cisco_ios", "arp", arp_rows("cisco_ios", 31)),
                         render("cisco_ios", "mac", rows))
    assert len(tables.arp) == 31
    assert tables.mac == expected_mac(rows[:30])
    assert len(tables.skipped) == 1
    assert "0011.2233.4455" in tables.skipped[0].line


def test_a_device_fails_only_when_nothing_can_be_read() -> None:
    refused = "Error: Unrecognized command found at '^' position."
    half = read_tables("sw", "huawei_vrp", refused, render("huawei_vrp", "mac", mac_rows("huawei_vrp", 3)))
    assert len(half.mac) == 3
    assert half.counts["display arp brief"] == {"parsed": 0, "skipped": 1}
    assert "refused" in half.skipped[0].reason
    with pytest.raises(ProviderError):
        read_tables("sw", "huawei_vrp", refused, refused)
    # Blank output is a read cut short, not an empty table: counted against the command, fatal only for both.
    blank = read_tables("sw", "cisco_ios", "", render("cisco_ios", "mac", mac_rows("cisco_ios", 2)))
    assert blank.counts["show ip arp"] == {"parsed": 0, "skipped": 1}
    with pytest.raises(ProviderError):
        read_tables("sw", "cisco_ios", "", "\n")
    empty = read_tables("sw", "cisco_ios", render("cisco_ios", "arp", []), render("cisco_ios", "mac", []))
    assert (empty.arp, empty.mac, empty.skipped) == ([], [], [])


_LINE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\r\n"),
                max_size=60)


@given(vendor=st.sampled_from(["huawei_vrp", "hp_comware", "cisco_ios"]), junk=st.lists(_LINE, max_size=4),
       where=st.integers(min_value=0, max_value=40), whole=st.booleans())
def test_any_text_gives_tables_or_a_provider_error(vendor: str, junk: list[str], where: int, whole: bool) -> None:
    arp = render(vendor, "arp", [ArpRow(f"10.0.0.{i + 1}", f"02000000{i:04x}", "Vlan10" if vendor == "cisco_ios"
                                        else "GE1/0/1", 10) for i in range(8)]).splitlines()
    arp[where % (len(arp) + 1):where % (len(arp) + 1)] = junk
    mac = "\n".join(junk) if whole else render(vendor, "mac", mac_rows(vendor, 5))
    try:
        tables = read_tables("sw", vendor, "\n".join(arp), mac)
    except ProviderError:
        return
    assert all(entry.ip.startswith("10.0.0.") for entry in tables.arp)
    assert sum(c["parsed"] for c in tables.counts.values()) == len(tables.arp) + len(tables.mac)


def test_the_parse_counts_and_skipped_rows_are_kept_per_device(session: Session) -> None:
    build_mini_city(session)
    device = Device(name="xe-01", host="192.0.2.10", device_type="cisco_ios", unit_code="990100-D01",
                    role="access", username="u", password="p")
    row = collection.sync_devices(session, ADMIN, [device])["xe-01"]
    sample = _sample("cisco_ios-xe")
    tables = read_tables("xe-01", "cisco_ios", sample["arp_text"], sample["mac_text"])
    assert collection.record_parse(session, row, tables) == 1
    listed, _ = collection.list_devices(session, ADMIN)
    shown = DevicePublic.model_validate(listed[0])
    assert shown.parse_counts == {"show ip arp": {"parsed": 3, "skipped": 0},
                                  "show mac address-table": {"parsed": 3, "skipped": 1}}
    assert shown.skipped_rows == [{"command": "show mac address-table", "line": "20    a0b4.3910.20ff    STATIC",
                                   "reason": "the template cannot read this line"}]


_YAML = st.recursive(st.none() | st.booleans() | st.integers() | _LINE,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["all", "hosts", "vars", "children", "ansible_host", "device_type", "unit",
                                          "role", "username", "password_env", "timeout", "sw1", "g"]), inner,
                         max_size=4), max_leaves=20)


@given(document=_YAML, raw=st.binary(max_size=200))
def test_any_inventory_gives_devices_or_invalid_input(tmp_path_factory: pytest.TempPathFactory, document: object,
                                                      raw: bytes) -> None:
    import yaml

    from cloudctl.core.errors import InvalidInput
    from cloudctl.extranet.devices import load_inventory

    folder = tmp_path_factory.mktemp("inventory")
    for name, data in (("doc.yml", yaml.safe_dump(document, allow_unicode=True).encode()), ("raw.yml", raw)):
        path = folder / name
        path.write_bytes(data)
        try:
            devices = load_inventory(path, environ={"P": "secret"})
        except InvalidInput:
            continue
        assert all(device.device_type in COMMANDS for device in devices)
