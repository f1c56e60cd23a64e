"""Request counts and latency for Prometheus, as pure ASGI middleware.

The route that answered is read from the scope the router filled in, so a request is matched
against the routes once, not a second time for its metric. The families keep the names the
dashboards read: ``cloudctl_api_http_requests_total{handler,method,status}`` (status as 2xx, 4xx, …)
and ``cloudctl_api_http_request_duration_seconds{handler,method}``. A path no route serves is
counted under ``handler="none"``, so a scan of random paths cannot grow the label set.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestMetrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry, excluded: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.excluded = excluded
        self.requests = Counter("http_requests", "API requests by route, method and status class",
                                ("handler", "method", "status"), namespace="cloudctl", subsystem="api",
                                registry=registry)
        self.duration = Histogram("http_request_duration_seconds", "API request latency by route and method",
                                  ("handler", "method"), namespace="cloudctl", subsystem="api", buckets=_BUCKETS,
                                  registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            handler = getattr(route, "path", None) or "none"
            if handler not in self.excluded:
                method = scope.get("method", "")
                self.requests.labels(handler, method, f"{status // 100}xx").inc()
                self.duration.labels(handler, method).observe(time.perf_counter() - started)
