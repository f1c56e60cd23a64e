"""Run the API with uvicorn (``cloudctl serve``).

One process (the embedded default) may run jobs in a thread beside the API. With ``workers > 1`` uvicorn starts
that many API processes sharing one socket; none of them runs jobs (``cloudctl job work`` does), every one has
its own database pool, and Prometheus scrapes ``cloudctl monitors serve`` (see the README's deployment notes).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from cloudctl.core.config import get_settings
from cloudctl.core.db import set_process_kind
from cloudctl.core.logs import configure_logging

__all__ = ["app_factory", "run"]


def app_factory() -> FastAPI:
    """The app of one of several API processes: no job thread."""
    set_process_kind("api")
    if get_settings().log_format == "json":
        configure_logging(logging.INFO, fmt="json")
    return create_app(run_jobs=False)


def _fresh_multiprocess_metrics() -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, every API process writes its request metrics to files there, which
    `cloudctl monitors serve` (given the same directory) sums: files of an earlier run are removed first, as
    prometheus-client asks."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)


def run(*, host: str = "127.0.0.1", port: int = 8000, run_jobs: bool = True, workers: int = 1) -> None:
    set_process_kind("api")
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "info", "proxy_headers": False,
                               "server_header": False}
    if get_settings().log_format == "json":
        # uvicorn's own lines through the root logger too, as JSON (its default config writes text).
        configure_logging(logging.INFO, fmt="json")
        options["log_config"] = None
    if workers > 1:
        _fresh_multiprocess_metrics()
        uvicorn.run("api.serve:app_factory", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(run_jobs=run_jobs), **options)
