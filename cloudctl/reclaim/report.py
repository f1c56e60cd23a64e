"""The reclaim report (资源回收分析报告) for the bureau's leadership and for purchase planning.

One self-contained HTML file (inline CSS and SVG: it opens in a browser on a machine with no
network, as duty rooms have) and CSV files of the same figures:

- headline figures: what the recommendations would free and save per month;
- per-unit bars: allocated, used (p95 CPU, max memory) and reclaimable vCPU;
- utilisation distributions: servers by their highest daily p95 CPU and by their peak memory;
- the top reclaimable business systems;
- purchase planning (为下步云资源采购提供支撑数据): per cloud, capacity, what quotas promise, what runs,
  and the headroom once the recommendations are carried out.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.compute import service as compute
from cloudctl.compute import volumes
from cloudctl.compute.models import Cloud, Server
from cloudctl.compute.schemas import VolumePublic
from cloudctl.core import read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import CloudctlError
from cloudctl.core.export import csv_text
from cloudctl.core.models import utcnow
from cloudctl.reclaim import planning, service
from cloudctl.reclaim.models import RecommendationStatus, UtilisationDay
from cloudctl.reclaim.schemas import PlanResourcePublic, RecommendationPublic, RollupRow

__all__ = ["PlanRow", "ReclaimReport", "build_report", "write_report"]

# Buckets of the utilisation histograms, as fractions of the server's size.
BUCKETS = (0.0, 0.03, 0.10, 0.20, 0.40, 0.60, 0.80, 1.01)


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One cloud's CPU for purchase planning: usable capacity, promised, running, and what reclaim frees."""

    cloud: str
    name: str
    capacity_vcpus: int
    allocated_vcpus: int
    used_vcpus: int
    reclaimable_vcpus: int
    capacity_ram_gib: int
    used_ram_gib: int
    reclaimable_ram_gib: int
    # Block storage freed by the open storage recommendations (volumes and old snapshots), GiB.
    reclaimable_storage_gib: int = 0

    @property
    def headroom_after_vcpus(self) -> int:
        return self.capacity_vcpus - self.used_vcpus + self.reclaimable_vcpus


@dataclass(frozen=True, slots=True)
class ReclaimReport:
    as_of: date
    campaign_id: int | None
    units: list[RollupRow]
    systems: list[RollupRow]
    plan: list[PlanRow]
    forecast: list[PlanResourcePublic]
    # Storage to reclaim: volumes unattached for reclaim_volume_unattached_days or more.
    volumes: list[VolumePublic]
    recommendations: list[RecommendationPublic]
    cpu_histogram: list[int]
    mem_histogram: list[int]


def build_report(session: Session, principal: Principal) -> ReclaimReport:
    authorize(principal, "reclaim.recommendation:read")
    campaign = service.latest_campaign(session, principal)
    recs = read.every(partial(service.list_recommendations, session, principal))
    # Pending (still to be reclaimed) and executed; dismissed and exempted ones are not reclaimable.
    live = [RecommendationPublic.model_validate(r) for r in recs
            if r.status not in (RecommendationStatus.DISMISSED, RecommendationStatus.EXEMPTED)]
    return ReclaimReport(
        as_of=campaign.as_of if campaign else utcnow().date(), campaign_id=campaign.id if campaign else None,
        units=service.rollup(session, principal, by="unit"), systems=service.rollup(session, principal, by="system"),
        plan=_plan(session, principal), forecast=_forecast(session, principal),
        volumes=[VolumePublic.model_validate(v) for v in read.every(partial(
            volumes.list_volumes, session, principal, unattached_days=get_settings().reclaim_volume_unattached_days))],
        recommendations=live,
        cpu_histogram=_histogram(session, principal, "cpu", "p95"),
        mem_histogram=_histogram(session, principal, "mem", "max"))


