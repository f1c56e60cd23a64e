"""A reclaim analysis split by cloud and unit subtree into parts gives the campaign an unsplit one gives: the same
recommendations (evidence, savings, statuses) and the same counts, on the demo city."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.compute.models import Server
from cloudctl.core.models import utcnow
from cloudctl.demo.seed import seed_demo
from cloudctl.reclaim import service
from cloudctl.reclaim.models import Recommendation
from tests.factories import ADMIN


def _recommendations(session: Session) -> list[tuple[Any, ...]]:
    session.flush()
    # Volumes' recommendations have no server: ordered by their own ids too.
    query = select(Recommendation).order_by(Recommendation.server_id, Recommendation.volume_id,
                                            Recommendation.volume_snapshot_id, Recommendation.kind)
    return [(r.server_id, r.volume_id, r.volume_snapshot_id, r.kind.value, r.status.value, r.unit_id,
             r.current_flavor, r.recommended_flavor, r.reclaim_vcpus, r.reclaim_ram_mb, r.reclaim_disk_gb,
             float(r.saving_month), r.evidence,
             (r.closed_reason or "").split(" ", 2)[-1])  # the reason names its campaign; the rest must agree
            for r in session.scalars(query)]


def test_sharded_analysis_equals_the_unsharded_one_on_the_demo_city(session: Session) -> None:
    seed_demo(session, ADMIN, seed=2026)
    as_of = utcnow().date() - timedelta(days=1)
    live = session.scalar(select(func.count()).select_from(Server).where(service._LIVE)) or 0
    assert live > 100

    whole = session.begin_nested()
    campaign = service.analyze(session, ADMIN, as_of=as_of)
    expected, expected_counts = _recommendations(session), dict(campaign.counts)
    whole.rollback()
    assert expected
    assert sum(expected_counts[k] for k in ("created", "updated", "reopened")) > 0

    parts = service.analysis_shards(session, live // 4)
    assert len(parts) >= 4
    # Every live server in exactly one part: a cloud's units, none in two parts of that cloud.
    seen = Counter((part["cloud"], unit) for part in parts for unit in part["units"])
    assert set(seen.values()) == {1}
    campaign = service.start_campaign(session, ADMIN, as_of=as_of)
    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(service.analyze_part(session, ADMIN, campaign, cloud_id=part["cloud"], unit_ids=part["units"]))
    service.finish_campaign(session, ADMIN, campaign, counts)

    assert _recommendations(session) == expected
    assert campaign.counts == expected_counts
    # The servers' verdicts; volumes and snapshots are judged once per campaign, in finish_campaign, and counted apart.
    verdicts = {k: v for k, v in expected_counts.items() if k not in ("created", "updated", "reopened", "dismissed")
                and not k.startswith(("volumes_", "snapshots_"))}
    assert sum(verdicts.values()) == live
