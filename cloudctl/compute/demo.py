"""The demo city's government cloud: four provider clouds managed as one, with department quotas.

Sized on the real city: the city cloud centre has 32 compute nodes offering about
6,045 vCPU (with 1.5× CPU over-commit) and 20,000 GB of RAM; two carrier clouds and a
container cloud stand beside it (simulator-backed in the demo).
"""

from __future__ import annotations

import random
from collections import Counter

from sqlalchemy.orm import Session

from cloudctl.compute import service
from cloudctl.compute.models import CloudKind
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.simulator import SimulatorProvider
from cloudctl.compute.schemas import CloudCreate, QuotaSet
from cloudctl.core.auth import Principal
from cloudctl.demo.city import DemoCity
from cloudctl.demo.seed import demo_step

GB = 1024

# name, display name, hosts: (count, threads, RAM GB), CPU over-commit
CLOUDS: tuple[tuple[str, str, tuple[tuple[int, int, int], ...], float], ...] = (
    # 30 × 126 + 2 × 125 = 4,030 threads × 1.5 = 6,045 vCPU; (629 − 4 reserved) × 32 = 20,000 GB.
    ("city-cloud", "市政务云中心", ((30, 126, 629), (2, 125, 629)), 1.5),
    ("unicom-cloud", "联通政务云", ((8, 64, 516),), 2.0),
    ("mobile-cloud", "移动政务云", ((6, 64, 516),), 2.0),
    ("container-cloud", "政务容器云", ((4, 96, 388),), 1.0),
)

FLAVORS = (("c1m2", 1, 2), ("c2m4", 2, 4), ("c2m8", 2, 8), ("c4m8", 4, 8), ("c4m16", 4, 16), ("c8m16", 8, 16),
           ("c8m32", 8, 32), ("c16m32", 16, 32), ("c16m64", 16, 64), ("c32m64", 32, 64))


@demo_step("compute")
def seed_compute(session: Session, principal: Principal, city: DemoCity, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    hosts = 0
    for name, display_name, groups, cpu_ratio in CLOUDS:
        cloud = service.create_cloud(session, principal, CloudCreate(
            name=name, display_name=display_name, kind=CloudKind.SIMULATOR, region="RegionOne",
            cpu_allocation_ratio=cpu_ratio, ram_allocation_ratio=1.0, default_image="kylin-v10-sp3",
            default_network="gov-public"))
        provider = provider_for(cloud)
        assert isinstance(provider, SimulatorProvider)
        provider.reset()
        for group, (count, threads, ram_gb) in enumerate(groups):
            for i in range(count):
                provider.add_host(f"{name}-cn{group}{i + 1:02d}", vcpus=threads, ram_mb=ram_gb * GB, disk_gb=7680)
                hosts += 1
        for flavor, vcpus, ram_gb in FLAVORS:
            provider.add_flavor(flavor, vcpus=vcpus, ram_mb=ram_gb * GB, disk_gb=40 if vcpus < 8 else 100)
        service.sync_flavors(session, principal, name)

    # Every department holds a quota on the city cloud sized to its systems; a few also on a carrier cloud.
    systems = Counter(s.unit_code for s in city.systems)
    quotas = 0
    for code in city.departments:
        n = systems[code]
        service.set_quota(session, principal, code, "city-cloud", QuotaSet(
            vcpus=48 * n + rng.choice((0, 16, 32)), ram_gb=128 * n + rng.choice((0, 64)), disk_gb=2000 * n,
            instances=12 * n))
        quotas += 1
        if rng.random() < 0.2:
            carrier = rng.choice(("unicom-cloud", "mobile-cloud"))
            service.set_quota(session, principal, code, carrier, QuotaSet(vcpus=32, ram_gb=64, disk_gb=1000,
                                                                          instances=8))
            quotas += 1
    return {"clouds": len(CLOUDS), "hosts": hosts, "quotas": quotas}
