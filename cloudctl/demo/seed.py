"""Write the demo city into a database: units, business systems, a user per role and their tokens.

The seeder works in steps: the organisation (units, systems, users), then one step per domain
that extends the demo, registered with :func:`demo_step` (compute, reclaim, extranet, security).
Each writes in bulk (one statement per table, the services' batch paths) and is audited as one
row saying what it built; the seeding as a whole gets one more with the counts. A caller may
follow the steps as they run (the CLI's progress display) through :class:`SeedProgress`.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cloudctl.core import audit
from cloudctl.core.auth import Principal, Role, authorize
from cloudctl.core.bulk import insert_rows, reserve_ids
from cloudctl.core.errors import Conflict
from cloudctl.demo.city import DemoCity, generate_city
from cloudctl.org import service
from cloudctl.org.models import BusinessSystem, Unit, UnitKind, User

__all__ = ["STEPS", "DemoSeedResult", "SeedProgress", "demo_step", "issue_demo_tokens", "seed_demo",
           "write_tokens_file"]

STAFF_USERS: dict[str, tuple[Role, str]] = {
    "admin": (Role.ADMIN, "系统管理员"),
    "ops": (Role.OPS, "运维值守"),
    "secops": (Role.SECOPS, "安全运营"),
    "duty": (Role.DUTY, "值班员"),
    "auditor": (Role.AUDITOR, "审计员"),
}

# Domains that add to the demo city, in the order their steps run; importing one registers its step.
DEMO_MODULES = ("cloudctl.compute.demo", "cloudctl.billing.demo", "cloudctl.reclaim.demo", "cloudctl.extranet.demo",
                "cloudctl.security.demo", "cloudctl.notify.demo")

DemoStep = Callable[[Session, Principal, DemoCity, int], dict[str, int]]
_steps: list[tuple[str, DemoStep]] = []


def demo_step(name: str) -> Callable[[DemoStep], DemoStep]:
    """Register a later domain's part of the demo (clouds, VMs, network, findings …)."""

    def register(func: DemoStep) -> DemoStep:
        _steps.append((name, func))
        return func

    return register


# The steps in the order they run: the organisation first, then each domain's.
STEPS = ("organisation", "compute", "billing", "reclaim", "extranet", "security", "notify")


class SeedProgress(Protocol):
    """Told when each step starts and how long it took."""

    def started(self, step: str) -> None: ...

    def finished(self, step: str, seconds: float) -> None: ...


@dataclass
class DemoSeedResult:
    city: str
    counts: dict[str, int] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    # Wall-clock seconds per step, in the order they ran.
    seconds: dict[str, float] = field(default_factory=dict)


def dept_username(code: str) -> str:
    # "990100-D01" → "dept-d01": short and typeable at a terminal.
    return "dept-" + code.rsplit("-", 1)[-1].lower()


def leader_username(code: str) -> str:
    # The department's leader (部门负责人), who approves its requests first: "leader-d01".
    return "leader-" + code.rsplit("-", 1)[-1].lower()


def county_duty_username(code: str) -> str:
    # A county's own duty user, who files its zero-reports (零报告): "duty-990102".
    return f"duty-{code}"


def seed_demo(session: Session, principal: Principal, *, seed: int = 2026,
              progress: SeedProgress | None = None) -> DemoSeedResult:
    authorize(principal, "org.unit:write")
    authorize(principal, "org.user:write")
    if session.scalar(select(Unit.id).where(Unit.kind == UnitKind.CITY)) is not None:
        raise Conflict("this database already has a city; seed the demo into a fresh database", field="database")
    for module in DEMO_MODULES:
        importlib.import_module(module)
    city = generate_city(seed)
    result = DemoSeedResult(city=city.name)

    @contextmanager
    def step(name: str) -> Iterator[dict[str, Any]]:
        if progress is not None:
            progress.started(name)
        started = time.perf_counter()
        with audit.batch(session, principal, action=f"demo.seed.{name}", entity="city",
                         entity_id=city.units[0].code) as summary:
            yield summary
        session.flush()
        result.seconds[name] = time.perf_counter() - started
        if progress is not None:
            progress.finished(name, result.seconds[name])

    with step("organisation") as summary:
        counts, result.users = _seed_organisation(session, city)
        summary.update(counts)
        result.counts.update(counts)
    for name, seed_step in _in_order(_steps):
        with step(name) as summary:
            summary.update(seed_step(session, principal, city, seed))
            result.counts.update({f"{name}.{key}": value for key, value in summary.items()})
    audit.record(session, principal, action="demo.seed", entity="city", entity_id=city.units[0].code,
                 after={"seed": seed, "name": city.name, **result.counts})
    session.flush()
    return result


