"""``cloudctl demo``: the demo city on the embedded default (SQLite + simulator), seeded and served.

Both commands bring the database to the newest schema first, and show each step of the seeding
with its time as it goes (on standard error when the output is JSON, and only on a terminal then).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import typer
from rich.console import Console
from rich.markup import escape
from rich.status import Status
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.cli_support import OutputOption, unit_of_work
from cloudctl.core.config import get_settings
from cloudctl.core.db import get_engine
from cloudctl.core.errors import NotAuthenticated
from cloudctl.core.migrate import current_revision, head_revision, upgrade
from cloudctl.core.output import OutputFormat, console, err_console
from cloudctl.demo.seed import (
    STAFF_USERS,
    DemoSeedResult,
    dept_username,
    issue_demo_tokens,
    seed_demo,
    write_tokens_file,
)
from cloudctl.org.models import Unit, UnitKind, User
from cloudctl.org.service import authenticate_token

__all__ = ["StepLines", "demo_app"]

demo_app = typer.Typer(
    help="The demo city (演示城市): `cloudctl demo` migrates, seeds and serves it; `demo seed` only seeds.",
    invoke_without_command=True,
)


def _tokens_path(tokens_file: Path | None) -> Path:
    return tokens_file or get_settings().data_dir / "demo-tokens.json"


class StepLines:
    """The seeding as it goes: a spinner on the running step, then one line per finished step with its time."""

    def __init__(self, out: Console | None) -> None:
        self.out = out
        self.status: Status | None = None

    def __enter__(self) -> StepLines:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.status is not None:
            self.status.stop()

    def started(self, step: str) -> None:
        if self.out is None:
            return
        if self.status is None:
            self.status = self.out.status(step)
            self.status.start()
        self.status.update(f"{step} …")

    def finished(self, step: str, seconds: float, note: str = "") -> None:
        if self.out is not None:
            self.out.print(f"[green]✓[/] {step:14} {seconds:6.2f} s  [dim]{escape(note)}[/]", highlight=False,
                           markup=True)

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """A step of the command's own (migrating, issuing tokens); a note appended to the list is shown with it."""
        note: list[str] = []
        self.started(name)
        started = time.perf_counter()
        yield note
        self.finished(name, time.perf_counter() - started, " ".join(note))


def _migrate(lines: StepLines) -> None:
    """Bring the database to the newest schema, if it is not there yet (an empty database included)."""
    engine = get_engine()
    current, head = current_revision(engine), head_revision()
    if current != head:
        with lines.step("migrate") as note:
            upgrade(engine)
            note.append(f"{current or 'empty'} → {head}")


def _seed(lines: StepLines, seed: int) -> tuple[DemoSeedResult, dict[str, str]]:
    with unit_of_work() as (session, principal):
        result = seed_demo(session, principal, seed=seed, progress=lines)
        with lines.step("tokens") as note:
            tokens = issue_demo_tokens(session, principal, result.users)
            note.append(f"{len(tokens)} demo users")
    return result, tokens


@demo_app.command("seed")
def demo_seed(
    seed: int = typer.Option(2026, "--seed", help="the same seed builds the same city"),
    tokens_file: Path | None = typer.Option(None, help="where to write the demo tokens (default: data dir)"),
    output: OutputFormat = OutputOption,
) -> None:
    """Build the demo city into an empty database (migrated first) and write a token per demo user to a file."""
    # JSON goes to programs: the steps go to standard error then, and only when a person watches it
    # (the stream itself is a terminal: a forced-colour setting must not put them into a captured output).
    shown = console if output is OutputFormat.TABLE else err_console if sys.stderr.isatty() else None
    with StepLines(shown) as lines:
        _migrate(lines)
        result, tokens = _seed(lines, seed)
    path = write_tokens_file(_tokens_path(tokens_file), tokens)
    if output is OutputFormat.JSON:
        print(json.dumps({"city": result.city, "counts": result.counts, "tokens_file": str(path),
                          "seconds": {step: round(took, 3) for step, took in result.seconds.items()}},
                         ensure_ascii=False, indent=2))
        return
    console.print(f"[bold]{escape(result.city)}[/] seeded (seed {seed}) in {sum(result.seconds.values()):.1f} s:",
                  markup=True)
    for key, value in result.counts.items():
        console.print(f"  {key:32} {value:>6}")
    console.print(f"demo tokens written to [bold]{escape(str(path))}[/] (mode 600)", markup=True)


@demo_app.callback()
def demo_main(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="address to serve on"),
    port: int = typer.Option(8000, min=1, max=65535),
    seed: int = typer.Option(2026, "--seed"),
) -> None:
    """Migrate the database, seed the demo city if it is empty, and serve the API."""
    if ctx.invoked_subcommand is not None:
        return
    path = _tokens_path(None)
    tokens: dict[str, str] | None = None
    with StepLines(console) as lines:
        _migrate(lines)
        with unit_of_work() as (session, _):
            has_city = session.scalar(select(Unit.id).where(Unit.kind == UnitKind.CITY)) is not None
        if not has_city:
            result, tokens = _seed(lines, seed)
            console.print(f"seeded the demo city [bold]{escape(result.city)}[/]: "
                          f"{result.counts['units']} units, {result.counts['business_systems']} business systems",
                          markup=True)
    if tokens is None:
        with unit_of_work() as (session, principal):
            tokens = _reuse_tokens(session, path)
            if tokens is None:
                wanted = [*STAFF_USERS, *(dept_username(code) for code in _department_codes(session))]
                existing = set(session.scalars(select(User.username)))
                # Every demo user: staff and departments first, then leaders and county duty users.
                wanted += sorted(existing - set(wanted))
                tokens = issue_demo_tokens(session, principal, [u for u in wanted if u in existing])
    base_url = f"http://{host}:{port}"
    write_tokens_file(path, tokens, base_url=base_url)
    dept_user = next((name for name in tokens if name.startswith("dept-")), None)
    console.print(f"API        {base_url}/api/v1")
    console.print(f"docs       {base_url}/docs")
    console.print(f"tokens     {path}")
    console.print(f"ops token  {tokens.get('ops', '')}", markup=False, highlight=False, soft_wrap=True)
    if dept_user:
        console.print(f"dept token ({dept_user}) {tokens[dept_user]}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"try:       curl -H 'Authorization: Bearer {tokens.get('ops', '')}' {base_url}/api/v1/units",
                  markup=False, highlight=False, soft_wrap=True)
    from api.serve import run

    run(host=host, port=port, run_jobs=True)


def _department_codes(session: Session) -> list[str]:
    return list(session.scalars(select(Unit.code).where(Unit.kind == UnitKind.DEPARTMENT).order_by(Unit.code)))


def _reuse_tokens(session: Session, path: Path) -> dict[str, str] | None:
    """Tokens from an earlier run, so a second `cloudctl demo` keeps the credentials people copied.

    None when there are none or any of them no longer opens this database (a new database file).
    """
    if not path.is_file():
        return None
    try:
        tokens = json.loads(path.read_text(encoding="utf-8")).get("tokens")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(tokens, dict) or not tokens:
        return None
    try:
        for secret in tokens.values():
            authenticate_token(session, str(secret))
    except NotAuthenticated:
        return None
    return {str(k): str(v) for k, v in tokens.items()}
