"""Hourly sightings: how often a client asked for an IoC through a source.

Each write also updates the rollups (``ioc_days``, ``source_hours``) in the same
transaction, so they always agree with the hourly rows, after a crash too.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from vtguardian.clock import day_start
from vtguardian.store.schema import CLIENT_WORD_BITS, ioc_days, sightings, source_hours
from vtguardian.store.upsert import upsert_rows

SightingKey = tuple[int, int, str, datetime]  # ioc_id, client_id, source, hour
K = TypeVar("K", bound=Hashable)
H = TypeVar("H", bound=Hashable)


def hour_bucket(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


# ioc_id, client_id, source, hour, hits, blocked, last_seen, first_seen
SightingRow = tuple[int, int, str, Any, int, int, Any, Any]
# ioc_id, client_id, source, day, hits, blocked, last_seen: one client's day of an IoC
ClientDay = tuple[int, int, str, Any, int, int, Any]

_SIGHTING_COLUMNS = (
    "ioc_id",
    "client_id",
    "source",
    "hour",
    "hits",
    "blocked",
    "last_seen",
    "first_seen",
)


def add_sightings(
    connection: Connection,
    counts: Mapping[SightingKey, tuple[int, int, datetime] | tuple[int, int, datetime, datetime]],
) -> None:
    """Add ``(hits, blocked, last_seen[, first_seen])`` to each hourly row, creating it
    when new; without a first stamp the last one stands for it."""
    rows: list[SightingRow] = [
        (*key, *value) if len(value) == 4 else (*key, *value, value[2])  # type: ignore[misc]
        for key, value in counts.items()
    ]
    days = client_days(
        (
            ((ioc_id, client_id, source), hour, hits, blocked, last)
            for ioc_id, client_id, source, hour, hits, blocked, last, _first in rows
        ),
        day_of=day_start,
    )
    write_sightings(connection, rows, [(*key, day, *v) for (key, day), v in days.items()])


def client_days(
    hourly: Iterable[tuple[K, H, int, int, Any]], day_of: Callable[[H], Any]
) -> dict[tuple[K, Any], list[Any]]:
    """Hourly ``(key, hour, hits, blocked, last_seen)`` summed per key and UTC day, the
    key naming one client's sightings of one IoC: what ``ioc_days`` adds up.

    Hours may be datetimes or any other form ``day_of`` maps to its day.
    """
    days: dict[tuple[K, Any], list[Any]] = {}
    day_for: dict[H, Any] = {}
    for key, hour, hits, blocked, last_seen in hourly:
        day = day_for.get(hour)
        if day is None:
            day = day_for[hour] = day_of(hour)
        entry = days.get((key, day))
        if entry is None:
            days[(key, day)] = [hits, blocked, last_seen]
        else:
            entry[0] += hits
            entry[1] += blocked
            if last_seen > entry[2]:
                entry[2] = last_seen
    return days


def write_sightings(
    connection: Connection, rows: list[SightingRow], client_days: list[ClientDay]
) -> None:
    """Add hourly rows and the same counts per client and day to the rollups.

    Dates may come as datetimes or as naive UTC text, which is how an ingest
    prepares them, in its parser processes when the file is large.
    """
    upsert_rows(
        connection,
        sightings,
        _SIGHTING_COLUMNS,
        rows,
        keys=4,
        increment=["hits", "blocked"],
        greatest=["last_seen"],
        least=["first_seen"],
    )
    days: dict[tuple[int, str, Any, int], list[Any]] = {}
    for ioc_id, client_id, source, day, hits, blocked, last_seen in client_days:
        word, bit = divmod(client_id, CLIENT_WORD_BITS)
        key = (ioc_id, source, day, word)
        entry = days.get(key)
        if entry is None:
            days[key] = [1 << bit, hits, blocked, last_seen]
        else:
            entry[0] |= 1 << bit
            entry[1] += hits
            entry[2] += blocked
            if last_seen > entry[3]:
                entry[3] = last_seen
    upsert_rows(
        connection,
        ioc_days,
        ("ioc_id", "source", "day", "client_word", "clients_mask", "hits", "blocked", "last_seen"),
        [(*key, *value) for key, value in days.items()],
        keys=4,
        increment=["hits", "blocked"],
        greatest=["last_seen"],
        bit_or=["clients_mask"],
    )
    hours: dict[tuple[Any, str], list[int]] = {}
    for _ioc, _client, source, hour, hits, blocked, _last, _first in rows:
        total = hours.get((hour, source))
        if total is None:
            hours[(hour, source)] = [hits, blocked]
        else:
            total[0] += hits
            total[1] += blocked
    upsert_rows(
        connection,
        source_hours,
        ("hour", "source", "hits", "blocked"),
        [(*key, *value) for key, value in hours.items()],
        keys=2,
        increment=["hits", "blocked"],
    )
