"""Writing many rows of one table at once: straight through the driver, ``COPY`` on PostgreSQL.

An ``insert()`` with a list of dictionaries spends most of its time on each row's dictionary;
for the tables that take thousands of rows in one go (daily utilisation summaries, what the
network devices show, the demo city's address plan) :func:`insert_rows` hands the driver tuples:
one ``executemany`` on SQLite, one ``COPY … FROM STDIN`` on PostgreSQL. Values still pass
through each column's type, so they are stored exactly as an ``insert()`` would store them (an
enum by its value, a time as UTC), and the columns' Python-side defaults are filled in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Column, Date, DateTime, Enum, Table, TypeDecorator, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import ColumnDefault

__all__ = ["insert_rows", "insert_rows_with_ids", "reserve_ids"]


def insert_rows(session: Session, target: Table | type[Any], columns: Sequence[str],
                rows: Iterable[Sequence[Any]]) -> int:
    """Insert ``rows`` (tuples in the order of ``columns``) into a table (or a mapped class's) in the session's
    transaction, in the order given (so autoincrement ids follow it).

    Columns left out take their default: a Python-side one (computed once for the whole call) or the
    database's own (an autoincrement id, a server default). Returns the number of rows written.
    """
    table = _table(target)
    unknown = [name for name in columns if name not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(unknown)}")
    session.flush()  # what the session holds goes first, as it would before an insert() of its own
    connection = session.connection()
    dialect = connection.dialect
    defaults = _defaults(table, columns)
    names = [*columns, *defaults]
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    for position, name in enumerate(names):
        column_type = table.c[name].type
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            # The same time, date or status recurs on every row of a batch: convert each of them once.
            recurs = isinstance(column_type, Date | DateTime | Enum | TypeDecorator)
            processors.append((position, _memoised(process) if recurs else process))
    given = len(columns)
    fill = _processed([*columns, *defaults.values()], [(p, f) for p, f in processors if p >= given])[given:]
    per_row = [(p, f) for p, f in processors if p < given]
    prepared: Iterable[tuple[Any, ...]]
    if per_row:
        prepared = (_processed(list(row), per_row) + fill for row in rows)
    else:
        prepared = (tuple(row) + fill for row in rows)
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    into = dialect.identifier_preparer.format_table(table)
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        driver = connection.connection.driver_connection
        assert driver is not None
        count = 0
        with driver.cursor() as cursor, cursor.copy(f"COPY {into} ({quoted}) FROM STDIN") as copy:
            for values in prepared:
                copy.write_row(values)
                count += 1
        return count
    batch = list(prepared)
    if batch:
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        connection.exec_driver_sql(f"INSERT INTO {into} ({quoted}) VALUES ({', '.join([marker] * len(names))})",
                                   batch)
    return len(batch)


def insert_rows_with_ids(session: Session, target: Table | type[Any], columns: Sequence[str],
                         rows: Sequence[Sequence[Any]]) -> list[int]:
    """:func:`insert_rows`, returning the new rows' ids in the order given (see :func:`reserve_ids`).

    An ``INSERT … RETURNING`` in order costs ten times as much on PostgreSQL.
    """
    table = _table(target)
    ids = reserve_ids(session, table, len(rows))
    insert_rows(session, table, (_key(table).name, *columns),
                ((id_, *row) for id_, row in zip(ids, rows, strict=True)))
    return ids


def reserve_ids(session: Session, target: Table | type[Any], count: int) -> list[int]:
    """The ids the database would give the next ``count`` rows of a table, in order, for rows written with them.

    They come from the table's own sequence on PostgreSQL, and on SQLite after the highest id, which no
    one else can take while this transaction holds the database's write lock (``BEGIN IMMEDIATE``).
    For rows that name each other (a unit's parent) before any of them is written.
    """
    table = _table(target)
    key = _key(table)
    if count <= 0:
        return []
    session.flush()
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        ids = connection.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, :key)) FROM generate_series(1, :count) ORDER BY 1"),
            {"table": table.fullname, "key": key.name, "count": count}).scalars()
        return [int(id_) for id_ in ids]
    if dialect == "sqlite":
        top = connection.execute(select(func.max(key))).scalar() or 0
        return list(range(top + 1, top + 1 + count))
    # cloudctl supports these two databases only; another engine would need its own way to reserve ids.
    raise RuntimeError(f"ids in bulk are handed out on SQLite and PostgreSQL, the databases cloudctl runs on; "
                       f"not on {dialect}")


def _key(table: Table) -> Column[Any]:
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or keys[0].type.python_type is not int:
        raise ValueError(f"{table.name} has no single integer key")
    return keys[0]


def _table(target: Table | type[Any]) -> Table:
    table = target if isinstance(target, Table) else getattr(target, "__table__", None)
    if not isinstance(table, Table):
        raise TypeError(f"{target!r} is not a table or a class mapped to one")
    return table


def _processed(values: list[Any], processors: list[tuple[int, Callable[[Any], Any]]]) -> tuple[Any, ...]:
    for position, process in processors:
        values[position] = process(values[position])
    return tuple(values)


def _memoised(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    done: dict[Any, Any] = {}

    def run(value: Any) -> Any:
        # Keyed by type as well: True == 1 and 1 == 1.0, but they need not convert alike.
        key = (type(value), value)
        try:
            return done[key]
        except KeyError:
            result = done[key] = process(value)
            return result
        except TypeError:  # unhashable
            return process(value)

    return run


def _defaults(table: Table, columns: Sequence[str]) -> dict[str, Any]:
    """The Python-side defaults of the columns not given, as an insert() would compute them."""
    values: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in columns or not isinstance(default, ColumnDefault):
            continue
        values[column.name] = default.arg(None) if default.is_callable else default.arg
    return values
