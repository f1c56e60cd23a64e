"""``cloudctl notify``: the outbox, sending and reminding now, channels, who hears what, and the wording."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import typer
from rich.markup import escape
from sqlalchemy.orm import Session

from cloudctl.core.auth import authorize
from cloudctl.core.cli_support import OffsetOption, OutputOption, UnitFilter, limit_option, print_list, unit_of_work
from cloudctl.core.db import session_scope
from cloudctl.core.errors import InvalidInput
from cloudctl.core.output import OutputFormat, console, print_one, print_rows
from cloudctl.notify import sender, service
from cloudctl.notify.models import ChannelKind, DeliveryStatus
from cloudctl.notify.schemas import ChannelPublic, NotificationPublic, SubscriptionPublic, TemplatePublic

__all__ = ["notify_app"]

notify_app = typer.Typer(help="Notifications (通知): the outbox, channels (mail, DingTalk, WeCom, Feishu, webhook, "
                              "SMS), subscriptions and templates.", no_args_is_help=True)
channel_app = typer.Typer(help="Channels: the bureau's mail server, group robots, webhooks, the SMS gateway.",
                          no_args_is_help=True)
subscription_app = typer.Typer(help="Who hears which events through which channel.", no_args_is_help=True)
template_app = typer.Typer(help="The wording of each event kind's message.", no_args_is_help=True)
notify_app.add_typer(channel_app, name="channel")
notify_app.add_typer(subscription_app, name="subscription")
notify_app.add_typer(template_app, name="template")


@notify_app.command("outbox")
def outbox(
    status: DeliveryStatus | None = typer.Option(None, case_sensitive=False, help="pending, sending, sent, failed"),
    unit: str | None = UnitFilter,
    kind: str | None = typer.Option(None, help="an event kind or a pattern: reclaim.*"),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """The messages, newest first: sent, waiting (quiet hours, digest, retry) or failed, and why."""
    with unit_of_work() as (session, principal):
        print_list(partial(service.list_deliveries, session, principal, status=status, unit=unit, kind=kind),
                   NotificationPublic, [
            ("id", lambda r: r.id), ("kind", lambda r: r.kind), ("unit", lambda r: r.unit_code),
            ("channel", lambda r: r.channel), ("to", lambda r: r.address), ("subject", lambda r: r.subject),
            ("status", lambda r: r.status), ("tries", lambda r: r.attempts),
            ("sent / next", lambda r: r.sent_at or r.send_after), ("error", lambda r: r.last_error),
        ], output, limit=limit, offset=offset, title="通知发件箱 outbox")


@contextmanager
def _sessions() -> Iterator[Session]:
    with session_scope() as session:
        yield session


@notify_app.command("send")
def send_now(output: OutputFormat = OutputOption) -> None:
    """Deliver what is due now (what the sender job does every few seconds)."""
    with unit_of_work() as (_, principal):
        authorize(principal, "notify.notification:send")
    result = sender.drain(_sessions)
    if output is OutputFormat.JSON:
        print(json.dumps({**result.as_dict(), "errors": result.errors}, ensure_ascii=False))
        return
    console.print(f"sent {result.sent}, to retry {result.retried}, failed {result.failed}"
                  + (f", interrupted {result.interrupted}" if result.interrupted else ""))
    for error in sorted(set(result.errors)):
        console.print(f"[yellow]{escape(error)}[/]", markup=True, highlight=False)


@notify_app.command("remind")
def remind_now(output: OutputFormat = OutputOption) -> None:
    """Run the reminders (催办) now: deadlines near and passed, duty reports due and overdue, leases ended."""
    with unit_of_work() as (_, principal):
        authorize(principal, "notify.notification:send")
    counts = sender.remind(_sessions)
    if output is OutputFormat.JSON:
        print(json.dumps(counts, ensure_ascii=False))
        return
    for name, count in counts.items():
        console.print(f"  {name:24} " + (f"{count:>6}" if count >= 0 else "[red]failed (see the log)[/]"), markup=True)


@notify_app.command("retry")
def retry(notification: int = typer.Argument(..., help="the message's id"),
          output: OutputFormat = OutputOption) -> None:
    """Send a failed message again (check first that it did not arrive)."""
    with unit_of_work() as (session, principal):
        row = NotificationPublic.model_validate(service.retry_delivery(session, principal, notification))
    print_one(row, output, title=f"notification {row.id}")


def _config(pairs: list[str]) -> dict[str, str | int]:
    config: dict[str, str | int] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"KEY=VALUE, not {pair!r}", field="--set")
        config[key.strip()] = int(value) if key.strip() == "port" and value.isdigit() else value
    return config


_CHANNEL_COLUMNS = [("name", lambda r: r.name), ("kind", lambda r: r.kind.rich), ("unit", lambda r: r.unit_code),
                    ("enabled", lambda r: r.enabled),
                    ("config", lambda r: ", ".join(f"{k}={v}" for k, v in r.config.items()))]


@channel_app.command("list")
def channel_list(output: OutputFormat = OutputOption) -> None:
    with unit_of_work() as (session, principal):
        rows = [ChannelPublic.model_validate(c) for c in service.list_channels(session, principal)]
    print_rows(rows, _CHANNEL_COLUMNS, output, title="通知渠道 channels")


@channel_app.command("add")
def channel_add(
    name: str = typer.Argument(...),
    kind: ChannelKind = typer.Option(..., case_sensitive=False),
    settings: list[str] = typer.Option([], "--set", help="KEY=VALUE: host, port, security, username, password, "
                                                         "sender, url, secret …"),
    unit: str | None = typer.Option(None, "--unit", help="a department's own robot"),
    enabled: bool = typer.Option(True, "--enabled/--disabled"),
    output: OutputFormat = OutputOption,
) -> None:
    """Add a channel (a robot's URL names its host: a government edition runs on its own)."""
    with unit_of_work() as (session, principal):
        row = ChannelPublic.model_validate(service.create_channel(session, principal, name=name, kind=kind,
                                                                  config=_config(settings), unit=unit,
                                                                  enabled=enabled))
    print_one(row, output, title=f"channel {row.name}")


@channel_app.command("set")
def channel_set(
    name: str = typer.Argument(...),
    settings: list[str] = typer.Option([], "--set", help="KEY=VALUE, the others kept"),
    enabled: bool | None = typer.Option(None, "--enabled/--disabled"),
    output: OutputFormat = OutputOption,
) -> None:
    """Change some of a channel's settings, or switch it on or off."""
    with unit_of_work() as (session, principal):
        row = ChannelPublic.model_validate(service.update_channel(session, principal, name,
                                                                  config=_config(settings), enabled=enabled))
    print_one(row, output, title=f"channel {row.name}")


@subscription_app.command("list")
def subscription_list(unit: str | None = UnitFilter, role: str | None = typer.Option(None),
                      output: OutputFormat = OutputOption) -> None:
    with unit_of_work() as (session, principal):
        rows = [SubscriptionPublic.model_validate(s)
                for s in service.list_subscriptions(session, principal, unit=unit, role=role)]
    print_rows(rows, [("id", lambda r: r.id), ("unit", lambda r: r.unit_code), ("role", lambda r: r.role),
                      ("events", lambda r: r.events), ("channel", lambda r: r.channel),
                      ("to", lambda r: r.address), ("name", lambda r: r.name), ("digest", lambda r: r.digest)],
               output, title="订阅 subscriptions")


@subscription_app.command("add")
def subscription_add(
    channel: str = typer.Option(...),
    events: str = typer.Option("*", help="an event kind or pattern: security.*, reclaim.notice"),
    unit: str | None = typer.Option(None, "--unit"),
    role: str | None = typer.Option(None, help="a bureau role: ops, secops, duty, admin"),
    address: str = typer.Option("", help="an e-mail address or a phone number (robots need none)"),
    name: str | None = typer.Option(None, help="who it is: 值班联系人, 部门负责人 …"),
    digest: bool = typer.Option(False, help="gather non-urgent events into one message a day"),
    output: OutputFormat = OutputOption,
) -> None:
    with unit_of_work() as (session, principal):
        row = SubscriptionPublic.model_validate(service.create_subscription(
            session, principal, channel=channel, events=events, unit=unit, role=role, address=address, name=name,
            digest=digest))
    print_one(row, output, title=f"subscription {row.id}")


@subscription_app.command("remove")
def subscription_remove(subscription: int = typer.Argument(...)) -> None:
    with unit_of_work() as (session, principal):
        service.delete_subscription(session, principal, subscription)
    console.print(f"subscription {subscription} removed")


@template_app.command("list")
def template_list(output: OutputFormat = OutputOption) -> None:
    with unit_of_work() as (session, principal):
        rows = [TemplatePublic.model_validate(t) for t in service.list_templates(session, principal)]
    print_rows(rows, [("kind", lambda r: r.kind), ("label", lambda r: r.label), ("urgent", lambda r: r.urgent),
                      ("roles", lambda r: ", ".join(r.roles)), ("custom", lambda r: r.custom),
                      ("subject", lambda r: r.subject)], output, title="通知模板 templates")


@template_app.command("set")
def template_set(kind: str = typer.Argument(...), subject: str | None = typer.Option(None),
                 body: str | None = typer.Option(None, help="$unit_name, $deadline, $link and the kind's own values"),
                 reset: bool = typer.Option(False, "--reset", help="back to the built-in wording")) -> None:
    if reset == (subject is not None or body is not None):
        raise InvalidInput("give --subject and/or --body, or --reset", field="--subject")
    with unit_of_work() as (session, principal):
        service.set_template(session, principal, kind, subject=subject, body=body)
    console.print(f"template {kind} {'reset' if reset else 'updated'}")
