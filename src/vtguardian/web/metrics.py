"""Prometheus metrics, read from the database at scrape time.

Counting in the database rather than in process memory means every collector
and worker sharing one MariaDB is reflected, and a restart loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select

from vtguardian.config import RetentionSettings
from vtguardian.quota import QuotaScheduler
from vtguardian.store.schema import (
    actions,
    iocs,
    lookup_queue,
    lookup_stats,
    sightings,
    verdicts,
)
from vtguardian.web.db_metrics import DatabaseCollector


class StoreCollector:
    def __init__(self, engine: Engine, quota: QuotaScheduler) -> None:
        self.engine = engine
        self.quota = quota

    def collect(self) -> Iterator[Metric]:
        with self.engine.connect() as c:
            by_source = c.execute(
                select(sightings.c.source, func.sum(sightings.c.hits)).group_by(sightings.c.source)
            ).all()
            by_verdict = c.execute(
                select(func.coalesce(verdicts.c.verdict, "pending"), func.count())
                .select_from(iocs)
                .outerjoin(verdicts, verdicts.c.ioc_id == iocs.c.id)
                .group_by(verdicts.c.verdict)
            ).all()
            queued = c.execute(select(func.count()).select_from(lookup_queue)).scalar_one()
            outcomes = c.execute(
                select(
                    lookup_stats.c.provider, lookup_stats.c.outcome, func.sum(lookup_stats.c.count)
                ).group_by(lookup_stats.c.provider, lookup_stats.c.outcome)
            ).all()
            blocks = c.execute(
                select(func.count())
                .select_from(actions)
                .where(actions.c.action == "block", actions.c.active.is_(True))
            ).scalar_one()
        events = GaugeMetricFamily(
            "vtguardian_events_ingested", "Observations ingested, by source", labels=["source"]
        )
        for source, total in by_source:
            events.add_metric([source], float(total or 0))
        yield events
        levels = GaugeMetricFamily("vtguardian_iocs", "IoCs by verdict", labels=["verdict"])
        for verdict, count in by_verdict:
            levels.add_metric([verdict], float(count))
        yield levels
        yield GaugeMetricFamily(
            "vtguardian_queue_length", "IoCs waiting for a lookup", value=queued
        )
        requests = GaugeMetricFamily(
            "vtguardian_lookups",
            "Provider requests and cache use, by outcome",
            labels=["provider", "outcome"],
        )
        for provider, outcome, total in outcomes:
            requests.add_metric([provider, outcome], float(total or 0))
        yield requests
        usage = self.quota.usage()
        remaining = GaugeMetricFamily(
            "vtguardian_quota_remaining", "VirusTotal requests left", labels=["window"]
        )
        for window, left in usage.remaining().items():
            remaining.add_metric([window], float(left))
        yield remaining
        yield GaugeMetricFamily("vtguardian_blocks_active", "Active blocks", value=blocks)


def render_metrics(
    engine: Engine, quota: QuotaScheduler, retention: RetentionSettings | None = None
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(engine, quota))  # type: ignore[arg-type]
    if retention is not None:
        registry.register(DatabaseCollector(engine, retention))  # type: ignore[arg-type]
    return generate_latest(registry)
