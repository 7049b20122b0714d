"""Shared bits of the collector tests: run an ingest, read back what was stored."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import Engine, text

from vtguardian.clock import as_naive_utc
from vtguardian.iocs import Classifier
from vtguardian.sources.batch import Totals
from vtguardian.sources.ingest import ingest_paths

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def ingest(engine: Engine, source: str, *paths, **options) -> Totals:
    return ingest_paths(engine, Classifier(), source, [str(p) for p in paths], **options)


def stored_hits(engine: Engine) -> Counter:
    """(type, value) -> hits, summed over clients and hours."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT i.type, i.value, SUM(s.hits) FROM sightings s "
                "JOIN iocs i ON i.id = s.ioc_id GROUP BY i.type, i.value"
            )
        ).all()
    return Counter({(kind, value): int(hits) for kind, value, hits in rows})


def stored_state(engine: Engine) -> tuple:
    """Everything an ingest writes, in a comparable form (ids left out)."""
    with engine.connect() as connection:
        sightings = connection.execute(
            text(
                "SELECT i.type, i.value, c.ip, s.source, s.hour, s.hits, s.blocked "
                "FROM sightings s JOIN iocs i ON i.id = s.ioc_id "
                "JOIN clients c ON c.id = s.client_id "
                "ORDER BY 1, 2, 3, 4, 5"
            )
        ).all()
        queue = connection.execute(
            text(
                "SELECT i.value, q.tier, q.hits FROM lookup_queue q JOIN iocs i ON i.id = q.ioc_id "
                "ORDER BY 1"
            )
        ).all()
        errors = connection.execute(
            text("SELECT position, reason FROM ingest_errors ORDER BY position")
        ).all()
        alerts = connection.execute(text("SELECT COUNT(*) FROM ids_alerts")).scalar()
    # Sorted here: MariaDB and SQLite collate strings differently; SQLite returns
    # datetimes from a text() query as strings.
    return (
        sorted((*r[:4], as_naive_utc(r[4]), *r[5:]) for r in sightings),
        sorted(tuple(r) for r in queue),
        sorted(tuple(r) for r in errors),
        alerts,
    )