def _plan(session: Session, principal: Principal) -> list[PlanRow]:
    rows = []
    by_cloud = {r.key: r for r in service.rollup(session, principal, by="cloud")}
    for cloud in session.scalars(select(Cloud).where(Cloud.enabled.is_(True)).order_by(Cloud.name)):
        if cloud.name not in by_cloud:
            continue
        try:
            capacity = {c.resource: c for c in compute.capacity(session, principal, cloud.name)}
        except CloudctlError:
            continue  # a cloud that cannot be reached, or a principal who may not see capacity
        roll = by_cloud[cloud.name]
        cpu, ram = capacity.get("vcpus"), capacity.get("ram")
        rows.append(PlanRow(cloud=cloud.name, name=cloud.display_name,
                            capacity_vcpus=int(cpu.capacity) if cpu else 0,
                            allocated_vcpus=int(cpu.allocated) if cpu else 0,
                            used_vcpus=int(cpu.used) if cpu else 0, reclaimable_vcpus=roll.reclaimable_vcpus,
                            capacity_ram_gib=int(ram.capacity) if ram else 0,
                            used_ram_gib=int(ram.used) if ram else 0,
                            reclaimable_ram_gib=int(roll.reclaimable_ram_gib),
                            reclaimable_storage_gib=roll.reclaimable_storage_gib))
    return rows


def _forecast(session: Session, principal: Principal) -> list[PlanResourcePublic]:
    try:
        return planning.purchase_plan(session, principal)
    except CloudctlError:
        return []  # a principal who may not see capacity


def _histogram(session: Session, principal: Principal, metric: str, stat: str) -> list[int]:
    """The principal's servers per bucket of their highest daily value over the last 30 days."""
    since = utcnow().date() - timedelta(days=30)
    column = getattr(UtilisationDay, stat)
    query = (select(func.max(column)).join(Server, Server.id == UtilisationDay.server_id)
             .where(UtilisationDay.metric == metric, UtilisationDay.day >= since, Server.status != "DELETED")
             .group_by(UtilisationDay.server_id))
    peaks = session.scalars(read.within(query, principal, unit=Server.unit_id)).all()
    counts = [0] * (len(BUCKETS) - 1)
    for peak in peaks:
        for i in range(len(BUCKETS) - 1):
            if BUCKETS[i] <= float(peak) < BUCKETS[i + 1] or (i == len(BUCKETS) - 2 and float(peak) >= BUCKETS[i]):
                counts[i] += 1
                break
    return counts


# ---------------------------------------------------------------- writing


