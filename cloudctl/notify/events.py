"""The kinds of event someone must hear about, and the built-in wording of each (an operator may change it).

Each kind says who in the bureau hears it besides the unit it concerns (``roles``), and whether it is urgent:
an urgent message goes at once, day or night; the others wait out the quiet hours, and may be gathered into a
unit's daily digest. Templates are ``string.Template`` text (``$unit_name``): an operator's template can name
the event's values and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EVENTS", "EventKind"]


@dataclass(frozen=True, slots=True)
class EventKind:
    key: str
    label: str
    subject: str
    body: str
    roles: tuple[str, ...] = ()
    urgent: bool = False


_LINK = "\n\n详情：$link"
_DEADLINE = "\n期限：$deadline"


def _kind(key: str, label: str, subject: str, body: str, *, roles: tuple[str, ...] = (),
          urgent: bool = False) -> EventKind:
    return EventKind(key, label, f"【{label}】{subject}", body + _LINK, roles, urgent)


EVENTS: dict[str, EventKind] = {k.key: k for k in (
    # Resource requests (资源申请)
    _kind("compute.request.submitted", "资源申请已提交", "$unit_name 申请 $summary",
          "$unit_name 为业务系统「$system」提交了资源申请 #$request：$summary。\n申请理由：$justification"),
    _kind("compute.request.needs_approval", "资源申请待审批", "$unit_name 的资源申请 #$request 待$approver审批",
          # Ops hear it at their step only (the emitter names the role): the leader's step is the unit's.
          "$unit_name 的资源申请 #$request（$summary）等待$approver审批。"),
    _kind("compute.request.approved", "资源申请已批准", "资源申请 #$request 已由$approver批准",
          "$unit_name 的资源申请 #$request（$summary）已由$approver批准。$note"),
    _kind("compute.request.rejected", "资源申请被驳回", "资源申请 #$request 被驳回",
          "$unit_name 的资源申请 #$request（$summary）被$approver驳回。\n驳回理由：$reason"),
    _kind("compute.request.fulfilled", "资源已开通", "资源申请 #$request 已开通",
          "$unit_name 的资源申请 #$request 已开通：$summary。$lease"),
    _kind("compute.request.failed", "资源开通失败", "资源申请 #$request 开通失败",
          "$unit_name 的资源申请 #$request 开通失败（成功 $built 台，失败 $failed 台），运维人员将跟进处理。",
          roles=("ops",)),
    _kind("compute.quota.nearly_exhausted", "配额即将用尽", "$unit_name 在 $cloud 的配额已用 $percent%",
          "$unit_name 在 $cloud 的 $resource 配额已用（含预留）$used / $limit（$percent%）。如需扩容请提交配额申请。",
          roles=("ops",)),
    # Budgets (预算)
    _kind("billing.budget.threshold", "预算预警", "$unit_name $year 年预算已承诺 $percent%",
          "$unit_name $year 年云资源预算（$scope）$amount 元，已承诺 $committed 元（$percent%），"
          "已达 $threshold% 预警线。\n超出预算的资源申请需部门负责人审批。", roles=("ops",)),
    # Reclaim (资源回收)
    # $what: 云主机, 云硬盘 or 快照; $frees: what reclaim gives back (vCPU and memory, or GiB of storage).
    _kind("reclaim.notice", "资源回收通知", "$unit_name 的$what $server 拟回收",
          "$unit_name 的$what $server（$reason）拟于申诉期满后$action，可释放 $frees。"
          "\n如有异议，请在申诉截止前提出申诉。" + _DEADLINE),
    _kind("reclaim.appeal.decided", "回收申诉处理结果", "$what $server 的回收申诉$decision",
          "$unit_name 对$what $server 的回收申诉$decision。$note"),
    _kind("reclaim.execution.scheduled", "资源回收即将执行", "$what $server 将于 $deadline 后回收",
          "$unit_name 的$what $server 申诉期将满，回收（$action）将于 $deadline 之后执行。" + _DEADLINE,
          roles=("ops",), urgent=True),
    _kind("reclaim.execution.done", "资源回收已执行", "$what $server 已回收",
          "$unit_name 的$what $server 已执行回收：$detail"),
    # Findings and rectification (以查促改)
    _kind("security.ticket.opened", "漏洞整改通知", "$unit_name 整改单 #$ticket：$count 项漏洞",
          "$unit_name 有 $count 项漏洞需整改（整改单 #$ticket，$title），请在期限前完成整改并上报进展。" + _DEADLINE),
    _kind("security.ticket.due", "整改即将到期", "整改单 #$ticket 将于 $deadline 到期",
          "$unit_name 的整改单 #$ticket（$title）将于 $deadline 到期，仍有 $count 项未整改。" + _DEADLINE),
    _kind("security.ticket.overdue", "整改逾期催办", "整改单 #$ticket 已逾期",
          "$unit_name 的整改单 #$ticket（$title）已于 $deadline 逾期，请尽快整改。" + _DEADLINE,
          roles=("secops",)),
    _kind("security.ticket.closed", "整改已验证", "整改单 #$ticket 复测通过，已关闭",
          "$unit_name 的整改单 #$ticket（$title）经复测验证已整改完成。"),
    _kind("security.ticket.progress", "整改进展", "$unit_name 上报整改单 #$ticket 进展：$status",
          "$unit_name 上报整改单 #$ticket 进展：$status。\n说明：$note", roles=("secops",)),
    _kind("security.extension.requested", "延期申请", "$unit_name 申请整改延期（$record）",
          "$unit_name 申请将 $record 的期限延至 $to。\n理由：$reason", roles=("secops",)),
    _kind("security.extension.decided", "延期申请处理结果", "$record 的延期申请$decision",
          "$unit_name 对 $record 的延期申请$decision。$note"),
    _kind("security.alert.attack", "攻击告警", "$unit_name 的资产 $ip 遭受攻击",
          "告警 #$alert（$title，$severity）经研判为攻击，目标为 $unit_name 的资产 $ip，请立即配合处置。",
          roles=("duty", "secops"), urgent=True),
    _kind("security.incident.report_due", "网络安全事件报告时限", "事件 #$incident（$level）须于 $deadline 前报告",
          "$unit_name 的网络安全事件 #$incident（$title，$level，$operator_kind）须于 $deadline 前按规定报告。"
          + _DEADLINE, roles=("duty", "secops"), urgent=True),
    _kind("security.incident.report_overdue", "网络安全事件逾期未报", "事件 #$incident（$level）已超过报告时限",
          "$unit_name 的网络安全事件 #$incident（$title，$level，$operator_kind）应于 $deadline 前报告，至今未报，"
          "请立即报告。" + _DEADLINE, roles=("duty", "secops"), urgent=True),
    # The extranet (电子政务外网)
    _kind("extranet.violation.opened", "外网合规整改通知", "$unit_name：$title",
          "检查发现 $unit_name 存在合规问题：$title（$subject），请在期限前整改。" + _DEADLINE),
    _kind("extranet.violation.due", "合规整改即将到期", "$unit_name：$title 将于 $deadline 到期",
          "$unit_name 的合规问题 $title（$subject）将于 $deadline 到期。" + _DEADLINE),
    _kind("extranet.application.decided", "IP地址申请结果", "IP地址申请 #$application $decision",
          "$unit_name 的IP地址申请 #$application $decision。$detail"),
    # Duty (7×24值班) and drills (护网)
    _kind("security.duty.due", "值班报告提醒", "$unit_name 请于 $deadline 前报送值班报告",
          "$period：$unit_name 应于 $deadline 报送值班报告（无事件请报零报告）。" + _DEADLINE),
    _kind("security.duty.overdue", "值班报告逾期", "$unit_name $deadline 的值班报告逾期未报",
          "$period：$unit_name 应于 $deadline 报送的值班报告逾期未报，请立即补报。" + _DEADLINE,
          roles=("duty",), urgent=True),
    _kind("security.drill.due", "演练任务提醒", "$unit_name：$title 将于 $deadline 到期",
          "$drill：$unit_name 的检查项「$title」将于 $deadline 到期。" + _DEADLINE),
    _kind("security.drill.overdue", "演练任务逾期", "$unit_name：$title 已逾期",
          "$drill：$unit_name 的检查项「$title」已于 $deadline 逾期。" + _DEADLINE, roles=("secops",)),
)}
