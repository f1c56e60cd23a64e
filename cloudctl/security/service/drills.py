"""Attack-defence drills (护网): a drill instantiates the checklist template for every unit in scope; units
move their items waiting → in progress → done (with evidence) or cancelled; the security team verifies, and may
waive an item with a reason; progress is counted per unit and phase; the drill moves through prepare → self-check
→ on duty → summary, a phase only once its required items are done or waived.

Items sit on the drill's own timeline: preparation and self-inspection before the start, the watch during, the
summary after the end (see ``data/drill-templates/``). A drill created late compresses its preparation into the
time left, so nothing is due — let alone overdue — before its phase can have started.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, StringConstraints, model_validator
from sqlalchemy import ColumnElement, Select, case, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudctl.core import attachments, audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.errors import Conflict, InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.core.text import NoControl, NoControlMultiline
from cloudctl.org.models import Unit, UnitKind
from cloudctl.org.service import get_unit, under
from cloudctl.security.models import Drill, DrillItem, DrillPhase, DrillTemplate, ItemStatus

__all__ = ["PHASES", "DrillCreate", "ProgressRow", "TemplateCreate", "TemplateItem", "TemplatePublic", "Waiver",
           "add_item", "advance_phase", "create_drill", "create_template", "get_drill", "late_items", "list_drills",
           "list_items", "list_templates", "phase_opens", "place", "progress", "template",
           "update_item", "verify_item", "waive_item"]

PHASES = list(DrillPhase)
# Phases whose items fall before the drill's start, anchored on it.
BEFORE_START = (DrillPhase.PREPARE, DrillPhase.SELF_CHECK)
# A unit's moves; a waived item is settled by the security team's decision (audited) and stays so.
MOVES = {ItemStatus.WAITING: (ItemStatus.IN_PROGRESS, ItemStatus.DONE, ItemStatus.CANCELLED),
         ItemStatus.IN_PROGRESS: (ItemStatus.DONE, ItemStatus.CANCELLED, ItemStatus.WAITING),
         ItemStatus.DONE: (ItemStatus.IN_PROGRESS,), ItemStatus.CANCELLED: (ItemStatus.WAITING,),
         ItemStatus.WAIVED: ()}
SETTLED = (ItemStatus.DONE, ItemStatus.CANCELLED, ItemStatus.WAIVED)


def late_items(now: datetime) -> ColumnElement[bool]:
    """Items past their due time that are neither done, cancelled nor waived."""
    return (DrillItem.due_at < now) & DrillItem.status.not_in(SETTLED)


def phase_order() -> ColumnElement[int]:
    """The phase's place in the drill (准备, 自查, 值守, 总结), for ordering in SQL."""
    return case({phase: index for index, phase in enumerate(PHASES)}, value=DrillItem.phase, else_=len(PHASES))


class TemplateItem(BaseModel):
    """One item of a checklist template, placed on the drill's timeline by its phase and ``days``."""

    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    title: Annotated[str, StringConstraints(min_length=2, max_length=255), NoControl]
    phase: DrillPhase
    mandatory: bool = True
    days: int = Field(ge=-366, le=366, description="prepare/self_check: days before the start (≤ 0); on_duty: "
                                                   "days before the end (≤ 0); summary: days after the end (≥ 0)")

    @model_validator(mode="after")
    def _on_its_phase(self) -> TemplateItem:
        if self.phase is DrillPhase.SUMMARY and self.days < 0:
            raise ValueError(f"{self.key}: a summary item is due after the drill's end (days ≥ 0)")
        if self.phase is not DrillPhase.SUMMARY and self.days > 0:
            anchor = "end" if self.phase is DrillPhase.ON_DUTY else "start"
            raise ValueError(f"{self.key}: a {self.phase.value} item is due by the drill's {anchor} (days ≤ 0)")
        return self


BUILT_IN = ("national", "provincial", "holiday")


