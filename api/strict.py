"""Input the API does not understand is refused, never ignored.

A misspelt filter (``?tiket=50``) or one an endpoint does not have used to be dropped, and the whole list came back:
an answer that reads as "this filter matched everything". Every operation of the API now accepts exactly the query
parameters it declares (the ones its OpenAPI document lists, since both come from the route's signature), and
refuses any other with a problem naming it and the accepted ones. Values outside a closed set (an enum, a Literal)
are refused by the route's own validation, which names the accepted values.

Pages that are not API operations (the big screen, /metrics) read their own query in the browser or not at all, and
are left alone: they are not in the OpenAPI document either.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from cloudctl.core.errors import FieldError, InvalidInput

__all__ = ["accepted_query", "refuse_unknown_query"]


def _names(dependant: Dependant) -> frozenset[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _names(sub)
    return frozenset(names)


# Per route (routes are not hashable): the route itself is kept, so its id is never another's.
_accepted: dict[int, tuple[APIRoute, frozenset[str]]] = {}


def accepted_query(route: APIRoute) -> frozenset[str]:
    """The query parameters ``route`` declares, its dependencies' included (by the name a client sends)."""
    known = _accepted.get(id(route))
    if known is None:
        known = _accepted[id(route)] = (route, _names(route.dependant))
    return known[1]


def refuse_unknown_query(route: APIRoute, request: Request) -> None:
    """Refuse a query parameter ``route`` does not declare, naming it and the accepted ones. Called by every API
    route before its dependencies are solved (api.deps.UnitOfWorkRoute): a plain call, not a dependency, which
    would cost every request a turn of FastAPI's dependency solver."""
    if not route.include_in_schema or not request.scope.get("query_string"):
        return
    accepted = accepted_query(route)
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in accepted]
    if not unknown:
        return
    choices = ", ".join(sorted(accepted)) or "none"
    raise InvalidInput(
        f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(repr(n) for n in unknown)}; "
        f"{request.method} {route.path_format} accepts: {choices}",
        errors=[FieldError(name, f"unknown query parameter; accepted: {choices}") for name in unknown])
