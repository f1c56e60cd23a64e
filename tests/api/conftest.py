"""An API client over the app, sharing the test's transaction so every test starts from a clean city."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import get_session
from tests.factories import MiniCity, build_mini_city


@pytest.fixture
def city(session: Session) -> MiniCity:
    city = build_mini_city(session, with_cloud=True)
    # Commit to the test's savepoint: a refused request rolls back its own work, not the city.
    session.commit()
    return city


@pytest.fixture(scope="session")
def api_app() -> FastAPI:
    """One app for the whole run: building its routes and middleware stack costs more than most tests."""
    return create_app()


@pytest.fixture(scope="session")
def api_client(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app) as client:
        yield client


@pytest.fixture
def client(session: Session, api_app: FastAPI, api_client: TestClient) -> Iterator[TestClient]:
    def test_session() -> Iterator[Session]:
        # The request commits to a savepoint of the test's transaction, rolled back after the test.
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    api_app.dependency_overrides[get_session] = test_session
    api_client.cookies.clear()
    try:
        yield api_client
    finally:
        api_app.dependency_overrides.pop(get_session, None)


def auth(city: MiniCity, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {city.tokens[role]}"}