class TemplateCreate(BaseModel):
    """A new version of a checklist template (a new name starts at version 1)."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=128), NoControl]
    items: list[TemplateItem] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _keys(self) -> TemplateCreate:
        keys = [i.key for i in self.items]
        if len(set(keys)) != len(keys):
            raise ValueError("each item key once")
        return self


class TemplatePublic(BaseModel):
    name: str
    version: int = Field(description="0: the built-in template shipped with cloudctl")
    title: str
    items: list[TemplateItem]


def _built_in(name: str) -> TemplatePublic:
    text = resources.files("cloudctl.security").joinpath(f"data/drill-templates/{name}.yml").read_text(
        encoding="utf-8")
    data = yaml.safe_load(text)
    return TemplatePublic(name=name, version=0, title=data["title"],
                          items=[TemplateItem.model_validate(item) for item in data["items"]])


def template(session: Session | None = None, name: str = "national", version: int | None = None) -> TemplatePublic:
    """A checklist template by name: the version asked for, else the city's latest, else the built-in one."""
    if session is not None:
        query = select(DrillTemplate).where(DrillTemplate.name == name)
        if version is not None:
            query = query.where(DrillTemplate.version == version)
        row = session.scalar(query.order_by(DrillTemplate.version.desc()).limit(1))
        if row is not None:
            return TemplatePublic(name=row.name, version=row.version, title=row.title,
                                  items=[TemplateItem.model_validate(i) for i in row.items])
    if name in BUILT_IN and version in (None, 0):
        return _built_in(name)
    raise InvalidInput(f"no checklist template {name!r}" + (f" version {version}" if version is not None else ""),
                       field="template")


def list_templates(session: Session, principal: Principal) -> list[TemplatePublic]:
    """Every template: the built-in ones (version 0) and each version a city made, by name and version."""
    authorize(principal, "security.drill:read")
    out = [_built_in(name) for name in BUILT_IN]
    out += [TemplatePublic(name=r.name, version=r.version, title=r.title,
                           items=[TemplateItem.model_validate(i) for i in r.items])
            for r in session.scalars(select(DrillTemplate).order_by(DrillTemplate.name, DrillTemplate.version))]
    return sorted(out, key=lambda t: (t.name, t.version))


