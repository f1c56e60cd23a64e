"""A query parameter an operation does not take is refused, not ignored.

A misspelt filter (``?unti=990100-D01``) that were ignored would answer the whole list as if it were the filtered
one, and a department would act on the wrong records. Every ``/api/`` operation therefore answers 422 naming the
parameter it does not know, and the ones it does.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from cloudctl.core.errors import InvalidInput

__all__ = ["refuse_unknown_query"]

_known: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _parameters(route: APIRoute) -> frozenset[str]:
    names = _known.get(id(route))
    if names is None:
        names = _known[id(route)] = frozenset(_query_names(route.dependant))
    return names


def refuse_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.path.startswith("/api/") or not request.query_params:
        return
    known = _parameters(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"this operation takes no query parameter {unknown[0]!r} (it takes: {takes})",
                           field=unknown[0])