def _in_order(steps: list[tuple[str, DemoStep]]) -> list[tuple[str, DemoStep]]:
    """The domains' steps in the order of DEMO_MODULES (a later one builds on an earlier one's records),
    whichever module some other code happened to import first; steps of other modules come last."""
    def position(entry: tuple[str, DemoStep]) -> int:
        module = entry[1].__module__
        return DEMO_MODULES.index(module) if module in DEMO_MODULES else len(DEMO_MODULES)

    return sorted(steps, key=position)


def _seed_organisation(session: Session, city: DemoCity) -> tuple[dict[str, int], list[str]]:
    """Units, business systems, a user per role and department: the counts, and the users' names."""
    # The units' ids are taken first, so each row is written whole: its parent and its path in the tree.
    # The generator lists parents before their children, so the ids are the ones the rows would get in turn.
    ids = dict(zip((u.code for u in city.units), reserve_ids(session, Unit, len(city.units)), strict=True))
    paths: dict[str, str] = {}
    for unit in city.units:
        paths[unit.code] = f"{paths[unit.parent_code] if unit.parent_code else '/'}{ids[unit.code]}/"
    insert_rows(session, Unit, ("id", "code", "name", "kind", "parent_id", "path", "contact_name", "contact_phone",
                                "contact_email"), (
        (ids[u.code], u.code, u.name, u.kind, ids[u.parent_code] if u.parent_code else None, paths[u.code],
         u.contact_name, u.contact_phone, u.contact_email) for u in city.units))

    session.execute(insert(BusinessSystem), [
        {"unit_id": ids[s.unit_code], "name": s.name, "mlps_level": s.mlps_level,
         "contact_name": s.contact_name, "contact_phone": s.contact_phone, "description": s.description}
        for s in city.systems
    ])

    users: list[dict[str, Any]] = [{"username": name, "role": role, "display_name": label, "unit_id": None}
                                   for name, (role, label) in STAFF_USERS.items()]
    names = {u.code: u.name for u in city.units}
    users += [{"username": dept_username(code), "role": Role.DEPT, "display_name": names[code],
               "unit_id": ids[code]} for code in city.departments]
    users += [{"username": leader_username(code), "role": Role.DEPT_LEADER, "display_name": f"{names[code]}负责人",
               "unit_id": ids[code]} for code in city.departments]
    users += [{"username": county_duty_username(u.code), "role": Role.DEPT, "display_name": f"{u.name}值班员",
               "unit_id": ids[u.code]} for u in city.units if u.kind == "county"]
    session.execute(insert(User), users)

    counts: dict[str, int] = {}
    for unit in city.units:
        counts[f"units.{unit.kind}"] = counts.get(f"units.{unit.kind}", 0) + 1
    counts["units"] = len(city.units)
    counts["business_systems"] = len(city.systems)
    counts["users"] = len(users)
    return counts, [u["username"] for u in users]


def issue_demo_tokens(session: Session, principal: Principal, usernames: list[str]) -> dict[str, str]:
    """A fresh token for each demo user: username → secret, audited as one row."""
    with audit.batch(session, principal, action="demo.tokens", entity="api_token", entity_id="demo") as summary:
        tokens = {name: service.create_token(session, principal, name, description="demo")[1] for name in usernames}
        summary["users"] = sorted(tokens)
    return tokens


def write_tokens_file(path: Path, tokens: dict[str, str], *, base_url: str | None = None) -> Path:
    """The demo's tokens, readable by the operator only (they are bearer credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"tokens": tokens}
    if base_url:
        payload["api"] = base_url
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, ensure_ascii=False, indent=2)
    return path
