"""The demo city's utilisation: a workload planted on every city-cloud VM, and 30 days of its telemetry.

What is planted is what a reclaim campaign must find, and nothing else:
- **zombies**: VMs stopped 35–200 days ago (and a few stopped 15–28 days ago, flagged but not yet zombies);
- **idle**: running VMs whose guests do next to nothing (a few of them launched days ago: too young to judge);
- **oversized**: a flat light load on a big flavor that a smaller one of the catalogue would carry;
- everything else busy around the clock, busy in office hours, or running a nightly batch job,
  sized so that no smaller flavor would carry it (memory high enough to rule out RAM-only savings).

Systems that serve the public directly (办事、预约、热线…) are marked user-facing, so the analysis
sizes them with more headroom.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute.models import Cloud, Server
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.simulator import SimulatorProvider, WorkloadPlan
from cloudctl.core.auth import Principal
from cloudctl.core.models import utcnow
from cloudctl.demo.city import DemoCity
from cloudctl.demo.seed import demo_step
from cloudctl.org.models import BusinessSystem
from cloudctl.reclaim import service

__all__ = ["HISTORY_DAYS", "OVERSIZABLE_FLAVORS", "USER_FACING_WORDS", "seed_reclaim"]

HISTORY_DAYS = 30
# Words in a system's name that say it serves the public directly.
USER_FACING_WORDS = ("服务", "办理", "预约", "报名", "热线", "发布", "公共", "接处警", "急救", "登记", "网签", "交易",
                     "门户", "便民")
# Flavors with a smaller, cheaper sibling in the demo catalogue that keeps the root disk (40 GB below
# 8 vCPU, 100 GB from 8): the flavors an oversized VM is planted on.
OVERSIZABLE_FLAVORS = ("c4m8", "c4m16", "c8m32", "c16m32", "c16m64")


@demo_step("reclaim")
def seed_reclaim(session: Session, principal: Principal, city: DemoCity, seed: int) -> dict[str, int]:
    rng = random.Random(seed + 4)
    for system in session.scalars(select(BusinessSystem)):
        system.user_facing = any(word in system.name for word in USER_FACING_WORDS)
    cloud = session.scalar(select(Cloud).where(Cloud.name == "city-cloud"))
    assert cloud is not None
    provider = provider_for(cloud)
    assert isinstance(provider, SimulatorProvider)
    now = utcnow()
    counts = {"zombie": 0, "stopped": 0, "idle": 0, "young": 0, "oversized": 0, "busy": 0, "office": 0,
              "batch": 0, "no_memory_data": 0}
    servers = list(session.scalars(select(Server).where(Server.cloud_id == cloud.id, Server.status != "DELETED")
                                   .order_by(Server.id)))
    plans: list[WorkloadPlan] = []
    for server in servers:
        launched = server.launched_at or now - timedelta(days=365)
        if server.status == "SHUTOFF":
            roll = rng.random()
            stopped_days = rng.uniform(35, 200) if roll < 0.5 else rng.uniform(15, 28) if roll < 0.75 \
                else rng.uniform(2, 10)
            counts["zombie" if stopped_days >= 30 else "stopped" if stopped_days >= 14 else "office"] += 1
            server.status_since = now - timedelta(days=stopped_days)
            server.launched_at = min(launched, server.status_since - timedelta(days=rng.randint(30, 400)))
            plans.append(WorkloadPlan(server.provider_id, "office", cpu=rng.uniform(0.5, 0.8),
                                      mem=rng.uniform(0.6, 0.8), net=rng.uniform(2e5, 2e6), since=server.launched_at,
                                      until=server.status_since))
            continue
        roll = rng.random()
        if roll < 0.08:
            young = rng.random() < 0.15
            if young:
                server.launched_at = launched = now - timedelta(days=rng.uniform(4, 10))
            counts["young" if young else "idle"] += 1
            plans.append(WorkloadPlan(server.provider_id, "idle", cpu=rng.uniform(0.01, 0.03),
                                      mem=rng.uniform(0.1, 0.3), net=rng.uniform(100, 600), since=launched))
        elif roll < 0.20 and server.flavor in OVERSIZABLE_FLAVORS and launched < now - timedelta(days=35):
            # Old enough for the 30-day window the oversized rule reads.
            counts["oversized"] += 1
            plans.append(WorkloadPlan(server.provider_id, "steady", cpu=rng.uniform(0.05, 0.10),
                                      mem=rng.uniform(0.12, 0.20), net=rng.uniform(2e4, 2e5), since=launched))
        else:
            profile = rng.choices(("busy", "office", "batch"), weights=(4, 4, 2))[0]
            counts[profile] += 1
            # Memory unreported now and then (no guest agent): never a reason to downsize.
            mem = None if rng.random() < 0.05 else rng.uniform(0.62, 0.85)
            counts["no_memory_data"] += mem is None
            plans.append(WorkloadPlan(server.provider_id, profile, cpu=rng.uniform(0.6, 0.85), mem=mem,
                                      net=rng.uniform(2e5, 5e6), since=launched))
    provider.set_workloads(plans)
    session.flush()
    today = now.date()
    days = [today - timedelta(days=back) for back in range(HISTORY_DAYS, 0, -1)]
    summaries = service.collect_days(session, principal, days, cloud="city-cloud")["summaries"]
    # The first campaign, so the demo city opens with recommendations to look at.
    campaign = service.analyze(session, principal)
    return {**counts, "utilisation_days": HISTORY_DAYS, "utilisation_summaries": summaries,
            "recommendations": campaign.counts["created"]}
