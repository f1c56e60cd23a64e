"""A domain's router declines, without trying its routes, a path none of them can answer, and only such a path."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Match

from api.app import create_app
from api.routers import org, screen, security
from api.routing import DomainRouter, path_head


def test_path_heads_stop_at_the_first_parameter_and_at_four_segments() -> None:
    assert path_head("/api/v1/units") == ("api", "v1", "units")
    assert path_head("/api/v1/units/{code}") == ("api", "v1", "units")
    assert path_head("/api/v1/security/duty/periods/{period_id}") == ("api", "v1", "security", "duty")
    assert path_head("/screen") == ("screen",)
    assert path_head("/{anything}") == ()


def test_a_router_answers_its_own_paths_and_declines_the_rest() -> None:
    assert org.router.answers("/api/v1/units")
    assert org.router.answers("/api/v1/units/990100-D01/children")
    assert org.router.answers("/api/v1/me/")
    assert not org.router.answers("/api/v1/servers")
    assert not org.router.answers("/api/v1")
    assert not org.router.answers("/api/v1/unitsx")  # segments, not characters
    assert security.router.answers("/api/v1/security/duty/on-shift")
    assert not security.router.answers("/api/v1/securityfoo/x")
    assert screen.router.answers("/screen")
    assert screen.router.answers("/static/screen.js")
    assert not screen.router.answers("/static/other.js")


def test_a_route_added_later_is_answered_too() -> None:
    router = DomainRouter(prefix="/api/v1")

    @router.get("/things")
    def things() -> dict[str, str]:
        return {}

    assert router.answers("/api/v1/things")
    assert not router.answers("/api/v1/others")

    @router.get("/others")  # a second head, registered after the first match was tried
    def others() -> dict[str, str]:
        return {}

    assert router.answers("/api/v1/others")


def test_every_route_of_the_app_is_reached_through_its_router() -> None:
    app = create_app()
    reached = 0
    for context in iter_route_contexts(app.routes):
        route = context.route
        if not isinstance(route, APIRoute):
            continue
        path = re.sub(r"\{[^}]+\}", "1", context.path)
        method = sorted(route.methods or {"GET"})[0]
        scope = {"type": "http", "path": path, "root_path": "", "method": method}
        matched = [r for r in app.router.routes if r.matches(dict(scope))[0] == Match.FULL]
        assert matched, f"{method} {context.path}: no router matches {path}"
        reached += 1
    assert reached > 100


def test_a_path_no_router_answers_is_a_404_problem() -> None:
    with TestClient(create_app()) as client:
        response = client.get("/api/v1/nosuch")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
