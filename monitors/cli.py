"""`cloudctl metrics` and `cloudctl monitors serve`: the exposition without the API."""

from __future__ import annotations

import os
import sys
import threading

import typer

from cloudctl.core.cli_support import unit_of_work
from cloudctl.core.output import console

__all__ = ["metrics_command", "monitors_app"]

monitors_app = typer.Typer(help="Monitoring: the Prometheus exporter outside the API.", no_args_is_help=True)


def metrics_command() -> None:
    """Print the current Prometheus exposition of every domain."""
    # Imported here, not with the CLI: every other command would pay for the exporter's import.
    from prometheus_client import generate_latest

    from cloudctl.core.db import set_process_kind
    from monitors.exposition import build_registry

    set_process_kind("exporter")
    with unit_of_work():
        pass  # the same schema check every command makes: a stale database says so, not a stack trace
    sys.stdout.write(generate_latest(build_registry(refresh_seconds=0)).decode())


@monitors_app.command("serve")
def monitors_serve(port: int = typer.Option(9464, min=1, max=65535),
                   host: str = typer.Option("127.0.0.1", help="address to listen on")) -> None:
    """Serve /metrics for Prometheus in a process of its own (threaded: a scrape never waits on another)."""
    from prometheus_client import start_http_server

    from cloudctl.core.db import set_process_kind
    from monitors.exposition import build_registry

    set_process_kind("exporter")
    with unit_of_work():
        pass
    registry = build_registry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # The API processes (`cloudctl serve --workers N`) write their request metrics there; served summed here.
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    server, thread = start_http_server(port, addr=host, registry=registry)
    console.print(f"serving metrics on http://{host}:{port}/metrics (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        thread.join(timeout=5)
