"""How big the database is: rows and bytes per table, and the oldest and newest data.

What ``vtguardian db stats`` prints and ``/metrics`` exports, so a Pi's owner sees
the database's size and what retention keeps it at. Sizes come from the engine's
own accounting: SQLite's ``dbstat`` table (every page of every table and index,
read once; ``exact`` only) and MariaDB's ``information_schema`` (InnoDB's figures,
its row counts estimates unless ``exact``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Connection, func, select, text

from vtguardian.clock import as_naive_utc
from vtguardian.store.engine import is_sqlite
from vtguardian.store.schema import (
    actions,
    alerts,
    clients,
    ids_alerts,
    ingest_errors,
    ioc_days,
    iocs,
    lookup_queue,
    lookup_stats,
    metadata,
    provider_state,
    quota_usage,
    reports,
    retention_runs,
    sightings,
    source_hours,
    source_offsets,
    verdict_history,
    verdicts,
)

# The column that dates each table's rows (indexed, so MIN and MAX are cheap).
TIME_COLUMNS: dict[str, Column] = {
    table.name: column
    for table, column in (
        (sightings, sightings.c.hour),
        (ioc_days, ioc_days.c.day),
        (source_hours, source_hours.c.hour),
        (reports, reports.c.fetched_at),
        (verdict_history, verdict_history.c.changed_at),
        (lookup_stats, lookup_stats.c.hour),
        (quota_usage, quota_usage.c.window_start),
        (ingest_errors, ingest_errors.c.created_at),
        (ids_alerts, ids_alerts.c.ts),
        (alerts, alerts.c.created_at),
        (actions, actions.c.created_at),
        (iocs, iocs.c.last_seen),
        (clients, clients.c.last_seen),
        (verdicts, verdicts.c.checked_at),
        (lookup_queue, lookup_queue.c.enqueued_at),
        (source_offsets, source_offsets.c.updated_at),
        (provider_state, provider_state.c.updated_at),
        (retention_runs, retention_runs.c.started_at),
    )
}


@dataclass(frozen=True)
class TableSize:
    table: str
    rows: int
    # Table and its indexes on disk; None when not measured (SQLite, not exact).
    bytes: int | None
    oldest: datetime | None
    newest: datetime | None


def file_bytes(connection: Connection) -> int:
    """The whole database: SQLite's pages in use and free; MariaDB's tables and indexes."""
    if is_sqlite(connection):
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
        size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
        return int(pages) * int(size)
    return int(
        connection.execute(
            text(
                "SELECT COALESCE(SUM(data_length + index_length), 0) "
                "FROM information_schema.TABLES WHERE table_schema = DATABASE()"
            )
        ).scalar_one()
    )


def _sqlite_bytes(connection: Connection) -> dict[str, int]:
    """Bytes per table, its indexes included (dbstat reads every page)."""
    rows = connection.exec_driver_sql(
        "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s "
        "JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name"
    ).all()
    return {name: int(size) for name, size in rows}


def _mariadb_sizes(connection: Connection) -> dict[str, tuple[int, int]]:
    rows = connection.execute(
        text(
            "SELECT table_name, COALESCE(table_rows, 0), data_length + index_length "
            "FROM information_schema.TABLES WHERE table_schema = DATABASE() "
            "AND table_type = 'BASE TABLE'"
        )
    ).all()
    return {name: (int(count), int(size)) for name, count, size in rows}


def table_sizes(connection: Connection, exact: bool = True) -> list[TableSize]:
    """Every table of the schema, largest first. ``exact`` counts every row (a
    full scan of the largest tables); otherwise MariaDB's estimates are used and
    SQLite's per-table bytes are left out."""
    sqlite = is_sqlite(connection)
    sizes = {} if sqlite else _mariadb_sizes(connection)
    sqlite_bytes = _sqlite_bytes(connection) if sqlite and exact else {}
    result = []
    for table in metadata.sorted_tables:
        if sqlite or exact:
            rows = int(connection.execute(select(func.count()).select_from(table)).scalar_one())
        else:
            rows = sizes.get(table.name, (0, 0))[0]
        size = sqlite_bytes.get(table.name) if sqlite else sizes.get(table.name, (0, None))[1]
        column = TIME_COLUMNS.get(table.name)
        oldest = newest = None
        if column is not None:
            oldest, newest = connection.execute(select(func.min(column), func.max(column))).one()
        result.append(TableSize(table.name, rows, size, as_naive_utc(oldest), as_naive_utc(newest)))
    return sorted(result, key=lambda t: (-(t.bytes or 0), -t.rows, t.table))
