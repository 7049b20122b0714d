"""What MySQL and SQLite spell differently in the panel queries.

Panels say ``{now}``, ``{today}``, ``{days_ago(7)}``, ``{hours_since(col)}``,
``{json_each(col, alias)}``, ``{json_value(alias)}``, ``{full_days_from}`` and
``{full_days_to}`` (the whole days inside the time range, for the daily rollup),
``{full_days_to_next}`` (the day after) and ``{day_of_from}`` (the midnight the
range starts in),
``{client_word(col)}`` and ``{client_bit(col)}``; this writes them out
for one engine. Grafana gets the MySQL spelling; the built-in page uses
whichever engine vtguardian runs on. Stored times are naive UTC, and on
SQLite they are text in ``YYYY-MM-DD HH:MM:SS.ffffff`` form, so the SQLite
spellings produce (and compare) text in that form.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vtguardian.store.schema import CLIENT_WORD_BITS

_PLACEHOLDER = re.compile(r"\{(\w+)(?:\(([^()]*)\))?\}")
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now'{shift})"

MYSQL: dict[str, Callable[..., str]] = {
    "now": lambda: "UTC_TIMESTAMP(6)",
    "today": lambda: "UTC_DATE()",
    "days_ago": lambda n: f"(UTC_TIMESTAMP(6) - INTERVAL {int(n)} DAY)",
    "hours_since": lambda col: f"TIMESTAMPDIFF(HOUR, {col}, UTC_TIMESTAMP(6))",
    "json_each": lambda col, alias: (
        f"JSON_TABLE({col}, '$[*]' COLUMNS (value VARCHAR(255) PATH '$')) AS {alias}"
    ),
    "json_value": lambda alias: f"{alias}.value",
    # The first midnight at or after the range start, and the midnight after the
    # last day whose 24 hour buckets all start inside the range.
    "full_days_from": lambda: (
        "TIMESTAMP(DATE($__timeFrom() - INTERVAL 1 MICROSECOND) + INTERVAL 1 DAY)"
    ),
    "full_days_to": lambda: "TIMESTAMP(DATE($__timeTo() + INTERVAL 1 HOUR))",
    "day_of_from": lambda: "TIMESTAMP(DATE($__timeFrom()))",
    "full_days_to_next": lambda: "TIMESTAMP(DATE($__timeTo() + INTERVAL 1 HOUR) + INTERVAL 1 DAY)",
    "client_word": lambda col: f"({col} DIV {CLIENT_WORD_BITS})",
    "client_bit": lambda col: f"(1 << ({col} MOD {CLIENT_WORD_BITS}))",
}
_SQLITE_DAY = "strftime('%Y-%m-%d %H:%M:%f000', {time}, {shifts})"
SQLITE: dict[str, Callable[..., str]] = {
    "now": lambda: _SQLITE_NOW.format(shift=""),
    "today": lambda: "strftime('%Y-%m-%d 00:00:00.000000', 'now')",
    "days_ago": lambda n: _SQLITE_NOW.format(shift=f", '-{int(n)} days'"),
    "hours_since": lambda col: f"CAST((julianday('now') - julianday({col})) * 24 AS INTEGER)",
    "json_each": lambda col, alias: f"json_each({col}) AS {alias}",
    "json_value": lambda alias: f"{alias}.value",
    "full_days_from": lambda: _SQLITE_DAY.format(
        time="$__timeFrom()", shifts="'-0.001 seconds', 'start of day', '+1 day'"
    ),
    "full_days_to": lambda: _SQLITE_DAY.format(
        time="$__timeTo()", shifts="'+1 hours', 'start of day'"
    ),
    "day_of_from": lambda: _SQLITE_DAY.format(time="$__timeFrom()", shifts="'start of day'"),
    "full_days_to_next": lambda: _SQLITE_DAY.format(
        time="$__timeTo()", shifts="'+1 hours', 'start of day', '+1 day'"
    ),
    "client_word": lambda col: f"({col} / {CLIENT_WORD_BITS})",
    "client_bit": lambda col: f"(1 << ({col} % {CLIENT_WORD_BITS}))",
}
DIALECTS = {"mysql": MYSQL, "mariadb": MYSQL, "sqlite": SQLITE}


def render(sql: str, dialect: str) -> str:
    """The panel query with every ``{...}`` placeholder spelled for ``dialect``."""
    table = DIALECTS[dialect]

    def replace(match: re.Match[str]) -> str:
        name, args = match.group(1), match.group(2)
        if name not in table:
            raise KeyError(f"unknown placeholder {{{name}}}")
        values = [a.strip() for a in args.split(",")] if args else []
        return table[name](*values)

    return _PLACEHOLDER.sub(replace, sql)