def create_template(session: Session, principal: Principal, data: TemplateCreate) -> TemplatePublic:
    """A new version of a template (the security team): drills made before keep the version they were made from."""
    authorize(principal, "security.drill:write")
    # Lock the name's versions (PostgreSQL) so two new versions at once do not both take the next number.
    latest = session.scalar(select(DrillTemplate.version).where(DrillTemplate.name == data.name)
                            .order_by(DrillTemplate.version.desc()).limit(1).with_for_update())
    row = DrillTemplate(name=data.name, version=(latest or 0) + 1, title=data.title,
                        items=[i.model_dump(mode="json") for i in data.items], created_by=principal.actor,
                        created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(f"template {data.name} changed meanwhile: try again", field="name") from None
    audit.record(session, principal, action="create", entity="drill_template", entity_id=f"{row.name}:{row.version}",
                 after={"title": row.title, "items": len(row.items)})
    return TemplatePublic(name=row.name, version=row.version, title=row.title, items=list(data.items))


def phase_opens(phase: DrillPhase, *, created_at: datetime, starts_at: datetime, ends_at: datetime) -> datetime:
    """When a phase's work can start: preparation and self-inspection when the drill is created, the watch at the
    start, the summary at the end."""
    if phase in BEFORE_START:
        return created_at
    return starts_at if phase is DrillPhase.ON_DUTY else ends_at


def place(items: Sequence[TemplateItem], *, created_at: datetime, starts_at: datetime,
          ends_at: datetime) -> list[datetime]:
    """The due times of template items on one drill's timeline, in the items' order.

    Preparation and self-inspection: their days before the start, compressed (order and proportions kept) into the
    time between the creation and the start when the template asks for more lead than that, leaving a day's work
    (a tenth of the lead, if that is less) before the first item is due; the watch: its days before the end, never
    before the start; the summary: its days after the end."""
    earliest = min((i.days for i in items if i.phase in BEFORE_START), default=0)
    wanted = timedelta(days=-earliest)
    lead = max(starts_at - created_at, timedelta(0))
    room = lead - min(timedelta(days=1), lead / 10)
    scale = room / wanted if wanted > room else 1.0
    out = []
    for item in items:
        if item.phase in BEFORE_START:
            out.append(starts_at + timedelta(days=item.days) * scale)
        elif item.phase is DrillPhase.ON_DUTY:
            out.append(max(starts_at, ends_at + timedelta(days=item.days)))
        else:
            out.append(ends_at + timedelta(days=item.days))
    return out


class DrillCreate(BaseModel):
    name: Annotated[str, StringConstraints(min_length=2, max_length=128), NoControl]
    organiser: Annotated[str, StringConstraints(min_length=2, max_length=128), NoControl]
    starts_at: datetime
    ends_at: datetime
    units: list[str] = Field(default_factory=list, description="unit codes; default: every department and county")
    template: Annotated[str, StringConstraints(max_length=64), NoControl] = Field(
        default="national", description="the checklist template: national, provincial, holiday, or a city's own")
    template_version: int | None = Field(default=None, ge=0, le=100_000, description="default: the latest")

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
    chosen = template(session, data.template, data.template_version)
    drill = Drill(name=data.name, organiser=data.organiser, starts_at=data.starts_at, ends_at=data.ends_at,
                  phase=DrillPhase.PREPARE, created_by=principal.actor, template_name=chosen.name,
                  template_version=chosen.version)
    session.add(drill)
    session.flush()
    items = chosen.items
    due = place(items, created_at=utcnow(), starts_at=data.starts_at, ends_at=data.ends_at)
    # In bulk: a city-wide drill is a dozen items for each of hundreds of units.
    session.execute(insert(DrillItem), [
        {"drill_id": drill.id, "unit_id": unit.id, "key": item.key, "title": item.title, "phase": item.phase,
         "position": position, "mandatory": item.mandatory, "due_at": due_at, "status": ItemStatus.WAITING}
        for unit in units for position, (item, due_at) in enumerate(zip(items, due, strict=True))])
    audit.record(session, principal, action="create", entity="drill", entity_id=drill.id,
                 after={"name": drill.name, "units": len(units), "items": len(items) * len(units),
                        "template": f"{chosen.name}:{chosen.version}"})
    return drill


def add_item(session: Session, principal: Principal, drill_id: int, data: TemplateItem) -> list[DrillItem]:
    """An item added to one drill (not its template), for every unit in it, placed on the drill's timeline."""
    authorize(principal, "security.drill:write")
    drill = get_drill(session, principal, drill_id)
    if drill.phase is not DrillPhase.PREPARE and PHASES.index(data.phase) < PHASES.index(drill.phase):
        raise Conflict(f"the drill is past {data.phase.value} already", field="phase")
    unit_ids = list(session.scalars(select(DrillItem.unit_id).where(DrillItem.drill_id == drill.id).distinct()))
    if session.scalar(select(DrillItem.id).where(DrillItem.drill_id == drill.id, DrillItem.key == data.key)
                      .limit(1)) is not None:
        raise Conflict(f"the drill has an item {data.key} already", field="key")
    position = (session.scalar(select(func.max(DrillItem.position)).where(DrillItem.drill_id == drill.id)) or 0) + 1
    (due_at,) = place([data], created_at=utcnow(), starts_at=drill.starts_at, ends_at=drill.ends_at)
    added = [DrillItem(drill_id=drill.id, unit_id=unit_id, key=data.key, title=data.title, phase=data.phase,
                       position=position, mandatory=data.mandatory, due_at=due_at, status=ItemStatus.WAITING)
             for unit_id in unit_ids]
    session.add_all(added)
    session.flush()
    audit.record(session, principal, action="add_item", entity="drill", entity_id=drill.id,
                 after={"key": data.key, "title": data.title, "phase": data.phase.value, "due_at": due_at,
                        "units": len(added)})
    return added


def list_drills(session: Session, principal: Principal) -> list[Drill]:
    """Every drill, newest first: a drill is city-wide, so a unit sees them all (and only its own items)."""
    authorize(principal, "security.drill:read")
    return list(session.scalars(select(Drill).order_by(Drill.starts_at.desc(), Drill.id.desc())))


def get_drill(session: Session, principal: Principal, drill_id: int) -> Drill:
    authorize(principal, "security.drill:read")
    return read.one(session, select(Drill).where(Drill.id == drill_id), missing=f"no drill with id {drill_id}",
                    field="drill")


def advance_phase(session: Session, principal: Principal, drill_id: int, to: DrillPhase) -> Drill:
    """Phases only move forward, one at a time, and only once every unit's required items of the current phase
    are done or waived (the security team waives with a reason)."""
    authorize(principal, "security.drill:write")
    drill = get_drill(session, principal, drill_id)
    if PHASES.index(to) != PHASES.index(drill.phase) + 1:
        raise Conflict(f"the drill is in {drill.phase.value}; the next phase is "
                       f"{PHASES[PHASES.index(drill.phase) + 1].value if drill.phase is not PHASES[-1] else 'none'}",
                       field="phase")
    # Lock the drill (PostgreSQL) so an item reopened meanwhile cannot slip past the check.
    session.refresh(drill, with_for_update=True)
    open_items = (select(Unit.code, DrillItem.title).join(Unit, Unit.id == DrillItem.unit_id)
                  .where(DrillItem.drill_id == drill.id, DrillItem.phase == drill.phase, DrillItem.mandatory,
                         DrillItem.status.not_in((ItemStatus.DONE, ItemStatus.WAIVED))))
    pending = session.scalar(select(func.count()).select_from(open_items.subquery())) or 0
    if pending:
        named = "; ".join(f"{code} {title}" for code, title in
                          session.execute(open_items.order_by(Unit.code, DrillItem.position).limit(5)))
        raise Conflict(f"{pending} required {drill.phase.value} ({drill.phase.label}) item(s) neither done nor "
                       f"waived: {named}{' …' if pending > 5 else ''}", field="phase")
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
    return list(session.scalars(query.order_by(Unit.code, phase_order(), DrillItem.due_at, DrillItem.position,
                                               DrillItem.id)))


ENTITY = "security_drill_item"


def _fetch(session: Session, principal: Principal, item_id: int) -> int | None:
    """The item (in the principal's scope) evidence files are attached to: its unit."""
    authorize(principal, "security.drill:read")
    item = read.one(session, read.within(select(DrillItem).where(DrillItem.id == item_id), principal,
                                         unit=DrillItem.unit_id),
                    missing=f"no drill item with id {item_id}", field="entity_id")
    return item.unit_id


attachments.register_record(ENTITY, _fetch, write="security.drill:item")


def item_files(session: Session, item: DrillItem) -> list[int]:
    """The evidence files on an item (the attachment store's ids), oldest first."""
    return list(session.scalars(select(attachments.Attachment.id).where(
        attachments.Attachment.entity == ENTITY, attachments.Attachment.entity_id == str(item.id))
        .order_by(attachments.Attachment.id)))


def update_item(session: Session, principal: Principal, drill_id: int, item_id: int, status: ItemStatus,
                evidence: str | None = None, files: Sequence[int] = ()) -> DrillItem:
    """A unit moves its own item on; done needs the evidence (截图、报告、记录): a note, or files uploaded to the
    item through the attachment store (``files``: their ids), which the security team then verifies."""
    authorize(principal, "security.drill:item")
    get_drill(session, principal, drill_id)
    item = _item(session, principal, drill_id, item_id)
    on_item = set(item_files(session, item))
    strangers = [f for f in files if f not in on_item]
    if strangers:
        raise InvalidInput(f"attachment {strangers[0]} is not a file on item {item.id}: upload it to "
                           f"{ENTITY} {item.id} first", field="attachments")
    if item.status is ItemStatus.WAIVED:
        raise Conflict("the item is waived by the security team", field="status")
    if status not in MOVES[item.status]:
        raise Conflict(f"an item {item.status.value} does not become {status.value}", field="status")
    if status is ItemStatus.DONE and not (evidence and evidence.strip()) and not files:
        raise InvalidInput("say what shows it is done, or give the evidence files", field="evidence")
    if status is ItemStatus.CANCELLED and item.mandatory:
        raise Conflict(f"{item.title} is mandatory and cannot be cancelled", field="status")
    before = item.status.value
    item.status, item.updated_by = status, principal.actor
    if evidence is not None:
        item.evidence = evidence
    if files or status is not ItemStatus.DONE:
        item.evidence_files = sorted(set(files)) or None
    item.done_at = utcnow() if status is ItemStatus.DONE else None
    item.verifier = item.verified_at = None  # a changed item is verified again
    audit.record(session, principal, action="item", entity="drill_item", entity_id=item.id, before={"status": before},
                 after={"status": status.value, "evidence": evidence, "files": item.evidence_files},
                 unit_id=item.unit_id)
    return item


def verify_item(session: Session, principal: Principal, drill_id: int, item_id: int) -> DrillItem:
    """The security team confirms a done item (核验), with the evidence files it was done with."""
    authorize(principal, "security.drill:write")
    item = _item(session, principal, drill_id, item_id)
    if item.status is not ItemStatus.DONE:
        raise Conflict("only a done item is verified", field="status")
    item.verifier, item.verified_at = principal.actor, utcnow()
    audit.record(session, principal, action="verify", entity="drill_item", entity_id=item.id,
                 after={"verifier": item.verifier, "files": item.evidence_files}, unit_id=item.unit_id)
    return item


class Waiver(BaseModel):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=1000),
                      NoControlMultiline] = Field(description="why the item is set aside (豁免理由)")


