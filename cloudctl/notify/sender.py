"""The sender: the one part of cloudctl that talks to mail servers, robots and gateways.

Two periodic jobs of the job machinery (:mod:`cloudctl.core.jobs`) run it:

- ``notify.send`` (every ``notify_send_seconds``) delivers what is due: each message is moved pending → sending by
  a conditional UPDATE, committed, sent, then marked sent (or pending again with a backoff, or failed after
  ``notify_max_attempts`` or at once when the receiver refuses it). Two senders never take the same row, and a
  message is sent at most once: a row left *sending* by a sender that died mid-send is marked failed, not sent
  again (it may have arrived; ``cloudctl notify retry`` sends it after someone checked). A receiver that is away
  only delays messages: they wait and go when it is back.
- ``notify.remind`` (every ``notify_remind_minutes``) runs the reminders (催办) the domains register with
  :func:`reminder`: deadlines coming and passed, duty reports due and overdue, leases that ended. Events have
  keys, so a sweep that finds the same thing again tells nobody twice.

A unit's digest messages due together go as one message per recipient.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloudctl.core import jobs
from cloudctl.core.config import get_settings
from cloudctl.core.models import utcnow
from cloudctl.notify.channels import DeliveryError, Message, Transport, transport_for
from cloudctl.notify.models import Channel, Delivery, DeliveryStatus

__all__ = ["REMIND_JOB", "SEND_JOB", "DrainResult", "TransportFactory", "drain", "remind", "reminder"]

log = logging.getLogger(__name__)
SEND_JOB = "notify.send"
REMIND_JOB = "notify.remind"
# A message claimed longer ago than this by a sender that never finished it: that sender died mid-send.
SENDING_LEASE = timedelta(minutes=5)
BATCH = 500

TransportFactory = Callable[[Channel], Transport]
Sessions = Callable[[], AbstractContextManager[Session]]


def default_transport(channel: Channel) -> Transport:
    return transport_for(channel.kind.value, channel.config, timeout=get_settings().notify_timeout_seconds)


@dataclass
class DrainResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    interrupted: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed, "interrupted": self.interrupted}


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min … doubling, at most an hour (with the default base)."""
    base = get_settings().notify_backoff_seconds
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 3600))


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _fail_interrupted(session: Session, now: datetime) -> int:
    return session.execute(
        update(Delivery).where(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < now - SENDING_LEASE)
        .values(status=DeliveryStatus.FAILED,
                last_error="the sender stopped while sending it: not sent again, it may have arrived; check, then "
                           "`cloudctl notify retry`")
        .execution_options(synchronize_session=False)).rowcount or 0  # type: ignore[attr-defined]


def _claim(session: Session, ids: list[int], owner: str, now: datetime) -> list[int]:
    """Take the rows still pending: the conditional UPDATE is the claim, one sender's WHERE matches."""
    if not ids:
        return []
    session.execute(update(Delivery).where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.PENDING)
                    .values(status=DeliveryStatus.SENDING, claimed_by=owner, claimed_at=now)
                    .execution_options(synchronize_session=False))
    return list(session.scalars(select(Delivery.id).where(Delivery.id.in_(ids), Delivery.claimed_by == owner,
                                                          Delivery.status == DeliveryStatus.SENDING)))


def _message(row: Delivery) -> Message:
    event = row.event
    return Message(key=row.idempotency_key, address=row.address, subject=row.subject, body=row.body,
                   kind=event.kind, unit_code=str(event.data.get("unit_code") or "") or None,
                   link=str(event.data.get("link") or "") or None,
                   deadline=event.deadline.astimezone(UTC).isoformat() if event.deadline else None)


def _digest(rows: list[Delivery]) -> Message:
    first = rows[0]
    lines = [f"{n}. {row.subject}\n{row.body}" for n, row in enumerate(rows, 1)]
    unit = str(first.event.data.get("unit_name") or "")
    return Message(key="digest|" + ",".join(str(r.id) for r in rows), address=first.address,
                   subject=f"【每日汇总】{unit} {len(rows)} 条通知", body="\n\n".join(lines), kind="digest",
                   unit_code=str(first.event.data.get("unit_code") or "") or None)


