"""Bounds on the integers that come from outside: ids, references, offsets.

Every table's id is an ``INTEGER``: 32 bits on PostgreSQL. SQLite stores 64 bits and its driver raises
``OverflowError`` beyond them, PostgreSQL raises "integer out of range" on a 33-bit reference; either
would be a server error. An id outside 1…2³¹−1 names no record on either database, so it is refused
where it enters (a path, a query or a body) and both databases answer the same.

Use as ``asset_id: Id`` in a router (FastAPI reads the bounds for paths and queries alike) and as
``alert_id: Id | None = None`` in a schema.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = ["MAX_ID", "MAX_INT", "Id", "Offset"]

# The largest value of a 32-bit signed INTEGER column (PostgreSQL's integer; what every id column is).
MAX_INT = 2**31 - 1
MAX_ID = MAX_INT

Id = Annotated[int, Field(ge=1, le=MAX_ID, description="a record's id")]
Offset = Annotated[int, Field(ge=0, le=MAX_INT, description="rows to skip")]
