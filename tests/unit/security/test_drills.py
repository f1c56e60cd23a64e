"""The drill's checklist on the drill's own timeline, and the phase gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from cloudctl.core.audit import list_audit
from cloudctl.core.errors import Conflict
from cloudctl.core.models import utcnow
from cloudctl.security.models import DrillPhase, ItemStatus
from cloudctl.security.service import drills
from tests.factories import ADMIN, build_mini_city

T0 = datetime(2027, 7, 1, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("lead_days", [60, 21, 20, 14, 6, 1, 0.01])
def test_nothing_is_due_before_its_phase_can_have_started(lead_days: float) -> None:
    items = drills.template().items
    starts, ends = T0, T0 + timedelta(days=14)
    created = starts - timedelta(days=lead_days)
    due = drills.place(items, created_at=created, starts_at=starts, ends_at=ends)
    for item, at in zip(items, due, strict=True):
        opens = drills.phase_opens(item.phase, created_at=created, starts_at=starts, ends_at=ends)
        assert at > opens, (item.key, at, opens)
        if item.phase in drills.BEFORE_START:
            assert at <= starts
    # The order within the preparation is kept when it is compressed.
    before = [(item.days, at) for item, at in zip(items, due, strict=True) if item.phase in drills.BEFORE_START]
    assert [at for _, at in sorted(before, key=lambda d: d[0])] == sorted(at for _, at in before)
    by_key = dict(zip((i.key for i in items), due, strict=True))
    # The summary report is due days after the end, never in the middle of the drill.
    assert by_key["summary-report"] == ends + timedelta(days=5)
    assert by_key["daily-reports"] == ends


def test_a_template_item_off_its_phase_is_refused() -> None:
    with pytest.raises(ValueError, match="after the drill's end"):
        drills.TemplateItem(key="summary", title="总结报告", phase=DrillPhase.SUMMARY, days=-1)
    with pytest.raises(ValueError, match="by the drill's start"):
        drills.TemplateItem(key="assets", title="资产梳理", phase=DrillPhase.PREPARE, days=3)


def test_a_drill_two_weeks_ahead_shows_nothing_overdue(session: Session) -> None:
    build_mini_city(session)
    now = utcnow()
    drill = drills.create_drill(session, ADMIN, drills.DrillCreate(
        name="2027 护网行动", organiser="市委网信办", starts_at=now + timedelta(days=14),
        ends_at=now + timedelta(days=28), units=["990100-D01", "990100-D02"]))
    rows = drills.progress(session, ADMIN, drill.id)
    assert rows
    assert sum(r.overdue for r in rows) == 0
    items = drills.list_items(session, ADMIN, drill.id)
    assert all(i.due_at > now for i in items)
    # A day later the first preparation items (20 days' lead asked, 14 given) are due; nothing of the watch.
    later = drills.progress(session, ADMIN, drill.id, by="phase", now=now + timedelta(days=1, hours=1))
    assert [(r.phase, r.overdue > 0) for r in later] == [("prepare", True), ("self_check", False),
                                                        ("on_duty", False), ("summary", False)]
    # Items listed in the drill's order of phases.
    assert [i.phase for i in items if i.unit_code == "990100-D01"] == sorted(
        (i.phase for i in items if i.unit_code == "990100-D01"), key=drills.PHASES.index)


def test_a_phase_moves_on_only_when_its_required_items_are_settled(session: Session) -> None:
    build_mini_city(session)
    now = utcnow()
    drill = drills.create_drill(session, ADMIN, drills.DrillCreate(
        name="2027 护网行动", organiser="市委网信办", starts_at=now + timedelta(days=30),
        ends_at=now + timedelta(days=44), units=["990100-D01"]))
    prepare = [i for i in drills.list_items(session, ADMIN, drill.id) if i.phase is DrillPhase.PREPARE]
    assert len(prepare) == 4
    drills.update_item(session, ADMIN, drill.id, prepare[0].id, ItemStatus.DONE, evidence="资产台账 v3")
    with pytest.raises(Conflict, match="3 required prepare"):
        drills.advance_phase(session, ADMIN, drill.id, DrillPhase.SELF_CHECK)
    for item in prepare[1:3]:
        drills.update_item(session, ADMIN, drill.id, item.id, ItemStatus.DONE, evidence="已完成")
    drills.waive_item(session, ADMIN, drill.id, prepare[3].id, drills.Waiver(reason="值班表由市网信办统一编排"))
    assert drills.advance_phase(session, ADMIN, drill.id, DrillPhase.SELF_CHECK).phase is DrillPhase.SELF_CHECK
    # A non-mandatory item never holds a phase; a required one in progress does.
    self_check = [i for i in drills.list_items(session, ADMIN, drill.id) if i.phase is DrillPhase.SELF_CHECK]
    for item in self_check:
        if item.mandatory:
            drills.update_item(session, ADMIN, drill.id, item.id, ItemStatus.DONE, evidence="已完成")
    assert drills.advance_phase(session, ADMIN, drill.id, DrillPhase.ON_DUTY).phase is DrillPhase.ON_DUTY
    entries, _ = list_audit(session, ADMIN, entity="drill_item", entity_id=str(prepare[3].id))
    waiver = next(e for e in entries if e.action == "waive")
    assert waiver.after is not None
    assert waiver.after["reason"] == "值班表由市网信办统一编排"
