"""The root of the ``cloudctl`` command: each domain package contributes its own Typer app."""

from __future__ import annotations

import logging
from importlib.metadata import version as package_version
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from cloudctl.billing.cli import budget_app, tariff_app
from cloudctl.compute.cli import cloud_app, quota_app, report_app, request_app, server_app, volume_app
from cloudctl.core.cli import audit_app, db_app, job_app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import get_settings
from cloudctl.core.errors import CloudctlError
from cloudctl.core.logs import configure_logging
from cloudctl.core.output import err_console
from cloudctl.demo.cli import demo_app
from cloudctl.extranet.cli import extranet_app
from cloudctl.notify.cli import notify_app
from cloudctl.org.cli import system_app, token_app, unit_app, user_app
from cloudctl.reclaim.cli import reclaim_app
from cloudctl.security.cli import security_app
from monitors.cli import metrics_command, monitors_app

__all__ = ["app", "main"]

class _CloudctlGroup(TyperGroup):
    """Turns a cloudctl error anywhere below into one red line and exit code 1, never a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CloudctlError as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, markup=True)
            raise typer.Exit(1) from None
        except OverflowError:
            # An id or count typed beyond the 64-bit integers both databases keep reaches SQLite's driver as is
            # (PostgreSQL answers "not found" or a refused value); no such row can exist, so say so in one line.
            err_console.print(f"[red]error:[/] a number given is beyond what the database keeps "
                              f"(at most {2**63 - 1})", soft_wrap=True, markup=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="cloudctl",
    cls=_CloudctlGroup,
    help="cloudctl: the operations console of the government cloud (政务云) and e-government extranet (电子政务外网).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cloudctl {package_version('cloudctl')}")
        raise typer.Exit()


@app.callback()
def root(
    act_as: str | None = typer.Option(
        None, "--as", envvar="CLOUDCTL_USER",
        help="act as this cloudctl user (its role and unit apply); default: the local administrator",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log what happens underneath"),
    _show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit"),
) -> None:
    cli_state.act_as = act_as
    configure_logging(logging.INFO if verbose else logging.WARNING, fmt=_log_format())


def _log_format() -> str:
    try:
        return get_settings().log_format
    except ValueError:  # settings that do not load are reported by the command that needs them, in one line
        return "text"


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, min=1, max=65535),
    jobs: bool = typer.Option(True, "--jobs/--no-jobs",
                              help="run queued jobs inside the API process (one process only)"),
    workers: int = typer.Option(1, "--workers", "-w", min=1, max=64,
                                help="API processes sharing the port; more than one never runs jobs"),
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) with uvicorn.

    With --workers N, run `cloudctl job work` beside it: in multi-process mode no API process runs jobs."""
    from api.serve import run

    if workers > 1 and jobs:
        err_console.print("[yellow]--workers > 1: jobs are left to `cloudctl job work`[/]")
    run(host=host, port=port, run_jobs=jobs and workers == 1, workers=workers)


app.add_typer(db_app, name="db")
app.add_typer(unit_app, name="unit")
app.add_typer(system_app, name="system")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(cloud_app, name="cloud")
app.add_typer(quota_app, name="quota")
app.add_typer(request_app, name="request")
app.add_typer(server_app, name="server")
app.add_typer(volume_app, name="volume")
app.add_typer(report_app, name="report")
app.add_typer(tariff_app, name="tariff")
app.add_typer(budget_app, name="budget")
app.add_typer(reclaim_app, name="reclaim")
app.add_typer(extranet_app, name="extranet")
app.add_typer(security_app, name="sec")
app.add_typer(notify_app, name="notify")
app.add_typer(monitors_app, name="monitors")
app.command("metrics")(metrics_command)
app.add_typer(audit_app, name="audit")
app.add_typer(job_app, name="job")
app.add_typer(demo_app, name="demo")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
