"""Run the API with uvicorn (``cloudctl serve``)."""

from __future__ import annotations

import uvicorn

from api.app import create_app

__all__ = ["run"]


def run(*, host: str = "127.0.0.1", port: int = 8000, run_jobs: bool = True) -> None:
    uvicorn.run(create_app(run_jobs=run_jobs), host=host, port=port, log_level="info",
                proxy_headers=False, server_header=False)