def drain(sessions: Sessions, *, now: datetime | None = None,
          transports: TransportFactory = default_transport, limit: int = BATCH) -> DrainResult:
    """Deliver every message due at ``now``: short transactions of its own, one claim per batch."""
    now = now or utcnow()
    owner = _owner()
    result = DrainResult()
    settings = get_settings()
    with sessions() as session:
        result.interrupted = _fail_interrupted(session, now)
        due = list(session.execute(
            select(Delivery.id, Delivery.channel_id, Delivery.address, Delivery.digest)
            .where(Delivery.status == DeliveryStatus.PENDING, Delivery.send_after <= now)
            .order_by(Delivery.id).limit(limit)))
        claimed = set(_claim(session, [d.id for d in due], owner, now))
    groups: dict[tuple[int, str, bool], list[int]] = {}
    for row in due:
        if row.id in claimed:
            key = (row.channel_id, row.address if row.digest else "", row.digest)
            groups.setdefault(key, []).append(row.id)
    open_transports: dict[int, Transport] = {}
    away: set[int] = set()  # channels that failed this round for a reason that passes: try them next round
    try:
        for (channel_id, _, digest), ids in groups.items():
            if channel_id in away:
                continue  # released below, unsent
            with sessions() as session:
                rows = list(session.scalars(select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.id)))
                channel = rows[0].channel
                messages = [(_digest(rows), [r.id for r in rows])] if digest else [(_message(r), [r.id]) for r in rows]
                attempts = {r.id: r.attempts for r in rows}
            for message, row_ids in messages:
                try:
                    transport = open_transports.get(channel_id)
                    if transport is None:
                        transport = open_transports[channel_id] = transports(channel)
                    transport.send(message)
                except DeliveryError as exc:
                    _settle_failure(sessions, row_ids, attempts, exc, settings.notify_max_attempts, result)
                    if not exc.permanent:
                        away.add(channel_id)
                        break
                    continue
                with sessions() as session:
                    session.execute(update(Delivery).where(Delivery.id.in_(row_ids), Delivery.claimed_by == owner)
                                    .values(status=DeliveryStatus.SENT, sent_at=utcnow(),
                                            attempts=Delivery.attempts + 1, last_error=None)
                                    .execution_options(synchronize_session=False))
                result.sent += len(row_ids)
    finally:
        for transport in open_transports.values():
            try:
                transport.close()
            except Exception:  # closing a session that already broke must not lose the round's results
                log.warning("closing a notification channel failed", exc_info=True)
    # A row claimed but not reached (its channel went away mid-round) goes back to pending, unsent.
    with sessions() as session:
        session.execute(update(Delivery).where(Delivery.claimed_by == owner, Delivery.status == DeliveryStatus.SENDING)
                        .values(status=DeliveryStatus.PENDING, claimed_by=None, claimed_at=None)
                        .execution_options(synchronize_session=False))
    return result


def _settle_failure(sessions: Sessions, ids: list[int], attempts: dict[int, int], exc: DeliveryError,
                    max_attempts: int, result: DrainResult) -> None:
    now = utcnow()
    result.errors.append(exc.reason)
    with sessions() as session:
        for row_id in ids:
            tries = attempts.get(row_id, 0) + 1
            final = exc.permanent or tries >= max_attempts
            session.execute(update(Delivery).where(Delivery.id == row_id).values(
                status=DeliveryStatus.FAILED if final else DeliveryStatus.PENDING, attempts=tries,
                last_error=exc.reason[:1000], claimed_by=None, claimed_at=None,
                send_after=now if final else now + backoff(tries)).execution_options(synchronize_session=False))
            if final:
                result.failed += 1
            else:
                result.retried += 1


# ---------------------------------------------------------------- reminders (催办)

Reminder = Callable[[Session, datetime], int]
_reminders: dict[str, Reminder] = {}


def reminder(name: str) -> Callable[[Reminder], Reminder]:
    """Register a domain's sweep: it emits the events that time alone brings (a deadline near or passed)."""

    def register(func: Reminder) -> Reminder:
        _reminders[name] = func
        return func

    return register


def remind(sessions: Sessions, *, now: datetime | None = None) -> dict[str, int]:
    """Run every registered reminder, each in its own transaction (one failing does not stop the others)."""
    now = now or utcnow()
    counts: dict[str, int] = {}
    for name, func in sorted(_reminders.items()):
        try:
            with sessions() as session:
                counts[name] = func(session, now)
        except Exception:  # one domain's sweep must not silence the others; the traceback goes to the log
            log.exception("reminder %s failed", name)
            counts[name] = -1
    return counts


def _job_sessions(ctx: jobs.JobContext) -> Sessions:
    return ctx.session


@jobs.job_handler(SEND_JOB, every=timedelta(seconds=get_settings().notify_send_seconds))
def send_job(ctx: jobs.JobContext) -> dict[str, Any]:
    result = drain(_job_sessions(ctx))
    if result.sent or result.failed or result.interrupted:
        ctx.log(f"sent {result.sent}, retry later {result.retried}, failed {result.failed}"
                + (f", interrupted {result.interrupted}" if result.interrupted else ""))
    return result.as_dict()


@jobs.job_handler(REMIND_JOB, every=timedelta(minutes=get_settings().notify_remind_minutes))
def remind_job(ctx: jobs.JobContext) -> jobs.JobOutcome:
    """Succeeded when every domain's reminder ran; partially failed (or failed) when some (or all) did not."""
    counts = remind(_job_sessions(ctx))
    failed = sorted(name for name, count in counts.items() if count < 0)
    return jobs.JobOutcome.of_parts(dict(counts), done=len(counts) - len(failed), failed=len(failed),
                                    error=f"reminders failed (their tracebacks are in the log): {', '.join(failed)}"
                                    if failed else None)
