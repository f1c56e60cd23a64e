"""The demo city's wire over real SSH: netmiko collects the devices the generator injected violations on from
the device simulator (Huawei, H3C and Cisco), and a compliance check finds exactly what was injected.

The devices' observations are emptied first, so what the check sees of them came through SSH, netmiko
and ntc-templates; the rest of the city was collected by the demo seed from the simulated devices.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, session_scope
from cloudctl.core.output import console
from cloudctl.demo.city import generate_city
from cloudctl.extranet.demo import WirePlan, plan_wire
from cloudctl.extranet.models import ArpObservation, MacObservation, NetworkDevice
from tests.support.democity import DemoCityFiles
from tests.support.devicesim import ArpRow, DeviceSimulator, MacRow, SimDevice

pytestmark = pytest.mark.slow
PASSWORD = "Demo-Wire-Passw0rd"


@pytest.fixture(scope="module")
def wire() -> WirePlan:
    return plan_wire(generate_city(2026), 2026)


@pytest.fixture(scope="module")
def demo(demo_city: DemoCityFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CliRunner, Path]]:
    city = demo_city.copy_to(tmp_path_factory.mktemp("wire"))
    reset_settings(Settings(data_dir=city.directory, database_url=f"sqlite:///{city.database}",
                            simulator_build_seconds=0))
    cli_state.schema_checked = False
    console.width = 200
    yield CliRunner(), city.directory
    reset_settings()
    dispose_engines()


@pytest.fixture(scope="module")
def simulator(wire: WirePlan) -> Iterator[DeviceSimulator]:
    hot = [d for d in wire.devices if d.name in wire.hot]
    devices = [SimDevice(d.name, d.vendor,  # type: ignore[arg-type]
                         [ArpRow(e.ip, e.mac, e.interface or "", e.vlan, own=e.own) for e in d.arp],
                         [MacRow(e.mac, e.vlan, e.port, e.kind) for e in d.macs], password=PASSWORD)
               for d in hot]
    with DeviceSimulator(devices) as sim:
        yield sim


def _inventory(path: Path, wire: WirePlan, sim: DeviceSimulator) -> Path:
    hosts = {}
    for device in (d for d in wire.devices if d.name in wire.hot):
        host, port = sim.address(device.name)
        hosts[device.name] = {"ansible_host": host, "ansible_port": port, "device_type": device.vendor,
                              "unit": device.unit_code, "role": device.role, "timeout": 30}
    path.write_text(yaml.safe_dump({"all": {"vars": {"username": "netops", "password_env": "DEMO_WIRE_PASSWORD"},
                                            "hosts": hosts}}, allow_unicode=True), encoding="utf-8")
    return path


def test_collection_over_ssh_finds_exactly_the_injected_violations(
        demo: tuple[CliRunner, Path], wire: WirePlan, simulator: DeviceSimulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runner, data = demo
    with session_scope() as session:
        hot = list(session.scalars(select(NetworkDevice.id).where(NetworkDevice.name.in_(wire.hot))))
        assert len(hot) == len(wire.hot)
        session.execute(delete(ArpObservation).where(ArpObservation.device_id.in_(hot)))
        session.execute(delete(MacObservation).where(MacObservation.device_id.in_(hot)))
        session.execute(update(NetworkDevice).where(NetworkDevice.id.in_(hot)).values(last_success_at=None))
    monkeypatch.setenv("DEMO_WIRE_PASSWORD", PASSWORD)
    inventory = _inventory(data / "wire-inventory.yml", wire, simulator)
    collected = runner.invoke(app, ["extranet", "collect", "--inventory", str(inventory)])
    assert collected.exit_code == 0, collected.output
    assert f"{len(wire.hot)} of {len(wire.hot)} devices collected, 0 failed" in collected.output
    # What came over SSH is what the generator put on the devices.
    with session_scope() as session:
        for device in (d for d in wire.devices if d.name in wire.hot):
            row = session.scalar(select(NetworkDevice).where(NetworkDevice.name == device.name))
            assert row is not None
            assert row.last_success_at is not None
            seen = set(session.execute(select(ArpObservation.ip, ArpObservation.mac)
                                       .where(ArpObservation.device_id == row.id)).all())
            assert seen == {(e.ip, e.mac) for e in device.arp}, device.name
            ports = set(session.execute(select(MacObservation.mac, MacObservation.port)
                                        .where(MacObservation.device_id == row.id)).all())
            assert ports == {(e.mac, e.port) for e in device.macs}, device.name
    checked = runner.invoke(app, ["extranet", "check", "-o", "json"])
    assert checked.exit_code == 0, checked.output
    listed = runner.invoke(app, ["extranet", "violations", "-o", "json"])
    assert listed.exit_code == 0, listed.output
    found = {(v["rule"], v["subject"]) for v in json.loads(listed.output)}
    assert found == wire.expected
    assert {v["rule"] for v in json.loads(listed.output)} == set(range(1, 13))