def write_report(report: ReclaimReport, directory: Path) -> list[Path]:
    """Write reclaim-report.html and the CSV files into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "reclaim-report.html"]
    written[0].write_text(render_html(report), encoding="utf-8")
    tables: dict[str, tuple[list[str], list[list[object]]]] = {
        "reclaim-recommendations.csv": (
            ["id", "server", "unit_code", "business_system", "cloud", "kind", "status", "current_flavor",
             "recommended_flavor", "reclaim_vcpus", "reclaim_ram_gib", "saving_month_cny", "due_at"],
            [[r.id, r.server, r.unit_code, r.business_system or "", r.cloud, r.kind.value, r.status.value,
              r.current_flavor, r.recommended_flavor or "", r.reclaim_vcpus, round(r.reclaim_ram_gib, 1),
              r.saving_month, r.due_at.isoformat() if r.due_at else ""] for r in report.recommendations]),
        "reclaim-units.csv": (_rollup_header(), [_rollup_row(r) for r in report.units]),
        "reclaim-systems.csv": (_rollup_header(), [_rollup_row(r) for r in report.systems]),
        "reclaim-purchase-planning.csv": (
            ["cloud", "name", "capacity_vcpus", "allocated_vcpus", "used_vcpus", "reclaimable_vcpus",
             "headroom_after_reclaim_vcpus", "capacity_ram_gib", "used_ram_gib", "reclaimable_ram_gib",
             "reclaimable_storage_gib"],
            [[p.cloud, p.name, p.capacity_vcpus, p.allocated_vcpus, p.used_vcpus, p.reclaimable_vcpus,
              p.headroom_after_vcpus, p.capacity_ram_gib, p.used_ram_gib, p.reclaimable_ram_gib,
              p.reclaimable_storage_gib] for p in report.plan]),
        "reclaim-capacity-forecast.csv": (
            ["cloud", "resource", "unit", "capacity", "allocated", "promised", "used", "reclaimable", "headroom",
             "headroom_after_reclaim", "threshold", "linear", "holt", "linear_with_reclaim", "holt_with_reclaim"],
            [[f.cloud, f.resource, f.unit, f.capacity, f.allocated, f.promised, "" if f.used is None else f.used,
              f.reclaimable, f.headroom, f.headroom_after_reclaim, f.threshold,
              *(_reaches(f, model, reclaim) for reclaim in (False, True) for model in ("linear", "holt"))]
             for f in report.forecast]),
        "reclaim-volumes.csv": (
            ["id", "volume", "unit_code", "cloud", "volume_type", "size_gib", "status", "unattached_since"],
            [[v.id, v.name, v.unit_code or "", v.cloud, v.volume_type, v.size_gib, v.status,
              v.detached_since.isoformat() if v.detached_since else ""] for v in report.volumes]),
        "reclaim-capacity-history.csv": (
            ["cloud", "resource", "unit", "month", "capacity", "allocated", "promised"],
            [[f.cloud, f.resource, f.unit, m.month, m.capacity, m.allocated, m.promised]
             for f in report.forecast for m in f.history]),
    }
    for name, (header, rows) in tables.items():
        path = directory / name
        # UTF-8 with a BOM: Excel, which the bureau opens CSV files with, reads the Chinese names right.
        path.write_text(csv_text(header, rows), encoding="utf-8-sig")
        written.append(path)
    return written


def _reaches(row: PlanResourcePublic, model: str, reclaim: bool) -> str:
    """When ``model`` says the threshold is reached: a date, "now" is a date too; never, or too little data."""
    found = next(f for f in row.forecasts if f.model == model and f.reclaim is reclaim)
    if found.insufficient_data:
        return "数据不足 insufficient data"
    return found.reaches_on.isoformat() if found.reaches_on else "十年内不会 not within ten years"


def _spark(row: PlanResourcePublic) -> str:
    """The allocation's months as a line under the capacity (the top of the box) and the threshold (dashed)."""
    if len(row.history) < 2 or row.capacity <= 0:
        return ""
    width, height = 160, 36
    top = max(row.capacity, max(m.allocated for m in row.history))
    step = width / (len(row.history) - 1)
    points = " ".join(f"{i * step:.1f},{height - m.allocated / top * height:.1f}" for i, m in enumerate(row.history))
    line = height - row.threshold * row.capacity / top * height
    return (f"<svg class='spark' width='{width}' height='{height}' role='img'><title>{_e(row.history[0].month)} – "
            f"{_e(row.history[-1].month)}</title><line x1='0' x2='{width}' y1='{line:.1f}' y2='{line:.1f}' "
            f"stroke='#e8833a' stroke-dasharray='3 2'/><polyline fill='none' stroke='#4f7cac' stroke-width='1.5' "
            f"points='{points}'/></svg>")


def _rollup_header() -> list[str]:
    return ["key", "name", "servers", "vcpus", "ram_gib", "used_vcpus", "used_ram_gib", "reclaimable_vcpus",
            "reclaimable_ram_gib", "volumes", "storage_gib", "reclaimable_storage_gib", "saving_month_cny",
            "recommendations"]


