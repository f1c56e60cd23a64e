"""Token verification for the API: one lookup that writes nothing, then a short cache that a change forgets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.errors import NotAuthenticated
from cloudctl.org import service
from cloudctl.org.models import ApiToken, User
from tests.factories import ADMIN, MiniCity, build_mini_city


@pytest.fixture
def city(session: Session, settings: Settings) -> Iterator[MiniCity]:
    city = build_mini_city(session)
    session.commit()
    service.token_cache.clear()
    yield city
    service.token_cache.clear()


@pytest.fixture
def seen(session: Session) -> Iterator[list[str]]:
    """The SQL statements the session's connection runs."""
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", record)
    yield statements
    event.remove(bind, "before_cursor_execute", record)


def test_one_lookup_then_none_while_cached(session: Session, city: MiniCity, seen: list[str]) -> None:
    first = service.verify_token(session, city.tokens["dept"])
    assert first.principal.username == "dept-user"
    assert first.principal.unit_code == "990100-D01"
    assert first.stale  # never used: the caller is to stamp it
    assert [s for s in seen if s.lstrip().upper().startswith("SELECT")] != []
    assert not session.dirty
    assert not session.new
    seen.clear()
    again = service.verify_token(session, city.tokens["dept"])
    assert seen == []
    assert again.principal == first.principal
    assert not again.stale


def test_the_cache_lasts_as_long_as_configured(session: Session, city: MiniCity, settings: Settings) -> None:
    service.verify_token(session, city.tokens["ops"])
    # Gone from the database behind the cache's back (no ORM change the cache could notice): still cached ...
    session.execute(delete(ApiToken).where(ApiToken.id.in_(
        select(ApiToken.id).join(ApiToken.user).where(User.username == "ops-user"))))
    assert service.verify_token(session, city.tokens["ops"]).principal.username == "ops-user"
    # ... for no time at all when the cache is off.
    reset_settings(settings.model_copy(update={"api_token_cache_seconds": 0}))
    with pytest.raises(NotAuthenticated):
        service.verify_token(session, city.tokens["ops"])


def test_a_revocation_in_this_process_is_seen_at_once(session: Session, city: MiniCity) -> None:
    check = service.verify_token(session, city.tokens["dept"])
    service.revoke_token(session, ADMIN, str(check.token_id))
    session.commit()
    with pytest.raises(NotAuthenticated):
        service.verify_token(session, city.tokens["dept"])


def test_a_disabled_user_is_seen_at_once(session: Session, city: MiniCity) -> None:
    service.verify_token(session, city.tokens["duty"])
    session.scalars(select(User).where(User.username == "duty-user")).one().active = False
    session.commit()
    with pytest.raises(NotAuthenticated):
        service.verify_token(session, city.tokens["duty"])


def test_an_unknown_token_is_never_cached(session: Session, city: MiniCity) -> None:
    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            service.verify_token(session, city.tokens["dept"][:-2] + "xx")
    assert service.cached_token(city.tokens["dept"][:-2] + "xx") is None
