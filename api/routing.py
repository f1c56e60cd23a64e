"""A domain's router: its routes, and the paths they can answer, so a request elsewhere is not tried against each.

FastAPI finds a request's route by trying every route of every included router in turn, and the router that matched
twice: about a microsecond a route, over 150 of them (a hundred-odd microseconds) for a route of the last router,
before the request does anything. A :class:`DomainRouter` knows the literal heads of its routes' paths (the
segments before the first path parameter, at most four: ``/api/v1/servers``, ``/api/v1/security/duty``,
``/screen``), and tells FastAPI "no match" at once for a path under none of them. Include it without a prefix of
its own (give the router the prefix): the heads are read from its routes' paths.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import Scope

from api.deps import UnitOfWorkRoute

__all__ = ["DomainRouter", "path_head"]

_HEAD_SEGMENTS = 4


def _route_path(scope: Scope) -> str:
    """The path routes are matched against: the request's, without the root path a proxy serves the API under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def path_head(path: str) -> tuple[str, ...]:
    """The literal segments a route's path begins with, before any ``{parameter}``, at most four."""
    head: list[str] = []
    for segment in path.split("/")[1:_HEAD_SEGMENTS + 1]:
        if "{" in segment:
            break
        head.append(segment)
    return tuple(head)


class DomainRouter(APIRouter):
    """An APIRouter of :class:`~api.deps.UnitOfWorkRoute` routes that declines, without trying its routes, a path
    none of them can answer."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", UnitOfWorkRoute)
        super().__init__(**kwargs)
        self._heads: dict[int, frozenset[tuple[str, ...]]] = {}
        self._heads_of = -1  # how many routes the heads were read from

    def _route_heads(self) -> dict[int, frozenset[tuple[str, ...]]]:
        if self._heads_of != len(self.routes):
            by_length: dict[int, set[tuple[str, ...]]] = {}
            for route in self.routes:
                path = getattr(route, "path", None)
                # A route without a path of its own (an included router) may answer anything.
                head = path_head(path) if isinstance(path, str) else ()
                by_length.setdefault(len(head), set()).add(head)
            self._heads = {length: frozenset(heads) for length, heads in by_length.items()}
            self._heads_of = len(self.routes)
        return self._heads

    def answers(self, path: str) -> bool:
        """Whether one of this router's routes may answer ``path`` (False: none can)."""
        segments = tuple(path.split("/")[1:_HEAD_SEGMENTS + 1])
        return any(segments[:length] in heads for length, heads in self._route_heads().items())

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and not self.answers(_route_path(scope)):
            return Match.NONE, {}
        return super().matches(scope)

