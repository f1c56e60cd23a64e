"""netmiko over real SSH to simulated Huawei, H3C and Cisco devices: the rows come back exactly; failures stay local."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import paramiko
import pytest

from cloudctl.core.errors import ProviderError
from cloudctl.extranet.devices import COMMANDS, Device, DeviceTables
from cloudctl.extranet.netmiko_collector import NetmikoCollector, collect_all
from tests.support.devicesim import DeviceSimulator, MacRow, SimDevice
from tests.unit.extranet.test_devices import arp_rows, expected_arp, expected_mac, mac_rows

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

VENDORS = ["huawei_vrp", "hp_comware", "cisco_ios"]
PAGING_OFF = {"huawei_vrp": "screen-length 0 temporary", "hp_comware": "screen-length disable",
              "cisco_ios": "terminal length 0"}


@pytest.fixture(scope="module")
def sim() -> Iterator[DeviceSimulator]:
    devices = [SimDevice(f"sw-{vendor}", vendor, arp=arp_rows(vendor), mac=mac_rows(vendor)) for vendor in VENDORS]
    devices.append(SimDevice("sw-slow", "huawei_vrp", arp=arp_rows("huawei_vrp", 3), mac=mac_rows("huawei_vrp", 3),
                             latency=2.0))
    # A VRP V8 release's second summary line after the ARP table; an IOS-XE static entry bound to no port.
    devices.append(SimDevice("sw-vrp8", "huawei_vrp", arp=arp_rows("huawei_vrp", 209), mac=mac_rows("huawei_vrp", 12),
                             after={"arp": "Redirect:0      OpenFlow:0"}))
    devices.append(SimDevice("sw-xe", "cisco_ios", arp=arp_rows("cisco_ios", 31),
                             mac=[*mac_rows("cisco_ios", 30), MacRow("0011.2233.4455", 10, "", "static")]))
    before = {thread.ident for thread in threading.enumerate()}
    with DeviceSimulator(devices) as simulator:
        yield simulator
    # everything stopped: no thread of the simulator's left, its ports closed
    assert {thread.ident for thread in threading.enumerate()} <= before
    with socket.socket() as probe:
        assert probe.connect_ex(simulator.address("sw-huawei_vrp")) != 0


def device(sim: DeviceSimulator, sim_name: str, **changes: object) -> Device:
    sim_device = sim.devices[sim_name]
    host, port = sim.address(sim_name)
    settings: dict[str, object] = {"name": sim_name, "host": host, "port": port, "device_type": sim_device.vendor,
                                   "unit_code": "A01", "role": "access", "username": sim_device.username,
                                   "password": sim_device.password, "timeout": 10.0}
    settings.update(changes)
    return Device(**settings)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_vendor_returns_exactly_its_rows_with_paging_disabled(sim: DeviceSimulator) -> None:
    devices = [device(sim, f"sw-{vendor}") for vendor in VENDORS]
    results = collect_all(devices, NetmikoCollector(conn_timeout=5), max_workers=3)
    for vendor in VENDORS:
        tables = results[f"sw-{vendor}"]
        assert isinstance(tables, DeviceTables), tables
        assert tables.arp == expected_arp(sim.devices[f"sw-{vendor}"].arp)
        assert tables.mac == expected_mac(sim.devices[f"sw-{vendor}"].mac)
        assert any(entry.own for entry in tables.arp) == (vendor != "hp_comware")
        received = sim.received(f"sw-{vendor}")
        # netmiko turned paging off before asking for the tables (60 rows: a paging device would have stopped)
        assert received.index(PAGING_OFF[vendor]) < received.index(COMMANDS[vendor][0])


def test_one_odd_row_costs_one_row_over_ssh(sim: DeviceSimulator) -> None:
    results = collect_all([device(sim, "sw-vrp8"), device(sim, "sw-xe")], NetmikoCollector(conn_timeout=5),
                          max_workers=2)
    vrp8, xe = results["sw-vrp8"], results["sw-xe"]
    assert isinstance(vrp8, DeviceTables), vrp8
    assert isinstance(xe, DeviceTables), xe
    assert vrp8.arp == expected_arp(sim.devices["sw-vrp8"].arp)  # all 209
    assert vrp8.skipped == []
    assert xe.arp == expected_arp(sim.devices["sw-xe"].arp)
    assert xe.mac == expected_mac(sim.devices["sw-xe"].mac[:30])
    assert [s.line for s in xe.skipped] == ["10    0011.2233.4455    STATIC"]
    assert xe.counts["show mac address-table"] == {"parsed": 30, "skipped": 1}


def test_failures_are_per_device_and_the_others_still_come_back(sim: DeviceSimulator) -> None:
    good = [device(sim, f"sw-{vendor}", name=f"good-{vendor}") for vendor in VENDORS]
    wrong_password = device(sim, "sw-cisco_ios", name="wrong-password", password="not-it")
    refused = device(sim, "sw-hp_comware", name="refused", port=closed_port())
    slow = device(sim, "sw-slow", timeout=0.8)  # answers after 2 s
    seen: list[tuple[str, bool, str | None]] = []
    started = time.monotonic()
    results = collect_all([*good, wrong_password, refused, slow], NetmikoCollector(conn_timeout=5), max_workers=6,
                          on_result=lambda d, t, e: seen.append((d.name, t is not None, e)))
    assert time.monotonic() - started < 30
    assert sorted(name for name, ok, _ in seen if ok) == sorted(d.name for d in good)
    assert all(isinstance(results[d.name], DeviceTables) for d in good)
    assert re.search(r"wrong-password .*authentication failed for user 'netops'", str(results["wrong-password"]))
    assert re.search(r"refused .*(refused|TCP connection)", str(results["refused"]), re.IGNORECASE)
    assert re.search(r"sw-slow .*no complete answer within 0.8s", str(results["sw-slow"]))
    assert len(seen) == 6


@pytest.mark.parametrize(("which", "field"), [("wrong-password", "password"), ("refused", "host"),
                                              ("slow", "timeout")])
def test_collect_raises_provider_error_naming_the_device(sim: DeviceSimulator, which: str, field: str) -> None:
    target = {"wrong-password": lambda: device(sim, "sw-huawei_vrp", name="x1", password="nope"),
              "refused": lambda: device(sim, "sw-cisco_ios", name="x1", port=closed_port()),
              "slow": lambda: device(sim, "sw-slow", name="x1", timeout=0.8)}[which]()
    with pytest.raises(ProviderError) as caught:
        NetmikoCollector(conn_timeout=5).collect(target)
    assert caught.value.field == field
    assert caught.value.detail.startswith("x1 (")
    assert caught.value.__cause__ is None  # `from None`: the SDK's exception is not chained out
    assert caught.value.__suppress_context__


def test_the_simulator_pages_until_paging_is_disabled(sim: DeviceSimulator) -> None:
    host, port = sim.address("sw-huawei_vrp")
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(host, port=port, username="netops", password=sim.devices["sw-huawei_vrp"].password,
                   look_for_keys=False, allow_agent=False, timeout=5)
    try:
        shell = client.invoke_shell(width=511)
        shell.settimeout(5)

        def read_until(*markers: str) -> str:
            data = ""
            while not any(marker in data for marker in markers):
                data += shell.recv(65536).decode()
            return data

        read_until("<sw-huawei_vrp>")
        shell.send(b"dis mac\n")
        output = read_until("---- More ----")
        assert "Total items" not in output
        pages = 1
        while not output.rstrip().endswith("<sw-huawei_vrp>"):
            shell.send(b" ")
            output += read_until("---- More ----", "<sw-huawei_vrp>")
            pages += 1
        assert pages == 3  # 66 lines, 24 a page
        assert "Total items displayed = 60" in output
        shell.send(b"screen-length 0 temporary\n")
        assert "takes effect on the current user terminal" in read_until("<sw-huawei_vrp>")
        shell.send(b"display arp\n")
        # Up to the prompt in one go: the table and the prompt may arrive in a single read.
        whole = read_until("<sw-huawei_vrp>")
        assert "Interface" in whole
        assert "More" not in whole
        assert "Error: Unrecognized command" not in whole  # VRP has plain `display arp` too
        shell.send(b"display nonsense\n")
        assert "Error: Unrecognized command found at '^' position." in read_until("<sw-huawei_vrp>")
    finally:
        client.close()
