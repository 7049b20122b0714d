"""The database's size and retention on ``/metrics``: what ``vtguardian db stats`` says.

Read at scrape time like the other metrics, but cheaply: MariaDB's row counts
are InnoDB's estimates and per-table bytes come from ``information_schema``;
on SQLite rows are counted (its tables stay small under retention) and the
file's size is its pages, since measuring each table reads every page.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine

from vtguardian.clock import utcnow
from vtguardian.config import RetentionSettings
from vtguardian.store import retention
from vtguardian.store.footprint import file_bytes, table_sizes


class DatabaseCollector:
    def __init__(self, engine: Engine, policy: RetentionSettings) -> None:
        self.engine = engine
        self.policy = policy

    def collect(self) -> Iterator[Metric]:
        with self.engine.connect() as connection:
            tables = table_sizes(connection, exact=False)
            total = file_bytes(connection)
            due = retention.plan(connection, self.policy, utcnow())
            last = retention.last_run(connection)
        yield GaugeMetricFamily("vtguardian_db_bytes", "Database size on disk", value=total)
        rows = GaugeMetricFamily(
            "vtguardian_db_rows", "Rows per table (estimates on MariaDB)", labels=["table"]
        )
        size = GaugeMetricFamily(
            "vtguardian_db_table_bytes", "Bytes per table with its indexes", labels=["table"]
        )
        oldest = GaugeMetricFamily(
            "vtguardian_db_oldest_seconds", "Unix time of a table's oldest row", labels=["table"]
        )
        newest = GaugeMetricFamily(
            "vtguardian_db_newest_seconds", "Unix time of a table's newest row", labels=["table"]
        )
        for table in tables:
            rows.add_metric([table.table], float(table.rows))
            if table.bytes is not None:
                size.add_metric([table.table], float(table.bytes))
            if table.oldest is not None and table.newest is not None:
                oldest.add_metric([table.table], table.oldest.replace(tzinfo=UTC).timestamp())
                newest.add_metric([table.table], table.newest.replace(tzinfo=UTC).timestamp())
        yield from (rows, size, oldest, newest)
        pending = GaugeMetricFamily(
            "vtguardian_retention_due_rows",
            "Rows the next retention prune removes, by kind",
            labels=["kind"],
        )
        for kind, count in due.items():
            pending.add_metric([kind], float(count))
        yield pending
        if last is not None:
            yield GaugeMetricFamily(
                "vtguardian_retention_last_prune_seconds",
                "Unix time the last finished prune started",
                value=last.replace(tzinfo=UTC).timestamp(),
            )
