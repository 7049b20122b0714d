"""Insert-or-update that is atomic on both engines.

Counters (sighting hits, quota usage, lookup statistics) are incremented inside
the database, never read-modify-written in Python, so concurrent collectors on
one MariaDB cannot lose increments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, func
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
) -> None:
    """Insert ``rows``; on a key clash add ``increment`` columns, overwrite ``replace``
    columns and keep the larger value of ``greatest`` columns.

    Rows are written in key order: two writers touching the same keys then lock
    them in the same order, which is what keeps InnoDB from deadlocking.
    """
    if not rows:
        return
    keys = list(keys)
    ordered = sorted(rows, key=lambda row: tuple(row[k] for k in keys))
    if connection.dialect.name == "sqlite":
        stmt = sqlite_insert(table)
        new = stmt.excluded
        updates = _updates(table, new, increment, replace, greatest, sqlite=True)
        stmt = (
            stmt.on_conflict_do_update(index_elements=keys, set_=updates)
            if updates
            else stmt.on_conflict_do_nothing(index_elements=keys)
        )
    else:
        stmt = mysql_insert(table)
        new = stmt.inserted
        updates = _updates(table, new, increment, replace, greatest, sqlite=False)
        if not updates:  # MySQL has no DO NOTHING: a self-assignment is the idiom.
            first = keys[0]
            updates = {first: table.c[first]}
        stmt = stmt.on_duplicate_key_update(updates)
    connection.execute(stmt, list(ordered))


def _updates(
    table: Table,
    new: Any,
    increment: Iterable[str],
    replace: Iterable[str],
    greatest: Iterable[str],
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
    return updates
