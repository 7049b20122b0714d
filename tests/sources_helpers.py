"""Shared bits of the collector tests: run an ingest, read back what was stored."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import Engine, text

from vtguardian.clock import as_naive_utc
from vtguardian.config import FollowedSource
from vtguardian.ingest.options import IngestOptions
from vtguardian.ingest.run import ingest as run_ingest
from vtguardian.ingest.totals import Totals
from vtguardian.iocs import Classifier
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine

TEST_DATA = Path(__file__).resolve().parent / "data"


def ingest(
    engine: Engine,
    source: str,
    *paths,
    fields=(),
    flows: bool = False,
    classifier: Classifier | None = None,
    follow: bool = False,
    stop=None,
    on_progress=None,
    **options,
) -> Totals:
    """``vtguardian ingest --source SOURCE PATH...`` in this process; ``options`` are
    :class:`IngestOptions` fields (``batch_lines=1000``)."""
    sources = [
        FollowedSource(source=source, path=str(p), fields=list(fields), flows=flows) for p in paths
    ]
    return run_ingest(
        engine,
        classifier or Classifier(),
        sources,
        IngestOptions(**options),
        follow=follow,
        stop=stop,
        on_progress=on_progress,
    )


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


def stored_by_device(engine: Engine) -> dict[str, dict[str, list[int]]]:
    """``"type value"`` -> {device: [hits, blocked]}, summed over hours and sources;
    the device ``""`` where the log named none."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT i.type, i.value, c.ip, SUM(s.hits), SUM(s.blocked) FROM sightings s "
                "JOIN iocs i ON i.id = s.ioc_id JOIN clients c ON c.id = s.client_id "
                "GROUP BY i.type, i.value, c.ip"
            )
        ).all()
    found: dict[str, dict[str, list[int]]] = {}
    for kind, value, device, hits, blocked in rows:
        found.setdefault(f"{kind} {value}", {})[device] = [int(hits), int(blocked)]
    return found


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


def reference_state(folder: Path, path: Path, source: str = "suricata") -> tuple:
    """What an uninterrupted ingest of ``path`` stores, on a fresh SQLite database."""
    engine = make_engine(f"sqlite:///{folder / 'reference.db'}")
    migrate.upgrade(engine)
    ingest(engine, source, path, batch_lines=1_000)
    try:
        return stored_state(engine)
    finally:
        engine.dispose()


def lookup_outcome(engine: Engine) -> tuple[set[str], int, int]:
    """(values with a verdict, queue length, requests counted against the day's quota).

    Only the ``virustotal`` rows are requests: the daily caps of re-analyses and
    relationship fetches (``virustotal-reanalyses``, ``virustotal-relationships``,
    intel/analyses.py) share the table, and a request they count is counted in the
    quota as well."""
    with engine.connect() as connection:
        answered = set(
            connection.execute(
                text("SELECT i.value FROM verdicts v JOIN iocs i ON i.id = v.ioc_id")
            ).scalars()
        )
        queued = connection.execute(text("SELECT COUNT(*) FROM lookup_queue")).scalar()
        counted = connection.execute(
            text(
                "SELECT SUM(used) FROM quota_usage WHERE provider = 'virustotal' AND window = 'day'"
            )
        ).scalar()
    return answered, int(queued), int(counted or 0)
