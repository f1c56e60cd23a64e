"""``cloudctl demo``: the demo city on the embedded default (SQLite + simulator), seeded and served."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.cli_support import OutputOption, unit_of_work
from cloudctl.core.config import get_settings
from cloudctl.core.db import get_engine
from cloudctl.core.errors import NotAuthenticated
from cloudctl.core.migrate import upgrade
from cloudctl.core.output import OutputFormat, console
from cloudctl.demo.seed import STAFF_USERS, dept_username, issue_demo_tokens, seed_demo, write_tokens_file
from cloudctl.org.models import Unit, UnitKind, User
from cloudctl.org.service import authenticate_token

__all__ = ["demo_app"]

demo_app = typer.Typer(
    help="The demo city (演示城市): `cloudctl demo` migrates, seeds and serves it; `demo seed` only seeds.",
    invoke_without_command=True,
)


def _tokens_path(tokens_file: Path | None) -> Path:
    return tokens_file or get_settings().data_dir / "demo-tokens.json"


@demo_app.command("seed")
def demo_seed(
    seed: int = typer.Option(2026, "--seed", help="the same seed builds the same city"),
    tokens_file: Path | None = typer.Option(None, help="where to write the demo tokens (default: data dir)"),
    output: OutputFormat = OutputOption,
) -> None:
    """Build the demo city into an empty database and write a token per demo user to a file."""
    with unit_of_work() as (session, principal):
        result = seed_demo(session, principal, seed=seed)
        tokens = issue_demo_tokens(session, principal, result.users)
    path = write_tokens_file(_tokens_path(tokens_file), tokens)
    if output is OutputFormat.JSON:
        print(json.dumps({"city": result.city, "counts": result.counts, "tokens_file": str(path)},
                         ensure_ascii=False, indent=2))
        return
    console.print(f"[bold]{result.city}[/] seeded (seed {seed}):")
    for key, value in result.counts.items():
        console.print(f"  {key:32} {value:>6}")
    console.print(f"demo tokens written to [bold]{path}[/] (mode 600)")


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
    engine = get_engine()
    upgrade(engine)
    path = _tokens_path(None)
    with unit_of_work() as (session, principal):
        has_city = session.scalar(select(Unit.id).where(Unit.kind == UnitKind.CITY)) is not None
        if not has_city:
            result = seed_demo(session, principal, seed=seed)
            console.print(f"seeded the demo city [bold]{result.city}[/]: "
                          f"{result.counts['units']} units, {result.counts['business_systems']} business systems")
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
