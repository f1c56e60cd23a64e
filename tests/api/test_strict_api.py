"""Input the API does not understand is refused with a problem that says what it accepts, never ignored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.strict import accepted_query
from tests.api.conftest import auth
from tests.factories import MiniCity


def _problem(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(("path", "param"), [
    ("/api/v1/requests?tiket=50", "tiket"),  # a misspelt filter
    ("/api/v1/units?mlps_level=3", "mlps_level"),  # a filter this list does not have
    ("/api/v1/extranet/access-rate?unit=990100-D01", "unit"),  # an endpoint without filters
])
def test_an_unknown_query_parameter_is_refused_naming_it_and_the_accepted_ones(
        client: TestClient, city: MiniCity, path: str, param: str) -> None:
    problem = _problem(client.get(path, headers=auth(city, "ops")))
    assert [e["field"] for e in problem["errors"]] == [param]
    assert "unknown query parameter" in problem["errors"][0]["reason"]
    if path.startswith("/api/v1/requests"):
        assert "accepted: limit, offset, status, unit" in problem["errors"][0]["reason"]
    if "access-rate" in path:
        assert problem["errors"][0]["reason"].endswith("accepted: none")


def test_known_parameters_still_filter(client: TestClient, city: MiniCity) -> None:
    page = client.get("/api/v1/units", params={"kind": "county", "limit": 5}, headers=auth(city, "ops"))
    assert page.status_code == 200, page.text
    assert [u["code"] for u in page.json()["items"]] == ["990102"]


@pytest.mark.parametrize(("path", "field", "named"), [
    ("/api/v1/requests?status=pending", "status", "'submitted'"),
    ("/api/v1/servers?status=RUNNING", "status", "SHUTOFF"),
    ("/api/v1/jobs?kind=provison", "kind", "compute.provision"),
    ("/api/v1/quotas?cloud=test-clod", "cloud", "test-cloud"),
    ("/api/v1/servers?cloud=test-clod", "cloud", "test-cloud"),
    ("/api/v1/reclaim/recommendations?cloud=test-clod", "cloud", "test-cloud"),
])
def test_an_unknown_filter_value_is_refused_naming_the_accepted_ones(
        client: TestClient, city: MiniCity, path: str, field: str, named: str) -> None:
    problem = _problem(client.get(path, headers=auth(city, "ops")))
    assert problem["errors"][0]["field"] == field
    assert named in problem["errors"][0]["reason"]


def test_every_operation_accepts_exactly_what_its_openapi_document_lists_and_declares_the_refusal(
        api_app: FastAPI) -> None:
    document = api_app.openapi()
    checked = 0
    for context in iter_route_contexts(api_app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in context.methods or ():
            operation = document["paths"][context.path_format][method.lower()]
            listed = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            assert listed == accepted_query(route), f"{method} {context.path_format}"
            # Even one without parameters refuses an unknown one: its document says it may answer 422.
            assert "422" in operation["responses"], f"{method} {context.path_format}"
            checked += 1
    assert checked > 80


def test_pages_that_read_their_own_query_are_left_alone(client: TestClient) -> None:
    page = client.get("/screen", params={"token": "x", "refresh": "5"})
    assert page.status_code == 200


@pytest.mark.parametrize(("body", "line", "column"), [
    ('{"zone": "public", "purpose": x}', 1, 31),
    ('{\n  "zone": "public",\n  "purpose": "视频",\n  oops\n}', 4, 3),
])
def test_invalid_json_names_the_line_and_column(client: TestClient, city: MiniCity, body: str, line: int,
                                                column: int) -> None:
    problem = _problem(client.post("/api/v1/extranet/ip-applications", content=body.encode(),
                                   headers={**auth(city, "dept"), "Content-Type": "application/json"}))
    assert problem["errors"][0]["field"] == "body"
    assert f"line {line}, column {column}" in problem["errors"][0]["reason"]
    assert "not valid JSON" in problem["detail"]
