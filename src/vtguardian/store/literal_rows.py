"""Bulk upserts to MySQL with the rows written into the statement by one format each.

PyMySQL's ``executemany`` escapes every value of every row in Python, which costs
more than the server's work on the rows: most of an ingest's write time on
MariaDB. The rows an ingest writes in bulk (hourly sightings and their rollups)
hold only integers and text the ingest made itself (dates, a source name), so
each row can be laid out with one ``%`` format in C instead.

This is done only when it is certainly safe, and otherwise the driver does it as
before: every value of a column must be exactly ``int`` (written with ``%d``,
which takes nothing else) or exactly ``str``; and the text of all rows together
must hold no backslash, no NUL and no quote besides those around each value (one
count tells). A value that could change the statement's meaning therefore never
reaches it this way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from types import NoneType
from typing import Any

from pymysql.cursors import RE_INSERT_VALUES
from sqlalchemy import Connection

# What PyMySQL itself sends in one statement when it batches an executemany.
MAX_STATEMENT_BYTES = 1_000_000
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def execute_as_literals(
    connection: Connection,
    statement: str,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    returning: str = "",
) -> list[tuple[Any, ...]] | None:
    """Run the pyformat ``INSERT ... VALUES (...) [ON DUPLICATE ...]`` ``statement`` for
    ``rows`` (values in ``columns`` order) with the values written in, and return the
    rows its ``returning`` clause (``RETURNING ...``, if any) reads back; None, having
    run nothing, when the rows are not certainly safe to write that way."""
    match = RE_INSERT_VALUES.match(statement)
    if match is None or not rows:
        return None
    prefix, values, suffix = match.group(1, 2, 3)
    if "%" in prefix or "%" in suffix:
        return None  # an escaped %% would need unescaping: leave it to the driver
    names = _PLACEHOLDER.findall(values)
    if sorted(names) != sorted(columns):
        return None
    by_name = {name: index for index, name in enumerate(columns)}
    values_of = [list(map(itemgetter(by_name[name]), rows)) for name in names]
    formats, quotes, rewritten = [], 0, False
    for index, column in enumerate(values_of):
        layout = _layout(column)
        if layout is None:
            return None
        form, literal = layout
        formats.append(form)
        if literal is not None:
            values_of[index] = list(map(literal, column))
            rewritten = True
            if literal is not _int_or_null:  # each text or date is quoted, NULL is not
                quotes += 2 * (len(column) - column.count(None))
        elif form == "'%s'":
            quotes += 2 * len(rows)
    if rewritten or names != list(columns):
        rows = list(zip(*values_of, strict=True))
    slots = iter(formats)
    template = _PLACEHOLDER.sub(lambda _name: next(slots), values)
    rendered = [template % row for row in rows]
    body = "".join(rendered)
    if body.count("'") != quotes or "\\" in body or "\0" in body:
        return None
    per_statement = max(1, MAX_STATEMENT_BYTES // (max(map(len, rendered)) + 1))
    suffix = f"{suffix.rstrip()} {returning}" if returning else suffix
    returned: list[tuple[Any, ...]] = []
    for start in range(0, len(rendered), per_statement):
        sql = prefix + ",".join(rendered[start : start + per_statement]) + suffix
        result = connection.exec_driver_sql(sql, execution_options={"no_parameters": True})
        if returning:
            returned.extend(map(tuple, result))
    return returned


def _layout(column: list[Any]) -> tuple[str, Callable[[Any], str] | None] | None:
    """How one column's values are written: a format for them all, or ``%s`` and the
    literal of each value (for columns with NULLs, and dates); None if not safe."""
    kinds = set(map(type, column))
    if kinds == {int}:
        return "%d", None
    if kinds == {str}:
        return "'%s'", None
    if kinds <= {int, NoneType}:
        return "%s", _int_or_null
    if kinds <= {str, NoneType}:
        return "%s", _text_or_null
    if kinds <= {datetime, NoneType} and all(v.tzinfo is None for v in column if v is not None):
        return "%s", _datetime_or_null
    return None


def _int_or_null(value: int | None) -> str:
    return "NULL" if value is None else str(value)


def _text_or_null(value: str | None) -> str:
    return "NULL" if value is None else f"'{value}'"


def _datetime_or_null(value: datetime | None) -> str:
    """As PyMySQL writes a naive datetime (microseconds only when there are some)."""
    return "NULL" if value is None else f"'{value.isoformat(' ')}'"