def _rollup_row(r: RollupRow) -> list[object]:
    return [r.key, r.name, r.servers, r.vcpus, r.ram_gib, r.used_vcpus, r.used_ram_gib, r.reclaimable_vcpus,
            r.reclaimable_ram_gib, r.volumes, r.storage_gib, r.reclaimable_storage_gib, r.saving_month,
            r.recommendations]


def _e(value: object) -> str:
    return html.escape(str(value))


def _bars(rows: list[RollupRow], limit: int = 20) -> str:
    """Horizontal bars per unit: allocated (light), used (mid) and reclaimable (orange) vCPU."""
    shown = [r for r in rows if r.vcpus][:limit]
    if not shown:
        return "<p>没有数据 (no data)</p>"
    width, label_w, row_h = 900, 240, 26
    scale = (width - label_w - 80) / max(r.vcpus for r in shown)
    parts = [f'<svg class="bars" viewBox="0 0 {width} {row_h * len(shown) + 10}" role="img" '
             f'aria-label="per-unit vCPU">']
    for i, r in enumerate(shown):
        y = i * row_h + 4
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_e(r.name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{r.vcpus * scale:.1f}" height="18" class="alloc">'
                     f'<title>{_e(r.name)}: {r.vcpus} vCPU allocated</title></rect>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{min(r.used_vcpus, r.vcpus) * scale:.1f}" '
                     f'height="10" class="used"><title>{r.used_vcpus} vCPU used (p95)</title></rect>')
        parts.append(f'<rect x="{label_w + (r.vcpus - r.reclaimable_vcpus) * scale:.1f}" y="{y}" '
                     f'width="{r.reclaimable_vcpus * scale:.1f}" height="18" class="reclaim">'
                     f'<title>{r.reclaimable_vcpus} vCPU reclaimable</title></rect>')
        parts.append(f'<text x="{label_w + r.vcpus * scale + 6:.1f}" y="{y + 15}">{r.vcpus} / '
                     f'{r.reclaimable_vcpus}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram_svg(counts: list[int], title: str) -> str:
    width, height, pad, top_pad = 420, 200, 30, 18
    top = max(counts) or 1
    bar_w = (width - 2 * pad) / len(counts)
    parts = [f'<svg class="hist" viewBox="0 0 {width} {height + top_pad + 30}" role="img" '
             f'aria-label="{_e(title)}">']
    for i, count in enumerate(counts):
        h = count / top * height
        x = pad + i * bar_w
        lo, hi = BUCKETS[i], min(BUCKETS[i + 1], 1.0)
        parts.append(f'<rect x="{x + 2:.1f}" y="{top_pad + height - h:.1f}" width="{bar_w - 4:.1f}" '
                     f'height="{h:.1f}" class="used"><title>{count} servers, {lo:.0%}–{hi:.0%}</title></rect>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top_pad + height - h - 4:.1f}" '
                     f'text-anchor="middle">{count}</text>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top_pad + height + 18}" '
                     f'text-anchor="middle">{lo:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: ReclaimReport) -> str:
    done = [r for r in report.recommendations if r.status is RecommendationStatus.EXECUTED]
    recs = [r for r in report.recommendations if r.status is not RecommendationStatus.EXECUTED]
    by_kind: dict[str, int] = {}
    for r in recs:
        by_kind[r.kind.label] = by_kind.get(r.kind.label, 0) + 1
    vcpus = sum(r.reclaim_vcpus for r in recs)
    ram = sum(r.reclaim_ram_gib for r in recs)
    storage = sum(r.reclaim_disk_gib for r in recs if r.server_id is None)
    saving = sum(r.saving_month for r in recs)
    settings = get_settings()
    systems = [s for s in report.systems if s.reclaimable_vcpus or s.reclaimable_storage_gib][:15]
    plan_rows = "".join(
        f"<tr><td>{_e(p.name)}</td><td>{p.capacity_vcpus:,}</td><td>{p.allocated_vcpus:,}</td>"
        f"<td>{p.used_vcpus:,}</td><td class='hl'>{p.reclaimable_vcpus:,}</td><td>{p.headroom_after_vcpus:,}</td>"
        f"<td>{p.capacity_ram_gib:,}</td><td>{p.used_ram_gib:,}</td><td class='hl'>{p.reclaimable_ram_gib:,}</td>"
        f"<td class='hl'>{p.reclaimable_storage_gib:,}</td></tr>"
        for p in report.plan)
    forecast_rows = "".join(
        f"<tr><td>{_e(f.name)}</td><td>{f.resource} ({f.unit})</td><td>{f.capacity:,.0f}</td>"
        f"<td>{f.allocated:,.0f}</td>"
        f"<td>{'' if f.used is None else f'{f.used:,.0f}'}</td><td class='hl'>{f.reclaimable:,.0f}</td>"
        f"<td>{f.headroom:,.0f}</td><td>{_spark(f)}</td>"
        + "".join(f"<td>{_e(_reaches(f, model, reclaim))}</td>" for reclaim in (False, True)
                  for model in ("linear", "holt")) + "</tr>"
        for f in report.forecast if f.allocated > 0)
    threshold = f"{report.forecast[0].threshold:.0%}" if report.forecast else "80%"
    volume_rows = "".join(
        f"<tr><td>{_e(v.name)}</td><td>{_e(v.unit_code or '—')}</td><td>{_e(v.cloud)}</td><td>{_e(v.volume_type)}</td>"
        f"<td class='hl'>{v.size_gib:,}</td><td>{v.detached_since.date() if v.detached_since else ''}</td></tr>"
        for v in sorted(report.volumes, key=lambda v: -v.size_gib)[:30])
    system_rows = "".join(
        f"<tr><td>{_e(s.name)}</td><td>{s.servers}</td><td>{s.vcpus}</td><td>{s.used_vcpus}</td>"
        f"<td class='hl'>{s.reclaimable_vcpus}</td><td class='hl'>{s.reclaimable_ram_gib}</td>"
        f"<td class='hl'>{s.reclaimable_storage_gib:,}</td>"
        f"<td>{s.saving_month:,.0f}</td></tr>" for s in systems)
    kinds = "、".join(f"{k} {n}" for k, n in sorted(by_kind.items())) or "无"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>资源回收分析报告 · reclaim report {report.as_of}</title>
<style>
body {{ font-family: "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif;
        margin: 2em auto; max-width: 1000px; color: #1d2733; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 2px solid #d0d7e0; padding-bottom: .2em; margin-top: 1.6em; }}
.figures {{ display: flex; gap: 1em; flex-wrap: wrap; }}
.figure {{ background: #f2f5f9; border-radius: 6px; padding: .8em 1.2em; min-width: 180px; }}
.figure b {{ display: block; font-size: 1.8em; color: #c0561b; }}
table {{ border-collapse: collapse; width: 100%; font-size: .92em; }}
th, td {{ border-bottom: 1px solid #e3e8ee; padding: .35em .5em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
td.hl {{ color: #c0561b; font-weight: bold; }}
svg text {{ font-size: 12px; fill: #1d2733; }}
rect.alloc {{ fill: #cfd9e6; }} rect.used {{ fill: #4f7cac; }} rect.reclaim {{ fill: #e8833a; opacity: .85; }}
.hists {{ display: flex; gap: 2em; flex-wrap: wrap; }} .hists figure {{ margin: 0; flex: 1 1 420px; }}
svg.hist {{ width: 100%; max-width: 460px; }} svg.bars {{ width: 100%; }}
.note {{ color: #5c6b7a; font-size: .9em; }}
</style></head><body>
<h1>资源回收分析报告 <small>reclaim report</small></h1>
<p class="note">分析截至 {report.as_of}（UTC）· campaign {report.campaign_id or "—"} ·
单价 vCPU {settings.price_vcpu_month:g} 元/月、内存 {settings.price_ram_gb_month:g} 元/GiB·月</p>
<div class="figures">
<div class="figure" id="fig-recommendations"><b>{len(recs)}</b>回收建议 recommendations<br>{_e(kinds)}</div>
<div class="figure" id="fig-vcpus"><b>{vcpus:,}</b>可回收 vCPU</div>
<div class="figure" id="fig-ram"><b>{ram:,.0f}</b>可回收内存 GiB</div>
<div class="figure" id="fig-storage"><b>{storage:,}</b>可回收存储 GiB</div>
<div class="figure" id="fig-saving"><b>{saving:,.0f}</b>每月可节约 元 (CNY/month)</div>
<div class="figure" id="fig-executed"><b>{sum(r.reclaim_vcpus for r in done):,}</b>已回收 vCPU（{len(done)} 台）<br>
每月已节约 {sum(r.saving_month for r in done):,.0f} 元</div>
</div>
<h2>各单位资源 allocated / used / reclaimable vCPU</h2>
<p class="note">浅色：已分配；深色：实际使用（日 p95 最高值）；橙色：可回收。前 20 个单位，按可回收量排序。</p>
{_bars(report.units)}
<h2>利用率分布 utilisation</h2>
<div class="hists">
<figure>{_histogram_svg(report.cpu_histogram, "CPU p95")}
<figcaption>CPU：30 天内日 p95 最高值（占 vCPU 比例）</figcaption></figure>
<figure>{_histogram_svg(report.mem_histogram, "memory max")}<figcaption>内存：30 天内最高使用率</figcaption></figure>
</div>
<h2>可回收资源最多的业务系统 top reclaimable systems</h2>
<table><thead><tr><th>业务系统</th><th>云主机</th><th>vCPU</th><th>已用 vCPU</th><th>可回收 vCPU</th>
<th>可回收内存 GiB</th><th>可回收存储 GiB</th><th>月节约 元</th></tr></thead><tbody>{system_rows}</tbody></table>
<h2>云资源采购支撑数据 purchase planning</h2>
<p class="note">容量已含超分比；执行回收后余量 = 容量 − 已用 + 可回收。</p>
<table id="plan"><thead><tr><th>云平台</th><th>vCPU 容量</th><th>已分配(配额)</th><th>已用</th><th>可回收</th>
<th>回收后余量</th><th>内存容量 GiB</th><th>内存已用 GiB</th><th>可回收内存 GiB</th><th>可回收存储 GiB</th></tr></thead>
<tbody>{plan_rows}</tbody></table>
<h2>未挂载云硬盘 unattached volumes</h2>
<p class="note">未挂载超过 {settings.reclaim_volume_unattached_days} 天的云硬盘 {len(report.volumes)} 块，
共 {sum(v.size_gib for v in report.volumes):,} GiB（明细见 reclaim-volumes.csv）。回收时先做快照再删除。</p>
<table id="volumes"><thead><tr><th>云硬盘</th><th>单位</th><th>云平台</th><th>类型</th><th>GiB</th><th>未挂载自</th>
</tr></thead><tbody>{volume_rows}</tbody></table>
<h2>采购规划预测 when each resource reaches {threshold}</h2>
<p class="note">已分配 = 云主机占用（Placement 分配量），余量 = 容量 − 已分配；已用为实测（CPU 日 p95、内存峰值）。
按月度历史分别以线性趋势和 Holt 指数平滑预测已分配量达到容量 {threshold} 的时间；“含回收”为执行回收建议后的预测。</p>
<table id="forecast"><thead><tr><th>云平台</th><th>资源</th><th>容量</th><th>已分配</th><th>已用</th><th>可回收</th>
<th>余量</th><th>月度历史</th><th>线性</th><th>Holt</th><th>线性（含回收）</th><th>Holt（含回收）</th></tr></thead>
<tbody>{forecast_rows}</tbody></table>
</body></html>
"""
