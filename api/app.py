"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import version
from typing import Any

from alembic.runtime.migration import MigrationContext
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api import hardening
from api.contract import install_contract
from api.deps import SessionDep, UnitOfWorkRoute
from api.docs import install_docs
from api.metrics import RequestMetrics
from api.probe import DatabaseAway, DatabaseProbe
from api.problems import install_problem_handlers
from api.request_id import RequestId
from api.routers import attachments, audit, billing, compute, extranet, jobs, notify, org, reclaim, screen, security
from cloudctl.core.config import Settings, get_settings, reset_settings
from cloudctl.core.db import get_engine
from cloudctl.core.errors import FieldError, Unavailable
from cloudctl.core.jobs import JobRunner, recent_workers
from cloudctl.core.migrate import head_revision
from monitors.collector import SessionFactory
from monitors.exposition import build_registry, database_sessions

__all__ = ["create_app"]


_frozen = False


def _freeze_startup_objects() -> None:
    """Everything made while starting (modules, schemas, routes) lives as long as the process: out of the cyclic
    collector's sight, a full collection under load walks only what requests made (p99 at 32 connections halved).
    Once per process."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None, *, run_jobs: bool = False,
               metrics_sessions: SessionFactory = database_sessions) -> FastAPI:
    if settings is not None:
        reset_settings(settings)

    probe = DatabaseProbe()  # /healthz's own way to the database, closed with the app

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The embedded default runs jobs in this process; a bigger deployment runs `cloudctl job work`.
        _freeze_startup_objects()
        runner = JobRunner(get_engine(kind="worker")) if run_jobs else None
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            await probe.close()

    app = FastAPI(
        title="cloudctl",
        summary="Government cloud (政务云) and e-government extranet (电子政务外网) operations API",
        version=version("cloudctl"),
        lifespan=lifespan,
        # Served by install_docs from this package's own files: FastAPI's pages load theirs from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    # Sync handlers run, commit and close their unit of work in one thread-pool turn (api.deps), and an unknown
    # query parameter is refused, never ignored (api.strict).
    app.router.route_class = UnitOfWorkRoute
    install_problem_handlers(app)
    install_docs(app)
    install_contract(app)
    limits = get_settings()
    hardening.install(app, max_body_bytes=limits.api_max_body_bytes, max_json_depth=limits.api_max_json_depth,
                      uploads={"/api/v1/attachments": limits.attachment_max_bytes})
    app.add_middleware(RequestId)  # outermost: every answer and every log line of the request carries its id
    # One registry per app: the domains' collector, and request counts and latency.
    registry = build_registry(metrics_sessions)
    app.add_middleware(RequestMetrics, registry=registry, excluded=frozenset({"/metrics"}))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        # The collector queries the database: never on the event loop (make_asgi_app would collect right there).
        body = await run_in_threadpool(generate_latest, registry)
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)

    # Before the domains' routes: routes are matched in order, and the probes are called most often.
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        # No session and no thread: the probe asks only whether the database answers (api.probe).
        try:
            await probe.ask()
        except DatabaseAway as exc:
            raise Unavailable(f"the database does not answer: {exc}", field="database") from None
        return {"status": "ok", "database": "ok"}

    head = head_revision()

    @app.get("/readyz", tags=["health"])
    def readyz(session: SessionDep) -> dict[str, Any]:
        """Ready to serve: the database answers, is at the schema this cloudctl needs, and a job worker is there
        (its heartbeat recent; unless the settings say the API is ready without one)."""
        settings = get_settings()
        try:
            current = MigrationContext.configure(session.connection()).get_current_revision()
            workers = len(recent_workers(session, within=timedelta(seconds=settings.ready_worker_seconds)))
        except SQLAlchemyError as exc:
            raise Unavailable(f"the database does not answer: {type(exc).__name__}", field="database") from None
        problems = []
        if current != head:
            problems.append(FieldError("schema", f"the database is at {current or 'none'}, cloudctl needs {head}: "
                                                 "run `cloudctl db upgrade`"))
        if settings.ready_needs_worker and not workers:
            problems.append(FieldError("workers", f"no job worker's heartbeat in the last "
                                                  f"{settings.ready_worker_seconds:g} s: start `cloudctl job work`"))
        if problems:
            raise Unavailable("; ".join(f"{p.field}: {p.reason}" for p in problems), errors=problems)
        return {"status": "ready", "database": "ok", "schema": current, "workers": workers}

    for router in (org.router, compute.router, billing.router, reclaim.router, extranet.router, security.router,
                   notify.router, attachments.router, audit.router, jobs.router, screen.router):
        app.include_router(router)

    return app
