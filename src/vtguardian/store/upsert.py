"""Insert-or-update that is atomic on both engines.

Counters (sighting hits, quota usage, lookup statistics) are incremented inside
the database, never read-modify-written in Python, so concurrent collectors on
one MariaDB cannot lose increments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, DateTime, Table, func
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vtguardian.store.literal_rows import execute_as_literals


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Iterable[str],
    increment: Iterable[str] = (),
    replace: Iterable[str] = (),
    greatest: Iterable[str] = (),
    bit_or: Iterable[str] = (),
    least: Iterable[str] = (),
) -> None:
    """Insert ``rows``; on a key clash add ``increment`` columns, overwrite ``replace``
    columns, keep the larger value of ``greatest`` columns and the smaller of
    ``least`` ones, and OR ``bit_or`` ones.

    Rows are written in key order: two writers touching the same keys then lock
    them in the same order, which is what keeps InnoDB from deadlocking.
    """
    if not rows:
        return
    keys = list(keys)
    if len(rows) < FAST_PATH_ROWS:
        stmt = _statement(connection, table, keys, increment, replace, greatest, bit_or, least)
        connection.execute(stmt, sorted(rows, key=itemgetter(*keys)))
        return
    columns = [*keys, *(name for name in rows[0] if name not in keys)]
    row_values = itemgetter(*columns)
    upsert_rows(
        connection,
        table,
        columns,
        [row_values(row) for row in rows],
        len(keys),
        increment,
        replace,
        greatest,
        bit_or,
        least=least,
    )


# Above this many rows the statement is compiled once and the rows handed straight to
# the driver: SQLAlchemy's per-row parameter processing would cost more than the write.
FAST_PATH_ROWS = 200


def upsert_rows(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    keys: int,
    increment: Iterable[str] = (),
    replace: Iterable[str] = (),
    greatest: Iterable[str] = (),
    bit_or: Iterable[str] = (),
    returning: Sequence[str] = (),
    least: Iterable[str] = (),
) -> list[tuple[Any, ...]] | None:
    """:func:`upsert` of tuples in ``columns`` order whose first ``keys`` values are
    the key, handed straight to the driver's ``executemany``, or on MySQL written
    into the statement when that is certainly safe (see :mod:`.literal_rows`).

    With ``returning`` (column names), the same statement also reads those columns
    of every row written, inserted or updated, where the database can (MariaDB's
    ``RETURNING``): the caller is then spared a query to read them back. None when
    it could not, and an executemany cannot on any driver here.

    Every row must carry every NOT NULL column: Python-side column defaults are not
    applied on this path. SQLite stores DATETIME as text in SQLAlchemy's format
    (``YYYY-MM-DD HH:MM:SS.ffffff``, what naive ``isoformat(" ", "microseconds")``
    gives); dates may arrive as that text already, or as datetimes to convert.
    MySQL drivers take both as they are, and MySQL reads the text as DATETIME.
    """
    if not rows:
        return [] if returning else None
    columns = list(columns)
    if connection.dialect.name != "sqlite":  # SQLite has one writer at a time: no deadlock
        rows = sorted(rows, key=itemgetter(*range(keys)))
    stmt = _statement(
        connection, table, columns[:keys], increment, replace, greatest, bit_or, least
    )
    compiled = _compiled(stmt, connection.dialect, tuple(columns))
    params: list[Any]
    if not compiled.positional:
        clause = _returning_clause(connection, returning)
        returned = execute_as_literals(connection, str(compiled), columns, rows, clause)
        if returned is not None:
            return returned if clause else None
        params = [dict(zip(columns, row, strict=True)) for row in rows]
    else:
        order = list(compiled.positiontup)
        if order != columns:
            reorder = itemgetter(*(columns.index(name) for name in order))
            rows = [reorder(row) for row in rows]  # type: ignore[misc]
        params = rows
        if connection.dialect.name == "sqlite":
            params = _with_text_dates(table, order, rows)
    connection.exec_driver_sql(str(compiled), params)
    return None


def _returning_clause(connection: Connection, columns: Sequence[str]) -> str:
    """``RETURNING`` the ``columns`` when the server has it on an upsert (MariaDB
    10.5+; MySQL has none), else nothing."""
    if not columns or not connection.dialect.insert_returning:
        return ""
    quote = connection.dialect.identifier_preparer.quote
    return "RETURNING " + ", ".join(map(quote, columns))


def _with_text_dates(table: Table, order: list[str], rows: list[tuple[Any, ...]]) -> list[Any]:
    dates = [
        i
        for i, name in enumerate(order)
        if isinstance(table.c[name].type, DateTime)
        and isinstance(next((row[i] for row in rows if row[i] is not None), None), datetime)
    ]
    if not dates:
        return rows
    converted = []
    for row in rows:
        values = list(row)
        for index in dates:
            if values[index]:
                values[index] = values[index].isoformat(" ", "microseconds")
        converted.append(tuple(values))
    return converted


def _statement(
    connection: Connection,
    table: Table,
    keys: list[str],
    increment: Iterable[str],
    replace: Iterable[str],
    greatest: Iterable[str],
    bit_or: Iterable[str],
    least: Iterable[str],
) -> Any:
    """The upsert statement, built once per shape: building one (its ``excluded``
    columns) cost more than writing a follower's small batch."""
    return _built(
        connection.dialect.name,
        table,
        tuple(keys),
        *(tuple(names) for names in (increment, replace, greatest, bit_or, least)),
    )


@lru_cache(maxsize=256)
def _compiled(stmt: Any, dialect: Any, columns: tuple[str, ...]) -> Any:
    return stmt.compile(dialect=dialect, column_keys=list(columns))


@lru_cache(maxsize=256)
def _built(
    dialect: str,
    table: Table,
    keys: tuple[str, ...],
    increment: tuple[str, ...],
    replace: tuple[str, ...],
    greatest: tuple[str, ...],
    bit_or: tuple[str, ...],
    least: tuple[str, ...],
) -> Any:
    changes = (increment, replace, greatest, bit_or, least)
    keys_list = list(keys)
    if dialect == "sqlite":
        stmt = sqlite_insert(table)
        updates = _updates(table, stmt.excluded, *changes, sqlite=True)
        return (
            stmt.on_conflict_do_update(index_elements=keys_list, set_=updates)
            if updates
            else stmt.on_conflict_do_nothing(index_elements=keys_list)
        )
    stmt = mysql_insert(table)
    updates = _updates(table, stmt.inserted, *changes, sqlite=False)
    if not updates:  # MySQL has no DO NOTHING: a self-assignment is the idiom.
        first = keys[0]
        updates = {first: table.c[first]}
    return stmt.on_duplicate_key_update(updates)


def _updates(
    table: Table,
    new: Any,
    increment: Iterable[str],
    replace: Iterable[str],
    greatest: Iterable[str],
    bit_or: Iterable[str],
    least: Iterable[str],
    sqlite: bool,
) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    for name in increment:
        updates[name] = table.c[name] + new[name]
    for name in replace:
        updates[name] = new[name]
    for name in greatest:
        # SQLite's two-argument max() is its scalar GREATEST.
        fn = func.max if sqlite else func.greatest
        updates[name] = fn(table.c[name], new[name])
    for name in least:
        fn = func.min if sqlite else func.least
        updates[name] = fn(table.c[name], new[name])
    for name in bit_or:
        updates[name] = table.c[name].op("|")(new[name])
    return updates
