"""Retention: what each kind of row outlives, and pruning it in small transactions.

A Pi keeps its database for years, so every table that grows with time has a
rule here (``[retention]``). Hourly sightings go first (their daily rollups keep
the same totals, and the dashboard reads those for older days); hourly sightings
are cut at a midnight, so a day is either all hourly rows or rollups only.
Report history keeps every report that changed a verdict, the one each verdict
points at, and the last ``reports_kept`` others per IoC and provider. Active
blocks are never removed.

Deleting is done in batches of ``batch_rows`` rows, each its own transaction
(MariaDB: ``DELETE ... LIMIT``; SQLite: by rowid), with a pause as long as the
batch between them, so an ingest or a lookup waiting for the lock gets it within
one batch. On SQLite the freed pages are then returned to the file system by
``PRAGMA incremental_vacuum``, also in steps, and the WAL is truncated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)

from vtguardian.clock import day_start, utcnow
from vtguardian.config import RetentionSettings
from vtguardian.store.engine import is_sqlite, run_in_transaction
from vtguardian.store.schema import (
    actions,
    alerts,
    ids_alerts,
    ingest_errors,
    ioc_days,
    lookup_stats,
    quota_usage,
    reports,
    retention_runs,
    sightings,
    source_hours,
    verdict_history,
    verdicts,
)

# Pages returned to the file system per incremental vacuum step (4 KiB pages: 16 MiB).
VACUUM_STEP_PAGES = 4096


@dataclass(frozen=True)
class Rule:
    """One kind of row and which of them have had their time."""

    kind: str
    table: Table
    # The rows to remove, given the moment the prune starts.
    condition: ColumnElement[bool] | None = None
    # Instead of a condition: a query for the ids (``table.c.id``) to remove.
    ids: Select | None = None


@dataclass
class PruneResult:
    removed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # Longest single transaction: how long a waiting writer could have waited.
    longest_batch_seconds: float = 0.0
    file_bytes_before: int | None = None
    file_bytes_after: int | None = None
    # SQLite with auto_vacuum off: the freed pages stay in the file (reused, not returned).
    vacuum_off: bool = False


def hourly_cutoff(policy: RetentionSettings, now: datetime) -> datetime:
    """Hourly sightings before this midnight are pruned: the first day kept whole."""
    return day_start(now - timedelta(days=policy.sightings_days))


def rules(policy: RetentionSettings, now: datetime) -> list[Rule]:
    """Every rule, in the order they are applied (the largest tables first)."""
    hourly = hourly_cutoff(policy, now)
    rollups = day_start(now - timedelta(days=policy.rollups_days))
    return [
        Rule("sightings", sightings, sightings.c.hour < hourly),
        Rule("ids_alerts", ids_alerts, ids_alerts.c.ts < hourly),
        Rule("ioc_days", ioc_days, ioc_days.c.day < rollups),
        Rule("source_hours", source_hours, source_hours.c.hour < rollups),
        Rule("lookup_stats", lookup_stats, lookup_stats.c.hour < rollups),
        Rule("reports", reports, ids=_old_report_ids(policy.reports_kept)),
        Rule(
            "ingest_errors",
            ingest_errors,
            ingest_errors.c.created_at < now - timedelta(days=policy.ingest_errors_days),
        ),
        Rule(
            "quota_usage",
            quota_usage,
            quota_usage.c.window_start < now - timedelta(days=policy.quota_days),
        ),
        Rule("alerts", alerts, alerts.c.created_at < now - timedelta(days=policy.alerts_days)),
        Rule(
            "actions",
            actions,
            (actions.c.created_at < now - timedelta(days=policy.actions_days))
            & actions.c.active.is_(False),
        ),
        Rule("retention_runs", retention_runs, retention_runs.c.started_at < rollups),
    ]


def _old_report_ids(kept: int) -> Select:
    """Reports beyond the last ``kept`` per IoC and provider, except the ones that
    changed a verdict or that a verdict stands on."""
    ranked = select(
        reports.c.id,
        func.row_number()
        .over(partition_by=(reports.c.ioc_id, reports.c.provider), order_by=reports.c.id.desc())
        .label("rank"),
    ).subquery()
    changed = select(verdict_history.c.report_id).where(verdict_history.c.report_id.is_not(None))
    current = select(verdicts.c.report_id).where(verdicts.c.report_id.is_not(None))
    return select(ranked.c.id).where(
        ranked.c.rank > kept, ranked.c.id.not_in(changed), ranked.c.id.not_in(current)
    )


def plan(connection: Connection, policy: RetentionSettings, now: datetime) -> dict[str, int]:
    """How many rows of each kind a prune at ``now`` would remove (nothing is changed)."""
    counts: dict[str, int] = {}
    for rule in rules(policy, now):
        if rule.ids is not None:
            query = select(func.count()).select_from(rule.ids.subquery())
        else:
            query = select(func.count()).select_from(rule.table).where(rule.condition)
        counts[rule.kind] = int(connection.execute(query).scalar_one())
    return counts


def _batch_delete(rule: Rule, limit: int, sqlite: bool) -> Callable[[Connection], int]:
    """One bounded delete of ``rule``'s rows; returns how many went."""

    def work(connection: Connection) -> int:
        if rule.ids is not None:
            ids = [row[0] for row in connection.execute(rule.ids.limit(limit))]
            if not ids:
                return 0
            return connection.execute(delete(rule.table).where(rule.table.c.id.in_(ids))).rowcount
        if sqlite:
            rowid = literal_column("rowid")
            chosen = select(rowid).select_from(rule.table).where(rule.condition).limit(limit)
            return connection.execute(delete(rule.table).where(rowid.in_(chosen))).rowcount
        statement = delete(rule.table).where(rule.condition).with_dialect_options(mysql_limit=limit)
        return connection.execute(statement).rowcount

    return work


def sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database
    return Path(database) if is_sqlite(engine) and database and database != ":memory:" else None


def _file_bytes(path: Path) -> int:
    """The database on disk: the file and its WAL."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def prune(
    engine: Engine,
    policy: RetentionSettings,
    now: datetime | None = None,
    on_batch: Callable[[str, int], None] | None = None,
    stop: threading.Event | None = None,
) -> PruneResult:
    """Remove what retention says has had its time, batch by batch, and record the run.

    ``stop`` ends it between two batches (``run`` shutting down); what was removed
    stays removed and the next prune takes up the rest, but the run is not marked
    finished, so the next ``run`` prunes again at once."""
    now = now or utcnow()
    started = time.perf_counter()
    sqlite = is_sqlite(engine)
    path = sqlite_file(engine)
    result = PruneResult(file_bytes_before=_file_bytes(path) if path else None)
    run_id = run_in_transaction(
        engine,
        lambda c: c.execute(insert(retention_runs).values(started_at=now)).inserted_primary_key[0],
    )
    for rule in rules(policy, now):
        work = _batch_delete(rule, policy.batch_rows, sqlite)
        total = 0
        while not (stop is not None and stop.is_set()):
            began = time.perf_counter()
            removed = run_in_transaction(engine, work)
            took = time.perf_counter() - began
            result.longest_batch_seconds = max(result.longest_batch_seconds, took)
            total += removed
            if on_batch is not None and removed:
                on_batch(rule.kind, removed)
            if removed < policy.batch_rows:
                break
            time.sleep(took)  # as long again: whoever waited for the lock goes next
        result.removed[rule.kind] = total
    if stop is not None and stop.is_set():
        result.seconds = time.perf_counter() - started
        return result
    if sqlite:
        result.vacuum_off = not _vacuum_in_steps(engine, result)
    finished = utcnow()
    run_in_transaction(
        engine,
        lambda c: c.execute(
            update(retention_runs)
            .where(retention_runs.c.id == run_id)
            .values(finished_at=finished, removed=result.removed)
        ),
    )
    result.seconds = time.perf_counter() - started
    result.file_bytes_after = _file_bytes(path) if path else None
    return result


def _vacuum_in_steps(engine: Engine, result: PruneResult) -> bool:
    """Give SQLite's free pages back to the file system; False when auto_vacuum is
    not incremental (a database created before it was set: ``enable_incremental_vacuum``)."""
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA auto_vacuum").scalar()
    if mode != 2:
        return False

    while True:
        began = time.perf_counter()
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            free = int(driver.execute("PRAGMA freelist_count").fetchone()[0])
            if free:
                # Its own write transaction, run to the end: a plain execute() would
                # step the pragma once and free a single page.
                driver.executescript(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES});")
        took = time.perf_counter() - began
        result.longest_batch_seconds = max(result.longest_batch_seconds, took)
        if free <= VACUUM_STEP_PAGES:
            break
        time.sleep(took)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
    return True


def enable_incremental_vacuum(engine: Engine) -> None:
    """Switch an existing SQLite database to incremental auto-vacuum: one full
    ``VACUUM`` (it rewrites the file and holds the lock until done), then never again."""
    with engine.connect() as connection:
        # Outside any transaction (VACUUM cannot run inside one).
        connection.connection.driver_connection.executescript(
            "PRAGMA auto_vacuum = INCREMENTAL; VACUUM;"
        )


def last_run(connection: Connection) -> datetime | None:
    """When the last finished prune started."""
    return connection.execute(
        select(func.max(retention_runs.c.started_at)).where(
            retention_runs.c.finished_at.is_not(None)
        )
    ).scalar_one()


def due(engine: Engine, policy: RetentionSettings, now: datetime) -> bool:
    """Whether ``run`` should prune now: never pruned, or not for ``every_hours``."""
    with engine.connect() as connection:
        last = last_run(connection)
    return last is None or now - last >= timedelta(hours=policy.every_hours)


def prune_if_due(
    engine: Engine, policy: RetentionSettings, stop: threading.Event | None = None
) -> PruneResult | None:
    """What ``run`` does every hour: prune when the last prune is ``every_hours`` old."""
    now = utcnow()
    return prune(engine, policy, now, stop=stop) if due(engine, policy, now) else None
