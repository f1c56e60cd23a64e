"""Messages per second through the outbox to a real SMTP server on loopback, against a bare smtplib loop.

    .venv/bin/python bench/notify.py [--messages 2000] [--rounds 3]

Each round, on a fresh SQLite database: ``--messages`` events are emitted (each one row in the outbox for a
department's contact, rendered from its template, in one transaction per 100 events), then the sender drains
them to an aiosmtpd server on 127.0.0.1 (one SMTP session per round, a claim and a commit per message). The
baseline, in the same run and to the same server, sends the same number of messages with ``smtplib`` over one
session and nothing else. Figures are medians over the rounds; the ratio is outbox / bare (1.0 would mean the
outbox costs nothing). Emitting is reported apart: it happens in the domains' own transactions.
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bare(port: int, count: int) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for n in range(count):
            mail = EmailMessage()
            mail["From"], mail["To"], mail["Subject"] = "noc@example.gov.cn", "d01@example.gov.cn", f"消息 {n}"
            mail.set_content("资源回收通知：云主机 d01-app 拟回收。\n详情：http://127.0.0.1:8000/")
            smtp.send_message(mail)
    return count / (time.perf_counter() - started)


def outbox(port: int, count: int, directory: Path) -> tuple[float, float]:
    from sqlalchemy.orm import Session, sessionmaker

    from cloudctl.core.config import Settings, reset_settings
    from cloudctl.core.db import dispose_engines, make_engine
    from cloudctl.core.migrate import upgrade
    from cloudctl.notify import emit, sender, service
    from cloudctl.notify.models import ChannelKind
    from cloudctl.org import service as org
    from cloudctl.org.models import UnitKind
    from cloudctl.org.schemas import UnitCreate
    from tests.factories import ADMIN

    url = f"sqlite:///{directory / 'bench.db'}"
    reset_settings(Settings(data_dir=directory, database_url=url, notify_quiet_hours=""))
    engine = make_engine(url)
    upgrade(engine)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as session:
        org.create_unit(session, ADMIN, UnitCreate(code="990100", name="临江市", kind=UnitKind.CITY))
        unit = org.create_unit(session, ADMIN, UnitCreate(code="990100-D01", name="市公安局", kind=UnitKind.DEPARTMENT,
                                                          parent="990100"))
        service.create_channel(session, ADMIN, name="mail", kind=ChannelKind.SMTP, config={
            "host": "127.0.0.1", "port": port, "security": "none", "sender": "noc@example.gov.cn"})
        service.create_subscription(session, ADMIN, channel="mail", unit="990100-D01", address="d01@example.gov.cn")
        session.commit()
        unit_id = unit.id
    started = time.perf_counter()
    for start in range(0, count, 100):
        with factory() as session:
            for n in range(start, min(start + 100, count)):
                emit(session, "reclaim.notice", unit_id=unit_id, entity="reclaim_recommendation", entity_id=n,
                     data={"server": f"d01-app-{n}", "reason": "长期闲置", "action": "搁置下线", "vcpus": 4,
                           "ram_gib": 8})
            session.commit()
    emitted = count / (time.perf_counter() - started)

    @contextmanager
    def sessions() -> Iterator[Session]:
        with factory() as session:
            yield session
            session.commit()

    started = time.perf_counter()
    sent = 0
    while sent < count:
        result = sender.drain(sessions, limit=count)
        if not result.sent:
            raise SystemExit(f"the sender stopped after {sent} of {count}: {result.errors[:3]}")
        sent += result.sent
    delivered = count / (time.perf_counter() - started)
    engine.dispose()
    dispose_engines()
    reset_settings()
    return emitted, delivered


def main() -> None:
    from tests.support.notify_receivers import MailSink

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    baseline, emitted, delivered = [], [], []
    with MailSink() as sink:
        for n in range(args.rounds):
            baseline.append(bare(sink.port, args.messages))
            with tempfile.TemporaryDirectory() as directory:
                e, d = outbox(sink.port, args.messages, Path(directory))
            emitted.append(e)
            delivered.append(d)
            print(f"round {n + 1}: bare {baseline[-1]:.0f}/s, outbox emit {e:.0f}/s, outbox delivery {d:.0f}/s")
        received = len(sink.mails)
    expected = 2 * args.messages * args.rounds
    assert received == expected, f"the server received {received} messages, expected {expected}"
    b, e, d = statistics.median(baseline), statistics.median(emitted), statistics.median(delivered)
    print(f"\n{args.messages} messages × {args.rounds} rounds to aiosmtpd on 127.0.0.1 (SQLite outbox), medians:")
    print(f"  bare smtplib, one session         {b:8.0f} msg/s   1.00")
    print(f"  outbox → sender → SMTP            {d:8.0f} msg/s   {d / b:.2f} of bare")
    print(f"  emit (render + outbox rows)       {e:8.0f} msg/s")
    print(f"  every message received once: {received} of {expected}")


if __name__ == "__main__":
    main()
