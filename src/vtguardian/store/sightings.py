"""Hourly sightings: how often a client asked for an IoC through a source."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection

from vtguardian.store.schema import sightings
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
