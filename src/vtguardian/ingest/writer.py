"""Storing a prepared batch and its checkpoint in one transaction.

Sightings, new IoCs and clients, the lookup queue, IDS alerts, bad-input
records and the source offset commit together, so a crash at any point resumes
from exactly what was stored: nothing lost, nothing counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Engine, func, insert, select

from vtguardian import wake
from vtguardian.clock import utcnow
from vtguardian.ingest.prepare import CountRow, IocKey, Prepared, prepare
from vtguardian.ingest.totals import Totals
from vtguardian.iocs import Classifier
from vtguardian.sources.batch import Batch
from vtguardian.store import queue
from vtguardian.store.engine import foreign_keys_unchecked, run_in_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs
from vtguardian.store.resolutions import write_connections, write_resolutions
from vtguardian.store.schema import ids_alerts, ingest_errors, iocs
from vtguardian.store.sightings import SightingRow, write_sightings

Checkpoint = Callable[[Connection], None]


def flush(
    engine: Engine,
    batch: Batch,
    classifier: Classifier,
    totals: Totals,
    checkpoint: Checkpoint | None = None,
) -> None:
    """Prepare and store a batch in this process."""
    store(engine, prepare(batch, classifier), totals, checkpoint)


def store(
    engine: Engine,
    prepared: Prepared,
    totals: Totals,
    checkpoint: Checkpoint | None = None,
) -> None:
    """Store a prepared batch and its checkpoint (source offset) atomically, then count it."""
    now = utcnow()
    queued = 0

    def work(connection: Connection) -> int:
        newest = _newest_ioc_id(connection)
        ioc_ids = ensure_iocs(connection, prepared.iocs)
        client_ids = ensure_clients(connection, prepared.clients)
        with foreign_keys_unchecked(connection):  # every id here was just upserted
            write_rows(connection, ioc_ids, client_ids)
        return sum(1 for ioc_id in ioc_ids.values() if ioc_id > newest)

    def write_rows(
        connection: Connection, ioc_ids: dict[IocKey, int], client_ids: dict[str, int]
    ) -> None:
        nonlocal queued
        source = prepared.source

        def with_ids(rows: list[CountRow]) -> list[SightingRow]:
            return [
                (
                    ioc_ids[r.ioc],
                    client_ids[r.client],
                    source,
                    r.when,
                    r.hits,
                    r.blocked,
                    r.last,
                    r.first,
                )
                for r in rows
            ]

        write_sightings(connection, with_ids(prepared.sightings), with_ids(prepared.client_days))
        if prepared.connections:
            write_connections(
                connection,
                [
                    (k.address, client_ids[k.client], source, k.hour, k.hits, k.last, k.first)
                    for k in prepared.connections
                ],
            )
        if prepared.resolutions:
            write_resolutions(
                connection,
                [
                    (
                        ioc_ids[r.name],
                        ioc_ids[r.answer],
                        client_ids[r.client],
                        source,
                        r.hour,
                        r.hits,
                        r.last,
                        r.first,
                    )
                    for r in prepared.resolutions
                ],
            )
        queued = _queue(connection, prepared, ioc_ids, now)
        if prepared.alerts:
            connection.execute(
                insert(ids_alerts),
                [
                    {
                        **row,
                        "client_id": client_ids.get(client),
                        "ioc_id": ioc_ids.get(ioc) if ioc else None,
                    }
                    for row, client, ioc in prepared.alerts
                ],
            )
        if prepared.errors:
            connection.execute(
                insert(ingest_errors),
                [
                    {
                        "source": prepared.source,
                        "path": e.path[-1024:],
                        "position": e.position,
                        "reason": e.reason,
                        "sample": e.sample,
                        "created_at": now,
                    }
                    for e in prepared.errors
                ],
            )
        if checkpoint is not None:
            checkpoint(connection)

    added = run_in_transaction(engine, work)
    if queued:  # committed: a lookup worker in this process may start on them now
        wake.QUEUED.notify()
    totals.lines += prepared.lines
    totals.events += prepared.events
    totals.new_iocs += added
    totals.hits += prepared.hits
    totals.skipped_private += prepared.skipped
    totals.invalid += prepared.invalid
    totals.errors += len(prepared.errors)
    totals.resolutions += len(prepared.resolutions)


def _newest_ioc_id(connection: Connection) -> int:
    """The largest IoC id before a batch is stored: the ids the batch gets above it
    are the IoCs it added (SQLite and MariaDB both number new rows above every
    existing one). Read in the batch's write transaction, so on SQLite no other
    writer adds IoCs in between; on MariaDB, two writers adding one IoC at the
    same moment may both count it."""
    return int(connection.execute(select(func.max(iocs.c.id))).scalar() or 0)


def _queue(
    connection: Connection,
    prepared: Prepared,
    ioc_ids: dict[IocKey, int],
    now: datetime,
) -> int:
    """Queue every IoC of the batch without a fresh answer, alerted ones first; how many."""
    if not prepared.queue:
        return 0
    wanted = {ioc_ids[ioc]: counts for ioc, counts in prepared.queue.items()}
    alerted_ids = {ioc_ids[i] for i in prepared.alerted if i in ioc_ids}
    known = queue.answer_expiry(connection, wanted)
    requests = []
    for ioc_id, (clients, hits) in wanted.items():
        if ioc_id in alerted_ids:
            tier, reason = queue.TIER_ALERT, "ids-alert"
        elif ioc_id in known:
            tier, reason = queue.TIER_RECHECK, "recheck"
        else:
            tier, reason = queue.TIER_NEW, "new"
        requests.append(queue.QueueRequest(ioc_id, tier, clients, hits, reason))
    return queue.enqueue(connection, requests, now, expiry=known)
