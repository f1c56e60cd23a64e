"""A collection of more devices than a shard holds is split into shard jobs under one parent: the counts and the
audit row are the whole collection's, each device collected once."""

from __future__ import annotations

from sqlalchemy import func, select
from typer.testing import CliRunner

from cloudctl.core.audit import AuditEntry
from cloudctl.core.config import get_settings, reset_settings
from cloudctl.core.db import session_scope
from cloudctl.core.jobs import Job, JobStatus
from cloudctl.extranet.models import NetworkDevice
from cloudctl.extranet.service.collection import COLLECT_JOB, COLLECT_SHARD_JOB
from tests.cli.conftest import invoke


def test_a_large_collection_is_shared_out_in_shards(demo: CliRunner) -> None:
    reset_settings(get_settings().model_copy(update={"extranet_shard_devices": 500}))
    with session_scope() as session:
        devices = session.scalar(select(func.count()).select_from(NetworkDevice)) or 0
    assert devices > 1000
    out = invoke(demo, "extranet", "collect")
    assert f"of {devices} devices collected" in out
    with session_scope() as session:
        parent = session.scalar(select(Job).where(Job.kind == COLLECT_JOB).order_by(Job.id.desc()))
        assert parent is not None
        shards = list(session.scalars(select(Job).where(Job.parent_id == parent.id)))
        audits = list(session.scalars(select(AuditEntry).where(AuditEntry.entity == "extranet_devices",
                                                               AuditEntry.entity_id == str(parent.id))))
    assert parent.status is JobStatus.SUCCEEDED
    assert len(shards) == -(-devices // 500)
    assert {shard.kind for shard in shards} == {COLLECT_SHARD_JOB}
    assert sorted(name for shard in shards for name in shard.params["limit"]) == sorted(
        {name for shard in shards for name in shard.params["limit"]})  # each device in one shard only
    assert sum(len(shard.params["limit"]) for shard in shards) == devices
    assert parent.result is not None
    assert (parent.result["devices"], parent.result["shards"]) == (devices, len(shards))
    assert parent.result["succeeded"] + parent.result["failed"] == devices
    assert f"{parent.result['succeeded']} of {devices} devices collected" in out
    assert len(audits) == 1
