"""Grafana's MySQL macros and variable substitution, done the way Grafana documents them.

No Grafana server runs in tests or on the built-in page's host, so the same
expansion happens here: ``$__timeFilter(c)`` becomes ``c BETWEEN
FROM_UNIXTIME(from) AND FROM_UNIXTIME(to)``, ``$__timeGroupAlias(c, '5m')``
becomes ``cast(cast(UNIX_TIMESTAMP(c)/(300) as signed)*300 as signed) AS "time"``,
multi-value variables become quoted, comma-separated lists. As in Grafana, the
session time zone must be UTC for FROM_UNIXTIME to mean what it says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


@dataclass(frozen=True)
class TimeRange:
    start: int  # Unix seconds
    end: int
    interval: str = "1h"


def interval_seconds(text: str) -> int:
    text = text.strip().strip("'\"")
    match = re.fullmatch(r"(\d+)([smhdw])", text)
    if not match:
        raise ValueError(f"bad interval {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def quote(value: str, dialect: str = "mysql") -> str:
    """A string literal; MySQL also treats backslashes as escapes, SQLite does not."""
    if dialect != "sqlite":
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"


def _sqlite_time(seconds: int) -> str:
    return "'" + datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "'"


def expand(
    sql: str,
    time_range: TimeRange,
    variables: Mapping[str, str | Sequence[str]],
    dialect: str = "mysql",
) -> str:
    """The SQL Grafana would send to MySQL for this panel, range and variable values.

    With ``dialect="sqlite"`` the same macros are written for SQLite (stored times
    there are text), which is how the built-in page runs the panels on SQLite.
    """
    sqlite = dialect == "sqlite"
    sql = sql.replace("$__interval_ms", str(interval_seconds(time_range.interval) * 1000))
    sql = sql.replace("$__interval", f"'{time_range.interval}'")

    def macro(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",")]
        start, end = time_range.start, time_range.end
        if name in ("timeFilter", "timeFrom", "timeTo"):
            low, high = (
                (_sqlite_time(start), _sqlite_time(end))
                if sqlite
                else (f"FROM_UNIXTIME({start})", f"FROM_UNIXTIME({end})")
            )
            if name == "timeFrom":
                return low
            if name == "timeTo":
                return high
            return f"{args[0]} BETWEEN {low} AND {high}"
        if name == "unixEpochFilter":
            return f"{args[0]} >= {start} AND {args[0]} <= {end}"
        if name in ("timeGroup", "timeGroupAlias"):
            seconds = interval_seconds(args[1])
            epoch = (
                f"CAST(strftime('%s', {args[0]}) AS INTEGER)"
                if sqlite
                else f"UNIX_TIMESTAMP({args[0]})"
            )
            group = f"cast(cast({epoch}/({seconds}) as signed)*{seconds} as signed)"
            return group + (' AS "time"' if name == "timeGroupAlias" else "")
        raise ValueError(f"unsupported macro $__{name}")

    sql = _MACRO.sub(macro, sql)

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"undefined variable ${name}")
        value = variables[name]
        if isinstance(value, str):
            return value
        return ",".join(quote(v, dialect) for v in value) if value else "NULL"

    return _VARIABLE.sub(variable, sql)


def used_variables(sql: str) -> set[str]:
    stripped = _MACRO.sub("", sql).replace("$__interval_ms", "").replace("$__interval", "")
    return {a or b for a, b in _VARIABLE.findall(stripped)}
