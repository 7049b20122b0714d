"""Hourly sightings: how often a client asked for an IoC through a source.

Each write also updates the rollups (``ioc_days``, ``source_hours``) in the same
transaction, so they always agree with the hourly rows, after a crash too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from vtguardian.clock import day_start
from vtguardian.store.schema import CLIENT_WORD_BITS, ioc_days, sightings, source_hours
from vtguardian.store.upsert import upsert_rows
from vtguardian.tally import Tally, add_to

SightingKey = tuple[int, int, str, datetime]  # ioc_id, client_id, source, hour
# ioc_id, client_id, source, hour (or day), hits, blocked, last_seen, first_seen
SightingRow = tuple[int, int, str, Any, int, int, Any, Any]

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


def hour_bucket(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def add_sightings(
    connection: Connection,
    counts: Mapping[SightingKey, tuple[int, int, datetime] | tuple[int, int, datetime, datetime]],
) -> None:
    """Add ``(hits, blocked, last_seen[, first_seen])`` to each hourly row, creating it
    when new; without a first stamp the last one stands for it."""
    hourly: list[SightingRow] = [
        (*key, *value) if len(value) == 4 else (*key, *value, value[2])  # type: ignore[misc]
        for key, value in counts.items()
    ]
    days: dict[tuple[int, int, str, datetime], Tally] = {}
    for ioc_id, client_id, source, hour, hits, blocked, last, first in hourly:
        add_to(days, (ioc_id, client_id, source, day_start(hour)), hits, blocked, last, first)
    write_sightings(connection, hourly, [(*key, *_counts(t)) for key, t in days.items()])


def write_sightings(
    connection: Connection, rows: list[SightingRow], client_days: list[SightingRow]
) -> None:
    """Add hourly rows, and the same counts per client and day (``client_days``) to the
    rollups: ``ioc_days`` per IoC and day with its clients as bits, ``source_hours``.

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
    masks: dict[tuple[int, str, Any, int], int] = {}
    days: dict[tuple[int, str, Any, int], Tally] = {}
    for ioc_id, client_id, source, day, hits, blocked, last, first in client_days:
        word, bit = divmod(client_id, CLIENT_WORD_BITS)
        key = (ioc_id, source, day, word)
        masks[key] = masks.get(key, 0) | 1 << bit
        add_to(days, key, hits, blocked, last, first)
    upsert_rows(
        connection,
        ioc_days,
        ("ioc_id", "source", "day", "client_word", "clients_mask", "hits", "blocked", "last_seen"),
        [(*key, masks[key], tally.hits, tally.blocked, tally.last) for key, tally in days.items()],
        keys=4,
        increment=["hits", "blocked"],
        greatest=["last_seen"],
        bit_or=["clients_mask"],
    )
    hours: dict[tuple[Any, str], Tally] = {}
    for _ioc, _client, source, hour, hits, blocked, last, first in rows:
        add_to(hours, (hour, source), hits, blocked, last, first)
    upsert_rows(
        connection,
        source_hours,
        ("hour", "source", "hits", "blocked"),
        [(*key, tally.hits, tally.blocked) for key, tally in hours.items()],
        keys=2,
        increment=["hits", "blocked"],
    )


def _counts(tally: Tally) -> tuple[int, int, Any, Any]:
    return tally.hits, tally.blocked, tally.last, tally.first
