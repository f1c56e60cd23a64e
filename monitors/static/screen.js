// The page reads the JSON API, never the database. The view token comes after the # of the address
// (/screen#token=…): a browser never sends that part to a server, so no access log or proxy keeps it;
// the page sends it as an Authorization header.
const params = new URLSearchParams(location.search);
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const every = Math.max(2, Number(params.get("refresh") || 10));
document.getElementById("every").textContent = every;
// Names come from the database: escaped before they go into a table.
const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const pct = (x) => x == null ? "—" : (x * 100).toFixed(1) + "%";
// A rate that does not apply (null: nothing to count) gets no colour, not red.
const tone = (el, x, good, warn) => {
  el.className = "big " + (x == null ? "" : x >= good ? "good" : x >= warn ? "warn" : "bad"); };
let drill = null;  // the countdown ticks every second between refreshes
let zone = "Asia/Shanghai";  // until the summary names the console's display zone
function span(ms) {
  const m = Math.max(0, Math.floor(ms / 60000));
  return `${Math.floor(m / 1440)}天${Math.floor(m % 1440 / 60)}时${m % 60}分`;
}
function tick() {
  document.getElementById("clock").textContent =
    new Date().toLocaleTimeString("zh-CN", {hour12: false, timeZone: zone});
  const el = document.getElementById("drill");
  if (!drill) { el.textContent = "无进行中的护网"; el.className = "big"; return; }
  const now = Date.now(), starts = Date.parse(drill.starts_at), ends = Date.parse(drill.ends_at);
  el.textContent = `${drill.phase_label} · ` + (now < starts ? `距开始 ${span(starts - now)}` : `距结束 ${span(ends - now)}`);
  el.className = "big " + (now < starts ? "warn" : "bad");
}
async function refresh() {
  try {
    const response = await fetch("/api/v1/screen/summary", {
      headers: token ? {"Authorization": "Bearer " + token} : {}});
    if (!response.ok) throw new Error(response.status + " " + (await response.text()).slice(0, 120));
    const s = await response.json();
    zone = s.timezone || zone;
    // A panel this token may not see is null (a department's screen has no city-wide panels): shown as "—".
    const n = (x) => x == null ? "—" : x;
    document.getElementById("title").textContent = (s.unit_name || s.city || "") + " 值班大屏";
    for (const [level, id] of [["horizontal", "h"], ["vertical", "v"]]) {
      const a = (s.access || {})[level] || {};
      const el = document.getElementById(id + "-rate");
      el.textContent = pct(a.rate);
      tone(el, a.rate, 1, 0.98);
      document.getElementById(id + "-detail").textContent = s.access ?
        `已接入 ${n(a.connected)} / 应接入 ${n(a.required)}，未接入 ${n(a.missing)}` : "—";
    }
    const v = document.getElementById("violations");
    v.textContent = n(s.violations_open);
    v.className = "big " + (s.violations_open == null ? "" : s.violations_open === 0 ? "good"
      : s.violations_open < 10 ? "warn" : "bad");
    document.getElementById("violations-detail").textContent = s.violations_by_rule == null ? "—" :
      Object.entries(s.violations_by_rule).map(([r, c]) => `规则${r}: ${c}`).join("  ") || "无";
    document.getElementById("pending").textContent = `${n(s.requests_pending)} / ${n(s.jobs_failed_24h)}`;
    document.getElementById("jobs").textContent = "待审批申请 / 失败任务";
    document.getElementById("clouds").innerHTML = (s.clouds || []).map((c) => `
      <tr><td>${esc(c.name)}</td><td class="num">${c.vcpu_used} / ${c.vcpu_capacity} vCPU</td>
      <td class="num ${c.headroom >= 0.2 ? "good" : c.headroom >= 0.1 ? "warn" : "bad"}">${pct(c.headroom)}</td>
      <td style="width:30%"><div class="bar"><div style="width:${(1 - (c.headroom ?? 1)) * 100}%"></div></div></td></tr>`)
      .join("") || (s.clouds == null ? "<tr><td>—</td></tr>" : "");
    const r = s.reclaim;
    document.getElementById("reclaim").textContent = r ? r.reclaimable_vcpus : "—";
    document.getElementById("reclaim-detail").textContent = r ?
      `${r.recommendations} 条建议，每月可节约 ${Math.round(r.saving_month).toLocaleString("zh-CN")} 元` : "—";
    const sec = s.security;
    const secEl = document.getElementById("security");
    secEl.textContent = `${n(sec.alerts_new)} / ${n(sec.attacks_open)}`;
    secEl.className = "big " + (sec.attacks_open ? "bad" : sec.alerts_new ? "warn" : sec.alerts_new == null ? "" : "good");
    document.getElementById("security-detail").textContent =
      `待研判告警 / 处置中攻击 · 24小时封禁 ${n(sec.blocked_24h)} · 超期严重漏洞 ${n(sec.critical_overdue)} · ` +
      `值班缺报 ${n(sec.duty_overdue)}` + (sec.duty_period ? ` (${sec.duty_period})` : "");
    drill = sec.drill;
    document.getElementById("drill-detail").textContent = drill ?
      `${drill.name} · 检查项完成 ${drill.items_done} / ${drill.items} · 超期未完成 ${drill.items_overdue}` : "";
    // Per phase in the drill's order (准备, 自查, 值守, 总结): settled (done or waived) of all, and what is late.
    document.getElementById("drill-phases").innerHTML = drill ? drill.phases.map((p) => `
      <tr><td>${esc(p.phase_label)}</td><td class="num">${p.settled} / ${p.items}</td>
      <td class="num ${p.overdue ? "bad" : ""}">超期 ${p.overdue}</td>
      <td style="width:40%"><div class="bar"><div style="width:${p.ratio * 100}%"></div></div></td></tr>`).join("") : "";
    document.getElementById("drill-behind").innerHTML = drill && drill.behind.length ?
      "<tr><td colspan=\"4\">进度落后单位 units furthest behind</td></tr>" + drill.behind.map((u) => `
      <tr><td>${esc(u.unit)}</td><td>${esc(u.name)}</td>
      <td class="num ${u.overdue ? "bad" : ""}">超期 ${u.overdue}</td><td class="num">${pct(u.ratio)}</td></tr>`)
      .join("") : "";
    const incidents = sec.incidents;
    const when = (t) => t ? new Date(t).toLocaleString("zh-CN", {hour12: false, timeZone: zone}) : "—";
    document.getElementById("incidents-detail").textContent = incidents == null ? "—" :
      `处置中 ${sec.incidents_open} · 报告超期 ${incidents.filter((i) => i.report_overdue).length}`;
    document.getElementById("incidents").innerHTML = incidents == null ? "" : incidents.length ?
      incidents.map((i) => `
      <tr><td>#${i.id}</td><td class="${i.level === "general" ? "" : "bad"}">${esc(i.level_label)}</td>
      <td>${esc(i.title)}</td><td>${esc(i.unit || "—")}</td>
      <td class="num ${i.report_overdue ? "bad" : i.reported_at ? "good" : "warn"}">${i.report_due_at ?
        (i.reported_at ? "已报告 " + when(i.reported_at) : "报告时限 " + when(i.report_due_at)) : "无需限时报告"}</td>
      </tr>`).join("") : "<tr><td>无处置中事件</td></tr>";
    const duty = sec.on_shift;
    const officer = document.getElementById("officer");
    // s.unit: a unit's own screen, which the duty roster is not on.
    officer.textContent = duty ? duty.officer : s.unit ? "—" : "无排班";
    officer.className = "big " + (duty ? (duty.checked_in ? "good" : "warn") : "");
    document.getElementById("duty-detail").textContent = (duty ?
      `${duty.checked_in ? "已签到" : "未签到"} · 备班 ${duty.backup || "—"} · 带班领导 ${duty.leader || "—"} · ` +
      `交班 ${new Date(duty.ends_at).toLocaleTimeString("zh-CN", {hour12: false, timeZone: zone})} · ` : "") +
      `待报 ${n(sec.duty_due)} · 缺报 ${n(sec.duty_overdue)}` + (sec.duty_period ? ` · ${sec.duty_period}` : "");
    const units = sec.units || [];
    document.getElementById("units").innerHTML = units.length ? units.map((u) => `
      <tr><td>${esc(u.unit)}</td><td>${esc(u.name)}</td>
      <td class="num ${u.tickets_overdue ? "bad" : ""}">超期整改单 ${u.tickets_overdue}</td>
      <td class="num ${u.critical ? "warn" : ""}">严重漏洞 ${u.critical}</td></tr>`).join("")
      : sec.units == null ? "<tr><td>—</td></tr>" : "<tr><td>无超期整改单与严重漏洞</td></tr>";
    tick();
    document.getElementById("generated").textContent =
      new Date(s.generated_at).toLocaleString("zh-CN", {timeZone: zone, hour12: false});
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "· 数据获取失败: " + e.message;
  }
}
tick(); setInterval(tick, 1000);
refresh(); setInterval(refresh, every * 1000);
