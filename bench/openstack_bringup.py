"""Time to a ready OpenStack control plane (first and cached run), and 100 servers to ACTIVE through the provider.

    .venv/bin/python bench/openstack_bringup.py [--fresh] [--purge-packages] [--servers 100] [--workers 4]

Uses tests/integration/openstack/bringup.py. Stops a control plane already up first. ``--fresh``
deletes the cached OpenStack virtualenv so the first bring-up builds it from PyPI;
``--purge-packages`` also purges the Debian packages (rabbitmq-server, mariadb-server and what
they pulled in), so the first bring-up is from nothing. Then: bring-up #1, down, bring-up #2
(cached), then N servers created through ``OpenStackProvider.create_server`` (``--workers``
threads) in a unit project with unlimited quota, timed until every one is ACTIVE; then they
are deleted and the control plane is stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds a requests.py of its own: off the path, or it shadows the requests library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from tests.integration.openstack import bringup  # noqa: E402


def timed_up() -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    info = bringup.up()
    return time.monotonic() - started, info


def servers_to_active(info: dict[str, object], count: int, workers: int) -> tuple[float, float, float]:
    import openstack

    from cloudctl.compute.providers.base import QuotaLimits, ServerSpec
    from cloudctl.compute.providers.openstack import OpenStackProvider

    os.environ["OS_CLIENT_CONFIG_FILE"] = str(info["clouds_yaml"])
    provider = OpenStackProvider.from_cloud(str(info["cloud"]))
    admin = openstack.connect(cloud=str(info["cloud"]))
    project = provider.ensure_project(f"BENCH{uuid.uuid4().hex[:4]}", "bench")
    # ensure_project gives the provider's user no role in the project (see the contract tests): grant it.
    admin.identity.assign_project_role_to_user(project, admin.current_user_id,
                                               admin.identity.find_role("member", ignore_missing=False))
    provider.set_quota(project, QuotaLimits())  # unlimited
    run = uuid.uuid4().hex[:8]
    specs = [ServerSpec(name=f"bench-{i}", flavor="c1m512", tag=f"cloudctl:b{run}:i{i}:0",
                        image=str(info["image_id"])) for i in range(count)]
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        ids = [s.provider_id for s in pool.map(lambda spec: provider.create_server(project, spec), specs)]
    submitted = time.monotonic() - started
    while True:
        statuses = {s.provider_id: s.status for s in provider.list_servers(project)}
        errors = [i for i in ids if statuses.get(i) == "ERROR"]
        if errors:
            raise RuntimeError(f"{len(errors)} servers went to ERROR, e.g. {provider.get_server(errors[0]).fault}")
        if all(statuses.get(i) == "ACTIVE" for i in ids):
            break
        time.sleep(0.5)
    active = time.monotonic() - started
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(provider.delete_server, ids))
    while provider.list_servers(project):
        time.sleep(0.5)
    return submitted, active, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="rebuild the OpenStack virtualenv")
    parser.add_argument("--purge-packages", action="store_true", help="purge the Debian packages first")
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    bringup.down()
    if args.purge_packages:
        subprocess.run(["apt-get", "purge", "-y", "-q", "--autoremove", *bringup.DEBIAN_PACKAGES],
                       check=True, capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if args.fresh or args.purge_packages:
        shutil.rmtree(bringup.VENV, ignore_errors=True)
    first, _ = timed_up()
    bringup.down()
    cached, info = timed_up()
    try:
        submitted, active, deleted = servers_to_active(info, args.servers, args.workers)
    finally:
        bringup.down()
    label = "from nothing" if args.purge_packages else "fresh virtualenv" if args.fresh else "as found"
    print(f"bring-up #1 ({label}): {first:7.1f} s")
    print(f"bring-up #2 (cached):{'':{max(0, len(label) - 6)}} {cached:7.1f} s")
    print(f"{args.servers} servers submitted ({args.workers} threads): {submitted:7.1f} s")
    print(f"{args.servers} servers ACTIVE:   {active:7.1f} s")
    print(f"{args.servers} servers deleted:  {deleted:7.1f} s")


if __name__ == "__main__":
    main()
