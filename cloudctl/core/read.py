"""Who sees what, stated once: every list, show, summary, report and export reads through here.

The rule:

- A principal that is not scoped (admin, ops, secops, duty, auditor) sees every record its role may read.
- A scoped principal (``dept``) is bound to one unit and sees the records of that unit and of every unit
  under it (its subtree), nothing else. A record outside is *not found*, never *forbidden*, so a department
  cannot even learn that another unit's record exists; a record that belongs to no unit (an orphan server, a
  pool of the address plan) is outside every subtree.
- A ``unit`` filter (API) or ``--unit`` (CLI) means that unit and everything under it, whoever asks: a county
  finds its towns' and villages' records with it. A scoped principal naming a unit outside its subtree gets
  not-found on the filter.
- A page holds at most ``api_page_limit_max`` rows (configurable); a list answers ``(rows, total)``, which the
  API turns into ``{items, total, limit, offset}``. :func:`every` walks all of a list, page by page.
- Figures over the whole city (every unit's totals, the clouds' capacity, who is on shift, the block list) are
  for the roles that are not scoped; a scoped principal's figures are its subtree's. The big screen states
  panel by panel which is which (``monitors/screen.py``).

The unit tree lives in :mod:`cloudctl.org`, above this package: org registers how "a unit and everything under
it" is expressed in SQL (:func:`register_unit_tree`, from ``cloudctl.org.models``), so core never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Connection, Select, SQLColumnExpression, false, func, select
from sqlalchemy.orm import Session

from cloudctl.core.auth import Principal
from cloudctl.core.config import get_settings
from cloudctl.core.errors import InvalidInput, NotFound

__all__ = ["UnitTree", "bounds", "every", "one", "page", "register_unit_tree", "subtree", "visible",
           "within"]

T = TypeVar("T")
Q = TypeVar("Q", bound="Select[*tuple[Any, ...]]")


class UnitTree(Protocol):
    def __call__(self, path: str, unit: SQLColumnExpression[Any], /) -> ColumnElement[bool]:
        """True where ``unit`` (a unit id column) names the unit at ``path`` or one below it."""
        ...


_tree: UnitTree | None = None


def register_unit_tree(tree: UnitTree) -> None:
    """Org tells the kit how a subtree is expressed (it owns the units table and its materialised paths)."""
    global _tree
    _tree = tree


def subtree(path: str, unit: SQLColumnExpression[Any]) -> ColumnElement[bool]:
    """``unit`` names the unit at ``path`` or one below it: what every ``unit`` filter means."""
    if _tree is None:
        # Fail closed: without the tree nothing could be scoped, and nothing is shown unscoped by accident.
        raise RuntimeError("no unit tree registered: cloudctl.org.models registers it when loaded")
    return _tree(path, unit)


def visible(principal: Principal, unit: SQLColumnExpression[Any]) -> ColumnElement[bool] | None:
    """The condition that keeps ``principal`` inside its subtree; None when it sees everything."""
    if not principal.is_scoped:
        return None
    if principal.unit_path is None:
        # A dept user whose unit was never set sees nothing rather than everything.
        return false()
    return subtree(principal.unit_path, unit)


def within(query: Q, principal: Principal, *, unit: SQLColumnExpression[Any]) -> Q:
    """``query`` kept to the records ``principal`` may see, ``unit`` naming each record's owning unit id."""
    condition = visible(principal, unit)
    return query if condition is None else query.where(condition)


def one(session: Session, query: Select[T], *, missing: str, field: str = "id") -> T:
    """The one record ``query`` finds, or :class:`NotFound` — outside the principal's scope included."""
    row = session.scalar(query)
    if row is None:
        raise NotFound(missing, field=field)
    return row


def bounds(limit: int, offset: int) -> tuple[int, int]:
    """A page's size and start, refused outside 1..api_page_limit_max and below zero."""
    cap = get_settings().api_page_limit_max
    if not 1 <= limit <= cap:
        raise InvalidInput(f"must be between 1 and {cap}", field="limit")
    if offset < 0:
        raise InvalidInput("must not be negative", field="offset")
    return limit, offset


def page(session: Session, query: Select[T], *, limit: int, offset: int,
         order_by: Sequence[Any], rows: bool = False, count: Select[Any] | None = None) -> tuple[list[T], int]:
    """One page of ``query`` in ``order_by`` (end it with a unique column, so pages never overlap) and the
    count of every matching row.

    ``rows``: the query selects columns, not one entity; the page is its rows (which read like objects).
    ``count``: a cheaper query with as many rows to count (without joins that cannot change the count)."""
    limit, offset = bounds(limit, offset)
    paged = query.order_by(*order_by).limit(limit).offset(offset)
    # Rows of columns and the count are plain SQL results: run on the session's connection, they skip the ORM's
    # loading machinery (a quarter of a 50-row page's time, two thirds of a count's).
    connection = _connection(session)
    found: list[Any] = list(connection.execute(paged, execution_options=_PLAIN).all() if rows
                            else session.scalars(paged))
    if 0 < len(found) < limit or (offset == 0 and len(found) < limit):
        # A short page is the last one: the count is known without counting (a COUNT costs as much as the page).
        return found, offset + len(found)
    counted = count if count is not None else query
    total = connection.scalar(select(func.count()).select_from(counted.order_by(None).subquery()),
                              execution_options=_PLAIN) or 0
    return found, total


# A statement built afresh for each request finds its compiled form in SQLAlchemy's cache; a plain result then
# re-keys its columns by the new statement's column objects, comparing SQL expressions, which costs a quarter
# of a page. Rows here are read by name and position only, so that step is skipped, as the ORM skips it for its own
# queries (the option is SQLAlchemy's own; were it ever dropped, results would be re-keyed as before).
_PLAIN = {"_result_disable_adapt_to_context": True}


def _connection(session: Session) -> Connection:
    """The session's connection, in its transaction, with pending changes flushed first as the ORM's own queries
    would (autoflush), so a plain SQL read sees them too."""
    if session.autoflush:
        session.flush()
    return session.connection()


def every(lister: Callable[..., tuple[Sequence[T], int]], *, size: int | None = None) -> Iterator[T]:
    """Every row of a list function, fetched a page at a time: ``every(partial(list_units, session, principal,
    kind=...))``, or of a query: ``every(partial(page, session, query, order_by=(Job.id,)))``. Offsets move on by
    the page size, so a row added or removed meanwhile may shift one across a page edge."""
    size = size or get_settings().api_page_limit_max
    offset = 0
    while True:
        rows, total = lister(limit=size, offset=offset)
        yield from rows
        offset += size
        if not rows or offset >= total:
            return