def waive_item(session: Session, principal: Principal, drill_id: int, item_id: int, data: Waiver) -> DrillItem:
    """The security team sets an item aside with a reason (豁免), audited: it counts as settled for the phase."""
    authorize(principal, "security.drill:write")
    item = _item(session, principal, drill_id, item_id)
    if item.status in SETTLED:
        raise Conflict(f"the item is {item.status.value} already", field="status")
    before = item.status.value
    item.status, item.updated_by = ItemStatus.WAIVED, principal.actor
    item.waiver_reason, item.waived_by, item.waived_at = data.reason, principal.actor, utcnow()
    audit.record(session, principal, action="waive", entity="drill_item", entity_id=item.id,
                 before={"status": before}, after={"status": item.status.value, "reason": data.reason},
                 unit_id=item.unit_id)
    return item


ProgressBy = Literal["unit_phase", "unit", "phase"]


class ProgressRow(BaseModel):
    unit_code: str | None = Field(description="None in the per-phase totals")
    unit_name: str | None
    phase: str | None = Field(description="None in the per-unit totals")
    phase_label: str | None
    total: int = Field(description="items, cancelled ones left out")
    done: int
    waived: int
    overdue: int = Field(description="past due and neither done nor waived")
    ratio: float = Field(description="(done + waived) / total")


