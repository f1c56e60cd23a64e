"""Collecting ARP and MAC tables from a fleet of simulated devices over real SSH: wall time against the ideal.

    .venv/bin/python bench/extranet_collection.py                 # 1,600 devices, 64 workers, 50 ms latency
    .venv/bin/python bench/extranet_collection.py -n 200 --workers 32

The simulator (tests/support/devicesim.py) runs in a child process, so its asyncio loop and netmiko's threads do not
share one GIL. Each line a device receives is answered after ``--latency``. The ideal for a concurrency W is
ceil(N / W) × (lines netmiko sends per session, session preparation included) × latency: what the run would take
if SSH and Python cost nothing. The CPU figures say what they do cost, per device, on each side. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudctl.extranet.devices import Device, DeviceTables
from cloudctl.extranet.netmiko_collector import NetmikoCollector, collect_all

VENDORS = ("huawei_vrp", "hp_comware", "cisco_ios")


def _fleet(count: int, rows: int, latency: float) -> list[object]:
    from tests.support.devicesim import SimDevice
    from tests.unit.extranet.test_devices import arp_rows, mac_rows

    tables = {vendor: (arp_rows(vendor, rows), mac_rows(vendor, rows)) for vendor in VENDORS}
    return [SimDevice(f"sw{i:04d}", VENDORS[i % 3], arp=tables[VENDORS[i % 3]][0], mac=tables[VENDORS[i % 3]][1],
                      latency=latency) for i in range(count)]


def _serve(conn: Connection, count: int, rows: int, latency: float) -> None:
    from tests.support.devicesim import DeviceSimulator

    devices = _fleet(count, rows, latency)
    with DeviceSimulator(devices) as sim:  # type: ignore[arg-type]
        conn.send({d.name: (d.vendor, sim.address(d.name)) for d in devices})  # type: ignore[attr-defined]
        cpu_start = time.process_time()
        conn.recv()  # the parent says when the run is over
        cpu = time.process_time() - cpu_start
        conn.send((cpu, {d.name: len(sim.received(d.name)) for d in devices}))  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--devices", type=int, default=1600)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per line answered (default 0.05)")
    parser.add_argument("--rows", type=int, default=50, help="ARP rows and MAC rows per device (default 50)")
    args = parser.parse_args()

    parent, child = mp.Pipe()
    server = mp.get_context("fork").Process(target=_serve, args=(child, args.devices, args.rows, args.latency),
                                            daemon=True)
    server.start()
    try:
        addresses: dict[str, tuple[str, tuple[str, int]]] = parent.recv()
        devices = [Device(name=name, host=host, port=port, device_type=vendor, unit_code="BENCH", role="access",
                          username="netops", password="Sim-Passw0rd!", timeout=60)
                   for name, (vendor, (host, port)) in addresses.items()]
        durations: list[float] = []
        last = [time.monotonic()]

        def progress(device: Device, tables: DeviceTables | None, error: str | None) -> None:
            durations.append(time.monotonic() - last[0])
            last[0] = time.monotonic()
            if error:
                print(f"  {device.name}: {error}", file=sys.stderr)

        # The baseline, in the same run: one session at a time, one device of each vendor, three rounds. The
        # ideal for W workers is then ceil(N / W) such sessions back to back: perfect scaling of a real session.
        collector = NetmikoCollector(conn_timeout=60)
        singles: list[float] = []
        for _ in range(3):
            for vendor in VENDORS:
                device = next(d for d in devices if d.device_type == vendor)
                t0 = time.monotonic()
                collector.collect(device)
                singles.append(time.monotonic() - t0)
        single = statistics.median(singles)
        cpu_start, started = time.process_time(), time.monotonic()
        results = collect_all(devices, NetmikoCollector(conn_timeout=60), max_workers=args.workers,
                              on_result=progress)
        wall = time.monotonic() - started
        client_cpu = time.process_time() - cpu_start
        parent.send("done")
        server_cpu, lines = parent.recv()
    finally:
        server.join(timeout=60)
        if server.is_alive():
            server.kill()

    ok = sum(isinstance(result, DeviceTables) for result in results.values())
    per_vendor = {vendor: Counter(lines[d.name] for d in devices if d.device_type == vendor) for vendor in VENDORS}
    mean_lines = statistics.fmean(lines.values())
    per_device = mean_lines * args.latency
    ideal = math.ceil(args.devices / args.workers) * per_device
    measured_ideal = math.ceil(args.devices / args.workers) * single
    cpu_per_device = (client_cpu + server_cpu) / args.devices
    cores = os.cpu_count() or 1
    print(f"devices {args.devices} ({ok} collected, {args.devices - ok} failed), workers {args.workers}, "
          f"latency {args.latency * 1000:.0f} ms/line, {args.rows}+{args.rows} rows each")
    for vendor, counts in per_vendor.items():
        print(f"  lines netmiko sent per session, {vendor}: {dict(counts)}")
    print(f"wall time            {wall:8.2f} s")
    print(f"ideal (latency only) {ideal:8.2f} s  = ceil({args.devices}/{args.workers}) x {mean_lines:.2f} lines x "
          f"{args.latency * 1000:.0f} ms")
    print(f"one session alone    {single:8.2f} s  (median of {len(singles)}, one device of each vendor, same run)")
    print(f"ideal (sessions)     {measured_ideal:8.2f} s  = ceil({args.devices}/{args.workers}) x {single:.2f} s")
    print(f"ratio to ideal       {wall / measured_ideal:8.2f}    (target <= 1.3)")
    print(f"ratio to latency only{wall / ideal:8.2f}    (netmiko's own waits included)")
    print(f"throughput           {args.devices / wall:8.1f} devices/s")
    print(f"CPU, netmiko side    {client_cpu:8.2f} s  ({client_cpu / args.devices * 1000:.1f} ms/device)")
    print(f"CPU, simulator side  {server_cpu:8.2f} s  ({server_cpu / args.devices * 1000:.1f} ms/device)")
    print(f"CPU floor on {cores} cores {args.devices * cpu_per_device / cores:8.2f} s  "
          f"(best wall time if CPU were the only limit)")


if __name__ == "__main__":
    main()
