"""The drill's summary (护网总结) over its window, from its start to its end (or now, while it runs): alerts by
source and verdict, attacks and the time to each response step, blocks added, findings opened and closed, duty
reports on time, late and missing per unit, checklist completion per unit, and the units furthest behind.

Every figure goes through the read kit: a department's summary counts its own subtree's alerts, incidents,
findings, reports and items; the block list is the security team's and shows as not available to it.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from io import BytesIO
from typing import Any

from openpyxl import Workbook
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cloudctl.core import read
from cloudctl.core.auth import Principal, can
from cloudctl.core.display import local_time
from cloudctl.core.export import safe_cell
from cloudctl.core.models import utcnow
from cloudctl.org.models import Unit, UnitKind
from cloudctl.security.models import (
    Alert,
    Asset,
    BlockedAddress,
    DrillItem,
    DutyPeriod,
    DutyReport,
    Finding,
    Incident,
    StepStatus,
    Verdict,
)
from cloudctl.security.service import alerts as alerts_service
from cloudctl.security.service import drills, duty

__all__ = ["DrillSummary", "summary", "summary_html", "summary_xlsx"]

BEHIND = 5


class AlertCount(BaseModel):
    source: str
    verdict: str = Field(description="false_positive, attack, undetermined, or untriaged")
    count: int


class StepTime(BaseModel):
    step: str
    label: str
    count: int = Field(description="attacks (alerts and incidents) with the step done in the window")
    mean_seconds: float | None
    max_seconds: float | None


class DutyRow(BaseModel):
    unit_code: str
    unit_name: str
    on_time: int
    late: int
    missing: int


class DrillSummary(BaseModel):
    drill_id: int
    name: str
    organiser: str
    phase: str
    phase_label: str
    window_start: datetime
    window_end: datetime
    alerts: list[AlertCount]
    alerts_total: int
    attacks: int
    incidents: int
    triage_mean_seconds: float | None = Field(description="from an attack's arrival to its verdict")
    steps: list[StepTime]
    blocks_added: int | None = Field(description="None for those who may not read the block list")
    findings_opened: int
    findings_closed: int
    duty: list[DutyRow]
    checklist: list[drills.ProgressRow]
    behind: list[drills.ProgressRow] = Field(description="the units furthest behind: least done, most overdue")


def summary(session: Session, principal: Principal, drill_id: int, *, now: datetime | None = None) -> DrillSummary:
    drill = drills.get_drill(session, principal, drill_id)
    now = now or utcnow()
    start, end = drill.starts_at, min(drill.ends_at, now)
    end = max(end, start)

    def in_window(column: Any) -> list[ColumnElement[bool]]:
        return [column >= start, column <= end]

    alert_rows = session.execute(read.within(
        select(Alert.source, Alert.verdict, func.count()).where(*in_window(Alert.received_at))
        .group_by(Alert.source, Alert.verdict), principal, unit=Alert.unit_id)
        .order_by(Alert.source, Alert.verdict))
    counts = [AlertCount(source=source, verdict=verdict.value if verdict else "untriaged", count=int(n))
              for source, verdict, n in alert_rows]
    attacks = [a for a in session.scalars(read.within(
        select(Alert).where(*in_window(Alert.received_at), Alert.verdict == Verdict.ATTACK), principal,
        unit=Alert.unit_id))]
    triage = [a.triage_seconds for a in attacks if a.triage_seconds is not None]
    incidents = list(session.scalars(read.within(select(Incident).where(*in_window(Incident.opened_at)), principal,
                                                 unit=Incident.unit_id)))
    # Time to each step: an incident's from its opening; an attack alert's (not in an incident) from its arrival.
    times: dict[str, list[float]] = {key: [] for key, _, _ in alerts_service.STEPS}
    for incident in incidents:
        for step in incident.steps:
            if step.status is StepStatus.DONE and step.done_at is not None:
                times[step.step].append((step.done_at - incident.opened_at).total_seconds())
    for alert in attacks:
        if alert.incident_id is None:
            for triage_step in alert.steps:
                if triage_step.status is StepStatus.DONE and triage_step.done_at is not None:
                    times[triage_step.step].append((triage_step.done_at - alert.received_at).total_seconds())
    steps = [StepTime(step=key, label=label, count=len(times[key]),
                      mean_seconds=round(sum(times[key]) / len(times[key]), 1) if times[key] else None,
                      max_seconds=max(times[key]) if times[key] else None) for key, label, _ in alerts_service.STEPS]
    blocks = (session.scalar(select(func.count()).select_from(BlockedAddress)
                             .where(*in_window(BlockedAddress.created_at)))
              if can(principal, "security.blocklist:read") else None)

    def findings_count(column: object) -> int:
        query = read.within(select(func.count()).select_from(Finding).join(Asset, Asset.id == Finding.asset_id)
                            .where(*in_window(column)), principal, unit=Asset.unit_id)
        return int(session.scalar(query) or 0)

    checklist = drills.progress(session, principal, drill_id, by="unit", now=now)
    behind = sorted((r for r in checklist if r.ratio < 1), key=lambda r: (r.ratio, -r.overdue, r.unit_code or ""))
    return DrillSummary(
        drill_id=drill.id, name=drill.name, organiser=drill.organiser, phase=drill.phase.value,
        phase_label=drill.phase.label, window_start=start, window_end=end, alerts=counts,
        alerts_total=sum(c.count for c in counts), attacks=len(attacks), incidents=len(incidents),
        triage_mean_seconds=round(sum(triage) / len(triage), 1) if triage else None, steps=steps,
        blocks_added=int(blocks) if blocks is not None else None,
        findings_opened=findings_count(Finding.first_seen), findings_closed=findings_count(Finding.mitigated_at),
        duty=_duty(session, principal, drill.id, start, end, now), checklist=checklist, behind=behind[:BEHIND])


def _duty(session: Session, principal: Principal, drill_id: int, start: datetime, end: datetime,
          now: datetime) -> list[DutyRow]:
    """Per unit of the drill (in the principal's scope): duty report slots of the periods overlapping the window,
    reported on time, late, or missing (past their grace, not reported)."""
    units = list(session.execute(read.within(
        select(Unit.id, Unit.code, Unit.name, Unit.kind).where(
            Unit.id.in_(select(DrillItem.unit_id).where(DrillItem.drill_id == drill_id).distinct())),
        principal, unit=Unit.id).order_by(Unit.code)))
    rows = {unit_id: DutyRow(unit_code=code, unit_name=name, on_time=0, late=0, missing=0)
            for unit_id, code, name, _ in units}
    periods = session.scalars(select(DutyPeriod).where(DutyPeriod.starts_at <= end, DutyPeriod.ends_at >= start))
    for period in periods:
        grace = timedelta(minutes=period.grace_minutes)
        owed = [s for s in duty.slots(period, since=max(start, period.starts_at), until=min(end, period.ends_at))
                if s + grace < now]
        if not owed:
            continue
        reporting = [unit_id for unit_id, _, _, kind in units if kind in [UnitKind(k) for k in period.reporting_kinds]]
        filed = {(u, s): late for u, s, late in session.execute(
            select(DutyReport.unit_id, DutyReport.slot_at, DutyReport.late).where(
                DutyReport.period_id == period.id, DutyReport.slot_at >= owed[0], DutyReport.slot_at <= owed[-1],
                DutyReport.unit_id.in_(reporting)))}
        for unit_id in reporting:
            for slot in owed:
                late = filed.get((unit_id, slot))
                if late is None:
                    rows[unit_id].missing += 1
                elif late:
                    rows[unit_id].late += 1
                else:
                    rows[unit_id].on_time += 1
    return list(rows.values())


def _minutes(seconds: float | None) -> str:
    return f"{seconds / 60:.1f}" if seconds is not None else "—"


VERDICT_LABELS = {v.value: v.label for v in Verdict} | {"untriaged": "未研判"}


def summary_html(data: DrillSummary) -> str:
    """The summary as a page to print or mail: every text escaped."""
    e = html.escape

    def table(header: list[str], rows: list[list[object]]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body or '<tr><td>无</td></tr>'}</table>"

    blocks = "—（无权查看封禁列表）" if data.blocks_added is None else str(data.blocks_added)
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{e(data.name)} 总结</title>
<style>body{{font-family:"Microsoft YaHei","WenQuanYi Micro Hei",sans-serif;max-width:1000px;margin:2em auto}}
table{{border-collapse:collapse;width:100%;margin-bottom:1em}}td,th{{border-bottom:1px solid #ddd;padding:4px 6px}}
</style></head><body>
<h1>{e(data.name)} 护网总结</h1>
<p>组织单位：{e(data.organiser)} · 统计时段：{local_time(data.window_start)} 至 {local_time(data.window_end)} ·
当前阶段：{e(data.phase_label)}</p>
<h2>概况</h2>
{table(["告警", "攻击", "事件", "研判平均用时（分钟）", "新增封禁", "新发现漏洞", "已整改漏洞"],
       [[data.alerts_total, data.attacks, data.incidents, _minutes(data.triage_mean_seconds), blocks,
         data.findings_opened, data.findings_closed]])}
<h2>告警（按来源与研判结论）</h2>
{table(["来源", "研判结论", "数量"],
       [[a.source, VERDICT_LABELS.get(a.verdict, a.verdict), a.count] for a in data.alerts])}
<h2>攻击处置用时（自发现起，分钟）</h2>
{table(["步骤", "完成数", "平均", "最长"],
       [[s.label, s.count, _minutes(s.mean_seconds), _minutes(s.max_seconds)] for s in data.steps])}
<h2>值守报告（按单位）</h2>
{table(["单位代码", "单位", "按时", "迟报", "缺报"],
       [[d.unit_code, d.unit_name, d.on_time, d.late, d.missing] for d in data.duty])}
<h2>检查项完成情况（按单位）</h2>
{table(["单位代码", "单位", "完成", "豁免", "总数", "完成率", "超期"],
       [[r.unit_code, r.unit_name, r.done, r.waived, r.total, f"{r.ratio:.0%}", r.overdue] for r in data.checklist])}
<h2>进度最落后的单位</h2>
{table(["单位代码", "单位", "完成率", "超期"],
       [[r.unit_code, r.unit_name, f"{r.ratio:.0%}", r.overdue] for r in data.behind])}
</body></html>
"""


def summary_xlsx(data: DrillSummary) -> bytes:
    """The summary as a workbook, a sheet per table; text cells safe to open (no formula runs)."""
    book = Workbook()
    book.remove(book.active)
    sheets: list[tuple[str, list[str], list[list[object]]]] = [
        ("概况", ["演练", "组织单位", "开始", "结束", "阶段", "告警", "攻击", "事件", "研判平均用时(分钟)", "新增封禁",
                "新发现漏洞", "已整改漏洞"],
         [[data.name, data.organiser, local_time(data.window_start), local_time(data.window_end), data.phase_label,
           data.alerts_total, data.attacks, data.incidents,
           round(data.triage_mean_seconds / 60, 1) if data.triage_mean_seconds is not None else None,
           data.blocks_added, data.findings_opened, data.findings_closed]]),
        ("告警", ["来源", "研判结论", "数量"],
         [[a.source, VERDICT_LABELS.get(a.verdict, a.verdict), a.count] for a in data.alerts]),
        ("处置用时", ["步骤", "完成数", "平均(分钟)", "最长(分钟)"],
         [[s.label, s.count, round(s.mean_seconds / 60, 1) if s.mean_seconds is not None else None,
           round(s.max_seconds / 60, 1) if s.max_seconds is not None else None] for s in data.steps]),
        ("值守报告", ["单位代码", "单位", "按时", "迟报", "缺报"],
         [[d.unit_code, d.unit_name, d.on_time, d.late, d.missing] for d in data.duty]),
        ("检查项", ["单位代码", "单位", "完成", "豁免", "总数", "完成率", "超期"],
         [[r.unit_code, r.unit_name, r.done, r.waived, r.total, r.ratio, r.overdue] for r in data.checklist]),
        ("落后单位", ["单位代码", "单位", "完成率", "超期"],
         [[r.unit_code, r.unit_name, r.ratio, r.overdue] for r in data.behind]),
    ]
    for title, header, rows in sheets:
        sheet = book.create_sheet(title)
        sheet.append([safe_cell(h) for h in header])
        for row in rows:
            sheet.append([safe_cell(c) for c in row])
    out = BytesIO()
    book.save(out)
    return out.getvalue()
