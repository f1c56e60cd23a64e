"""`cloudctl reclaim analyze` of more servers than a shard holds runs as shard jobs under one parent: one campaign,
its counts the whole city's, one audit row, every recommendation as an unsplit analysis would leave it."""

from __future__ import annotations

from sqlalchemy import func, select
from typer.testing import CliRunner

from cloudctl.compute.models import Server
from cloudctl.core.audit import AuditEntry
from cloudctl.core.config import get_settings, reset_settings
from cloudctl.core.db import session_scope
from cloudctl.core.jobs import Job, JobStatus
from cloudctl.reclaim import service
from cloudctl.reclaim.models import ReclaimCampaign
from tests.cli.conftest import invoke


def test_a_large_analysis_is_shared_out_in_shards(demo: CliRunner) -> None:
    with session_scope() as session:
        live = session.scalar(select(func.count()).select_from(Server).where(service._LIVE)) or 0
    reset_settings(get_settings().model_copy(update={"reclaim_shard_servers": live // 3}))
    invoke(demo, "reclaim", "analyze")
    with session_scope() as session:
        parent = session.scalar(select(Job).where(Job.kind == service.ANALYZE_JOB).order_by(Job.id.desc()))
        assert parent is not None
        shards = list(session.scalars(select(Job).where(Job.parent_id == parent.id)))
        campaigns = list(session.scalars(select(ReclaimCampaign).where(ReclaimCampaign.job_id == parent.id)))
        audits = list(session.scalars(select(AuditEntry).where(AuditEntry.entity == "reclaim_campaign",
                                                               AuditEntry.action == "analyze")))
    assert parent.status is JobStatus.SUCCEEDED
    assert len(shards) >= 3
    assert {shard.kind for shard in shards} == {service.ANALYZE_SHARD_JOB}
    assert {shard.status for shard in shards} == {JobStatus.SUCCEEDED}
    assert len(campaigns) == 1
    campaign = campaigns[0]
    assert campaign.finished_at is not None
    assert parent.result is not None
    assert (parent.result["campaign"], parent.result["shards"]) == (campaign.id, len(shards))
    # The servers' verdicts; volumes and snapshots are judged once per campaign and counted apart.
    verdicts = {k: v for k, v in campaign.counts.items() if k not in ("created", "updated", "reopened", "dismissed")
                and not k.startswith(("volumes_", "snapshots_"))}
    assert sum(verdicts.values()) == live
    assert [a.entity_id for a in audits].count(str(campaign.id)) == 1
