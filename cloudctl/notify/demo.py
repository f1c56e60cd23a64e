"""The demo city's notification parts: the bureau's channels (switched off, pointing at placeholder hosts until an
operator configures them: ``cloudctl notify channel set``), its role subscriptions, each department leader's
subscription to its requests, and each county duty contact's to the duty reminders."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cloudctl.core.auth import Principal
from cloudctl.demo.city import DemoCity
from cloudctl.demo.seed import demo_step
from cloudctl.notify.models import Channel, ChannelKind, Subscription
from cloudctl.org.models import Unit

__all__ = ["DEMO_CHANNELS"]

# Placeholder hosts (.invalid never resolves): nothing leaves the demo until someone points them somewhere.
DEMO_CHANNELS: dict[str, tuple[ChannelKind, dict[str, Any]]] = {
    "bureau-mail": (ChannelKind.SMTP, {"host": "smtp.example.invalid", "port": 587, "security": "starttls",
                                       "sender": "noc@lj-dsj.example.gov.cn", "sender_name": "临江市大数据局"}),
    "ops-dingtalk": (ChannelKind.DINGTALK, {"url": "https://dingtalk.example.invalid/robot/send?access_token=demo",
                                            "secret": "SECdemo"}),
    "secops-wecom": (ChannelKind.WECOM, {"url": "https://wecom.example.invalid/cgi-bin/webhook/send?key=demo"}),
    "duty-sms": (ChannelKind.SMS, {"url": "https://sms.example.invalid/send",
                                   "body": {"mobile": "$to", "content": "$text", "sign": "临江市大数据局"}}),
}


@demo_step("notify")
def seed_notify(session: Session, principal: Principal, city: DemoCity, seed: int) -> dict[str, int]:
    session.execute(insert(Channel), [{"name": name, "kind": kind, "config": config, "enabled": False,
                                       "unit_id": None} for name, (kind, config) in DEMO_CHANNELS.items()])
    channel: dict[str, int] = {name: id_ for name, id_ in session.execute(select(Channel.name, Channel.id))}
    rows: list[dict[str, Any]] = [
        {"unit_id": None, "role": "ops", "events": "*", "channel_id": channel["ops-dingtalk"], "address": "",
         "name": "运维值守群", "digest": False, "enabled": True},
        {"unit_id": None, "role": "secops", "events": "*", "channel_id": channel["secops-wecom"], "address": "",
         "name": "安全运营群", "digest": False, "enabled": True},
        {"unit_id": None, "role": "duty", "events": "*", "channel_id": channel["duty-sms"], "address": "13900000000",
         "name": "值班手机", "digest": False, "enabled": True},
    ]
    units = {u.code: u for u in session.scalars(select(Unit).where(Unit.code.in_(
        [*city.departments, *(u.code for u in city.units if u.kind == "county")])))}
    for code in city.departments:
        unit = units[code]
        domain = (unit.contact_email or "@dept.example.gov.cn").split("@", 1)[1]
        # The department's own contact hears everything about it; its leader hears its requests.
        rows.append({"unit_id": unit.id, "role": None, "events": "*", "channel_id": channel["bureau-mail"],
                     "address": unit.contact_email or f"office@{domain}", "name": unit.contact_name,
                     "digest": False, "enabled": True})
        rows.append({"unit_id": unit.id, "role": None, "events": "compute.request.*",
                     "channel_id": channel["bureau-mail"], "address": f"leader@{domain}", "name": "部门负责人",
                     "digest": False, "enabled": True})
    for unit in (u for u in units.values() if u.kind.value == "county"):
        rows.append({"unit_id": unit.id, "role": None, "events": "security.duty.*", "channel_id": channel["duty-sms"],
                     "address": unit.contact_phone or "13900000001", "name": "值班联系人", "digest": False,
                     "enabled": True})
        if unit.contact_email:
            rows.append({"unit_id": unit.id, "role": None, "events": "*", "channel_id": channel["bureau-mail"],
                         "address": unit.contact_email, "name": unit.contact_name, "digest": True, "enabled": True})
    session.execute(insert(Subscription), rows)
    return {"channels": len(DEMO_CHANNELS), "subscriptions": len(rows)}
