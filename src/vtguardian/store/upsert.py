"""Insert-or-update that is atomic on both engines.

Counters (sighting hits, quota usage, lookup statistics) are incremented inside
the database, never read-modify-written in Python, so concurrent collectors on
one MariaDB cannot lose increments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, DateTime, Table, func
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Iterable[str],
    increment: Iterable[str] = (),
    replace: Iterable[str] = (),
    greatest: Iterable[str] = (),
    bit_or: Iterable[str] = (),
) -> None:
    """Insert ``rows``; on a key clash add ``increment`` columns, overwrite ``replace``
    columns, keep the larger value of ``greatest`` columns and OR ``bit_or`` ones.

    Rows are written in key order: two writers touching the same keys then lock
    them in the same order, which is what keeps InnoDB from deadlocking.
    """
    if not rows:
        return
    keys = list(keys)
    ordered = sorted(rows, key=itemgetter(*keys))
    if connection.dialect.name == "sqlite":
        stmt = sqlite_insert(table)
        new = stmt.excluded
        updates = _updates(table, new, increment, replace, greatest, bit_or, sqlite=True)
        stmt = (
            stmt.on_conflict_do_update(index_elements=keys, set_=updates)
            if updates
            else stmt.on_conflict_do_nothing(index_elements=keys)
        )
    else:
        stmt = mysql_insert(table)
        new = stmt.inserted
        updates = _updates(table, new, increment, replace, greatest, bit_or, sqlite=False)
        if not updates:  # MySQL has no DO NOTHING: a self-assignment is the idiom.
            first = keys[0]
            updates = {first: table.c[first]}
        stmt = stmt.on_duplicate_key_update(updates)
    if len(ordered) < FAST_PATH_ROWS:
        connection.execute(stmt, list(ordered))
        return
    _execute_many(connection, table, stmt, ordered)


# Above this many rows the statement is compiled once and the rows handed straight to
# the driver: SQLAlchemy's per-row parameter processing would cost more than the write.
FAST_PATH_ROWS = 200


def _execute_many(
    connection: Connection, table: Table, stmt: Any, rows: Sequence[Mapping[str, Any]]
) -> None:
    """``executemany`` through the DBAPI, with the one conversion SQLAlchemy would do.

    Every row must carry every NOT NULL column: Python-side column defaults are not
    applied on this path. SQLite stores DATETIME as text in SQLAlchemy's format
    (``YYYY-MM-DD HH:MM:SS.ffffff``, which naive ``isoformat(" ", "microseconds")``
    produces); MySQL drivers take datetimes as they are.
    """
    names = list(rows[0].keys())
    compiled = stmt.compile(dialect=connection.dialect, column_keys=names)
    order = list(compiled.positiontup) if compiled.positional else names
    sqlite = connection.dialect.name == "sqlite"
    dates = {name for name in order if sqlite and isinstance(table.c[name].type, DateTime)}
    if compiled.positional:
        values = itemgetter(*order)
        params: list[Any] = [values(row) for row in rows]
        if len(order) == 1:
            params = [(value,) for value in params]
        date_indexes = [i for i, name in enumerate(order) if name in dates]
        if date_indexes:
            params = [_with_text_dates(row, date_indexes) for row in params]
    else:
        params = [dict(row) for row in rows]
    connection.exec_driver_sql(str(compiled), params)


def _with_text_dates(row: tuple[Any, ...], indexes: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for index in indexes:
        if values[index]:
            values[index] = values[index].isoformat(" ", "microseconds")
    return tuple(values)


def _updates(
    table: Table,
    new: Any,
    increment: Iterable[str],
    replace: Iterable[str],
    greatest: Iterable[str],
    bit_or: Iterable[str],
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
    for name in bit_or:
        updates[name] = table.c[name].op("|")(new[name])
    return updates
