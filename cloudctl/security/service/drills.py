"""Attack-defence drills (护网): a drill instantiates the checklist template for every unit in scope; units
move their items waiting → in progress → done (with evidence) or cancelled; the security team verifies;
progress is counted per unit and phase; the drill moves through prepare → self-check → on duty → summary.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from importlib import resources
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, StringConstraints, model_validator
from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.display import local_time
from cloudctl.core.errors import Conflict, InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.core.text import NoControl
from cloudctl.org.models import Unit, UnitKind
from cloudctl.org.service import get_unit, under
from cloudctl.security.models import Drill, DrillItem, DrillPhase, ItemStatus

__all__ = ["DrillCreate", "ProgressRow", "advance_phase", "create_drill", "get_drill", "late_items", "list_drills",
           "list_items", "progress", "summary_html", "template", "update_item", "verify_item"]

PHASES = list(DrillPhase)
MOVES = {ItemStatus.WAITING: (ItemStatus.IN_PROGRESS, ItemStatus.DONE, ItemStatus.CANCELLED),
         ItemStatus.IN_PROGRESS: (ItemStatus.DONE, ItemStatus.CANCELLED, ItemStatus.WAITING),
         ItemStatus.DONE: (ItemStatus.IN_PROGRESS,), ItemStatus.CANCELLED: (ItemStatus.WAITING,)}


def late_items(now: datetime) -> ColumnElement[bool]:
    """Items past their due time that are neither done nor cancelled."""
    return (DrillItem.due_at < now) & DrillItem.status.not_in((ItemStatus.DONE, ItemStatus.CANCELLED))


def template() -> list[dict[str, Any]]:
    """The checklist template shipped with cloudctl (``security/data/drill-checklist.yml``)."""
    text = resources.files("cloudctl.security").joinpath("data/drill-checklist.yml").read_text(encoding="utf-8")
    items: list[dict[str, Any]] = yaml.safe_load(text)["items"]
    return items


class DrillCreate(BaseModel):
    name: Annotated[str, StringConstraints(min_length=2, max_length=128), NoControl]
    organiser: Annotated[str, StringConstraints(min_length=2, max_length=128), NoControl]
    starts_at: datetime
    ends_at: datetime
    units: list[str] = Field(default_factory=list, description="unit codes; default: every department and county")

    @model_validator(mode="after")
    def _period(self) -> DrillCreate:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("give times with their zone (…+08:00)")
        if self.ends_at <= self.starts_at:
            raise ValueError("the drill ends before it starts")
        return self


def create_drill(session: Session, principal: Principal, data: DrillCreate) -> Drill:
    authorize(principal, "security.drill:write")
    if data.units:
        units = [get_unit(session, principal, code, field_name="units") for code in data.units]
    else:
        units = list(session.scalars(select(Unit).where(Unit.kind.in_((UnitKind.DEPARTMENT, UnitKind.COUNTY)))
                                     .order_by(Unit.code)))
    if not units:
        raise InvalidInput("a drill needs units in scope", field="units")
    drill = Drill(name=data.name, organiser=data.organiser, starts_at=data.starts_at, ends_at=data.ends_at,
                  phase=DrillPhase.PREPARE, created_by=principal.actor)
    session.add(drill)
    session.flush()
    items = template()
    for unit in units:
        for position, item in enumerate(items):
            session.add(DrillItem(drill_id=drill.id, unit_id=unit.id, key=item["key"], title=item["title"],
                                  phase=DrillPhase(item["phase"]), position=position, mandatory=bool(item["mandatory"]),
                                  due_at=data.starts_at + timedelta(days=int(item["due"])),
                                  status=ItemStatus.WAITING))
    session.flush()
    audit.record(session, principal, action="create", entity="drill", entity_id=drill.id,
                 after={"name": drill.name, "units": len(units), "items": len(items) * len(units)})
    return drill


def list_drills(session: Session, principal: Principal) -> list[Drill]:
    """Every drill, newest first: a drill is city-wide, so a unit sees them all (and only its own items)."""
    authorize(principal, "security.drill:read")
    return list(session.scalars(select(Drill).order_by(Drill.starts_at.desc(), Drill.id.desc())))


def get_drill(session: Session, principal: Principal, drill_id: int) -> Drill:
    authorize(principal, "security.drill:read")
    return read.one(session, select(Drill).where(Drill.id == drill_id), missing=f"no drill with id {drill_id}",
                    field="drill")


def advance_phase(session: Session, principal: Principal, drill_id: int, to: DrillPhase) -> Drill:
    """Phases only move forward, one at a time."""
    authorize(principal, "security.drill:write")
    drill = get_drill(session, principal, drill_id)
    if PHASES.index(to) != PHASES.index(drill.phase) + 1:
        raise Conflict(f"the drill is in {drill.phase.value}; the next phase is "
                       f"{PHASES[PHASES.index(drill.phase) + 1].value if drill.phase is not PHASES[-1] else 'none'}",
                       field="phase")
    before = drill.phase.value
    drill.phase = to
    audit.record(session, principal, action="phase", entity="drill", entity_id=drill.id, before={"phase": before},
                 after={"phase": to.value})
    return drill


def _items(principal: Principal, drill_id: int) -> Select[DrillItem]:
    return read.within(select(DrillItem).join(DrillItem.unit).where(DrillItem.drill_id == drill_id), principal,
                       unit=DrillItem.unit_id)


def _item(session: Session, principal: Principal, drill_id: int, item_id: int) -> DrillItem:
    return read.one(session, _items(principal, drill_id).where(DrillItem.id == item_id),
                    missing=f"no item {item_id} in drill {drill_id}", field="item")


def list_items(session: Session, principal: Principal, drill_id: int, *, unit: str | None = None) -> list[DrillItem]:
    get_drill(session, principal, drill_id)
    query = _items(principal, drill_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, DrillItem.unit_id))
    return list(session.scalars(query.order_by(Unit.code, DrillItem.position, DrillItem.id)))


def update_item(session: Session, principal: Principal, drill_id: int, item_id: int, status: ItemStatus,
                evidence: str | None = None) -> DrillItem:
    """A unit moves its own item on; done needs the evidence (截图、报告、记录)."""
    authorize(principal, "security.drill:item")
    get_drill(session, principal, drill_id)
    item = _item(session, principal, drill_id, item_id)
    if status not in MOVES[item.status]:
        raise Conflict(f"an item {item.status.value} does not become {status.value}", field="status")
    if status is ItemStatus.DONE and not (evidence and evidence.strip()):
        raise InvalidInput("say what shows it is done", field="evidence")
    if status is ItemStatus.CANCELLED and item.mandatory:
        raise Conflict(f"{item.title} is mandatory and cannot be cancelled", field="status")
    before = item.status.value
    item.status, item.updated_by = status, principal.actor
    if evidence is not None:
        item.evidence = evidence
    item.done_at = utcnow() if status is ItemStatus.DONE else None
    item.verifier = item.verified_at = None  # a changed item is verified again
    audit.record(session, principal, action="item", entity="drill_item", entity_id=item.id, before={"status": before},
                 after={"status": status.value, "evidence": evidence}, unit_id=item.unit_id)
    return item


def verify_item(session: Session, principal: Principal, drill_id: int, item_id: int) -> DrillItem:
    """The security team confirms a done item (核验)."""
    authorize(principal, "security.drill:write")
    item = _item(session, principal, drill_id, item_id)
    if item.status is not ItemStatus.DONE:
        raise Conflict("only a done item is verified", field="status")
    item.verifier, item.verified_at = principal.actor, utcnow()
    audit.record(session, principal, action="verify", entity="drill_item", entity_id=item.id,
                 after={"verifier": item.verifier}, unit_id=item.unit_id)
    return item


class ProgressRow(BaseModel):
    unit_code: str
    unit_name: str
    phase: str
    total: int
    done: int
    overdue: int
    ratio: float


def progress(session: Session, principal: Principal, drill_id: int) -> list[ProgressRow]:
    """Per unit and phase: items (cancelled ones left out), done, and overdue (past due, not done)."""
    get_drill(session, principal, drill_id)
    now = utcnow()
    query = (select(Unit.code, Unit.name, DrillItem.phase, func.count(),
                    func.sum(case((DrillItem.status == ItemStatus.DONE, 1), else_=0)),
                    func.sum(case((late_items(now), 1), else_=0)))
             .join(Unit, Unit.id == DrillItem.unit_id)
             .where(DrillItem.drill_id == drill_id, DrillItem.status != ItemStatus.CANCELLED)
             .group_by(Unit.code, Unit.name, DrillItem.phase).order_by(Unit.code, DrillItem.phase))
    query = read.within(query, principal, unit=DrillItem.unit_id)
    rows = []
    for code, name, phase, total, done, overdue in session.execute(query):
        rows.append(ProgressRow(unit_code=code, unit_name=name, phase=phase.value, total=int(total),
                                done=int(done or 0), overdue=int(overdue or 0),
                                ratio=round(int(done or 0) / int(total), 4) if total else 1.0))
    return rows


def summary_html(session: Session, principal: Principal, drill_id: int) -> str:
    """The drill's summary report: progress per unit and phase, overdue items named."""
    drill = get_drill(session, principal, drill_id)
    rows = progress(session, principal, drill_id)
    late = [i for i in list_items(session, principal, drill_id)
            if i.status is not ItemStatus.DONE and i.status is not ItemStatus.CANCELLED and i.due_at < utcnow()]
    body = "".join(f"<tr><td>{html.escape(r.unit_code)}</td><td>{html.escape(r.unit_name)}</td>"
                   f"<td>{DrillPhase(r.phase).label}</td><td>{r.done} / {r.total}</td><td>{r.ratio:.0%}</td>"
                   f"<td>{r.overdue}</td></tr>" for r in rows)
    overdue = "".join(f"<li>{html.escape(i.unit_code)}：{html.escape(i.title)}"
                      f"（应于 {local_time(i.due_at)} 前完成）</li>" for i in late[:200])
    title = html.escape(drill.name)
    period = f"{local_time(drill.starts_at)} 至 {local_time(drill.ends_at)}"
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title} 总结</title>
<style>body{{font-family:"Microsoft YaHei","WenQuanYi Micro Hei",sans-serif;max-width:1000px;margin:2em auto}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:4px 6px}}</style></head><body>
<h1>{title} 护网总结</h1>
<p>组织单位：{html.escape(drill.organiser)} · {period} · 当前阶段：{drill.phase.label}</p>
<h2>各单位进度</h2><table><tr><th>单位代码</th><th>单位</th><th>阶段</th><th>完成</th><th>完成率</th><th>超期</th></tr>
{body}</table><h2>超期未完成事项</h2><ul>{overdue or "<li>无</li>"}</ul></body></html>
"""
