"""The compliance check over the database, on both databases: what rule 11 calls "unused" it has watched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloudctl.core.models import utcnow
from cloudctl.extranet.models import Prefix, Violation, ViolationStatus, Zone
from cloudctl.extranet.schemas import ApplicationCreate, PrefixCreate
from cloudctl.extranet.service import compliance, ipam
from tests.factories import ADMIN, MiniCity, build_mini_city, watched_plan


@pytest.fixture
def city(session: Session) -> MiniCity:
    """A plan with a pool, and 市公安局's switch watched for sixty days (one terminal on its own block)."""
    city = build_mini_city(session)
    watched_plan(session, terminal="10.65.1.20")
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.65.1.0/24", zone=Zone.PUBLIC,
                                                    unit_code="990100-D01", vlan=10))
    return city


def _approved_block(session: Session, city: MiniCity) -> Prefix:
    app = ipam.submit_application(session, city.principals["dept"], ApplicationCreate.model_validate(
        {"zone": "public", "prefix_length": 28, "purpose": "视频监控终端接入",
         "commitment": {"signer": "张伟", "accepted": True}}))
    ipam.approve_application(session, ADMIN, app.id)
    return session.scalars(select(Prefix).where(Prefix.application_id == app.id)).one()


def _quiet(session: Session) -> dict[str, Violation]:
    return {v.subject: v for v in session.scalars(select(Violation).where(
        Violation.rule == 11, Violation.status == ViolationStatus.OPEN))}


@pytest.mark.parametrize(("allocated_days_ago", "flagged"), [(0, False), (29, False), (31, True)])
def test_unused_is_counted_from_the_allocation(session: Session, city: MiniCity, allocated_days_ago: int,
                                               flagged: bool) -> None:
    block = _approved_block(session, city)
    if allocated_days_ago:
        session.execute(update(Prefix).where(Prefix.id == block.id).values(
            created_at=utcnow() - timedelta(days=allocated_days_ago)))
    compliance.check(session, ADMIN)
    found = _quiet(session)
    assert (block.prefix in found) is flagged
    assert "10.65.1.0/24" not in found  # in use: its terminal answers
    if flagged:
        evidence = found[block.prefix].evidence
        assert evidence["reasons"] == ["quiet"]
        assert evidence["prefixes"][0]["unused_since"] <= (utcnow() - timedelta(days=30)).timestamp()


def test_unused_is_counted_from_the_start_of_observation(session: Session, city: MiniCity) -> None:
    block = _approved_block(session, city)
    session.execute(update(Prefix).where(Prefix.id == block.id).values(created_at=utcnow() - timedelta(days=400)))
    # The switch was first read ten days ago: a block nobody could have seen before then is not yet unused.
    from cloudctl.extranet.models import ArpObservation

    session.execute(update(ArpObservation).values(first_seen=utcnow() - timedelta(days=10)))
    compliance.check(session, ADMIN)
    assert block.prefix not in _quiet(session)