def progress(session: Session, principal: Principal, drill_id: int, *, by: ProgressBy = "unit_phase",
             now: datetime | None = None) -> list[ProgressRow]:
    """Per unit and phase, per unit, or per phase (准备, 自查, 值守, 总结 in that order): items (cancelled ones
    left out), done, waived, and overdue. A department counts its own subtree's items only."""
    get_drill(session, principal, drill_id)
    now = now or utcnow()
    order = phase_order()
    keys: list[Any] = []
    if by in ("unit_phase", "unit"):
        keys += [Unit.code, Unit.name]
    if by in ("unit_phase", "phase"):
        keys += [DrillItem.phase]
    query = (select(*keys, func.count(), func.sum(case((DrillItem.status == ItemStatus.DONE, 1), else_=0)),
                    func.sum(case((DrillItem.status == ItemStatus.WAIVED, 1), else_=0)),
                    func.sum(case((late_items(now), 1), else_=0)))
             .select_from(DrillItem).join(Unit, Unit.id == DrillItem.unit_id)
             .where(DrillItem.drill_id == drill_id, DrillItem.status != ItemStatus.CANCELLED)
             .group_by(*keys))
    if by == "unit_phase":
        query = query.order_by(Unit.code, order)
    elif by == "unit":
        query = query.order_by(Unit.code)
    else:
        query = query.order_by(func.min(order))
    query = read.within(query, principal, unit=DrillItem.unit_id)
    rows = []
    for row in session.execute(query):
        values = list(row)
        code, name = (values.pop(0), values.pop(0)) if by != "phase" else (None, None)
        phase = DrillPhase(values.pop(0)) if by != "unit" else None
        total, done, waived, overdue = (int(v or 0) for v in values)
        rows.append(ProgressRow(unit_code=code, unit_name=name, phase=phase.value if phase else None,
                                phase_label=phase.label if phase else None, total=total, done=done, waived=waived,
                                overdue=overdue, ratio=round((done + waived) / total, 4) if total else 1.0))
    return rows

