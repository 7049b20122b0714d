"""Hourly sightings: how often a client asked for an IoC through a source.

Each write also updates the rollups (``ioc_days``, ``source_hours``) in the same
transaction, so they always agree with the hourly rows, after a crash too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection

from vtguardian.store.schema import CLIENT_WORD_BITS, ioc_days, sightings, source_hours
from vtguardian.store.upsert import upsert

SightingKey = tuple[int, int, str, datetime]  # ioc_id, client_id, source, hour


def hour_bucket(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def add_sightings(
    connection: Connection,
    counts: Mapping[SightingKey, tuple[int, int, datetime]],
) -> None:
    """Add ``(hits, blocked, last_seen)`` to each hourly row, creating it when new."""
    rows = [
        {
            "ioc_id": ioc_id,
            "client_id": client_id,
            "source": source,
            "hour": hour,
            "hits": hits,
            "blocked": blocked,
            "last_seen": last_seen,
        }
        for (ioc_id, client_id, source, hour), (hits, blocked, last_seen) in counts.items()
    ]
    upsert(
        connection,
        sightings,
        rows,
        keys=["ioc_id", "client_id", "source", "hour"],
        increment=["hits", "blocked"],
        greatest=["last_seen"],
    )
    _roll_up(connection, counts)


def _roll_up(
    connection: Connection,
    counts: Mapping[SightingKey, tuple[int, int, datetime]],
) -> None:
    days: dict[tuple[int, str, datetime, int], list] = {}
    hours: dict[tuple[datetime, str], list[int]] = {}
    for (ioc_id, client_id, source, hour), (hits, blocked, last_seen) in counts.items():
        word, bit = divmod(client_id, CLIENT_WORD_BITS)
        key = (ioc_id, source, hour.replace(hour=0), word)
        day = days.get(key)
        if day is None:
            days[key] = [1 << bit, hits, blocked, last_seen]
        else:
            day[0] |= 1 << bit
            day[1] += hits
            day[2] += blocked
            day[3] = max(day[3], last_seen)
        total = hours.setdefault((hour, source), [0, 0])
        total[0] += hits
        total[1] += blocked
    upsert(
        connection,
        ioc_days,
        [
            {
                "ioc_id": ioc_id,
                "source": source,
                "day": day,
                "client_word": word,
                "clients_mask": mask,
                "hits": hits,
                "blocked": blocked,
                "last_seen": last_seen,
            }
            for (ioc_id, source, day, word), (mask, hits, blocked, last_seen) in days.items()
        ],
        keys=["ioc_id", "source", "day", "client_word"],
        increment=["hits", "blocked"],
        greatest=["last_seen"],
        bit_or=["clients_mask"],
    )
    upsert(
        connection,
        source_hours,
        [
            {"hour": hour, "source": source, "hits": hits, "blocked": blocked}
            for (hour, source), (hits, blocked) in hours.items()
        ],
        keys=["hour", "source"],
        increment=["hits", "blocked"],
    )
