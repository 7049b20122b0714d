"""Provider answers: the report history, the current verdict (the cache) and counters.

A verdict row is the cache entry of its IoC: it answers without a request while
``expires_at`` is ahead. Reports are never overwritten; a verdict that changes
level leaves a ``verdict_history`` row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from vtguardian.clock import as_naive_utc
from vtguardian.store.schema import (
    lookup_queue,
    lookup_stats,
    reports,
    verdict_history,
    verdicts,
)
from vtguardian.store.sightings import hour_bucket
from vtguardian.store.upsert import upsert


@dataclass(frozen=True)
class ReportRow:
    """What one provider said about one IoC, ready to store."""

    provider: str
    outcome: str  # found | not_found | error
    verdict: str
    stats: dict[str, int] | None = None
    ratio: float | None = None
    score: float | None = None
    total: int | None = None
    analysis_date: datetime | None = None
    engines: list[str] | None = None
    labels: list[str] | None = None
    reputation: int | None = None
    popularity_rank: int | None = None
    permalink: str | None = None
    raw: dict[str, Any] | None = None


@dataclass(frozen=True)
class CachedVerdict:
    ioc_id: int
    verdict: str
    ratio: float | None
    malicious: int | None
    total: int | None
    engines: list[str]
    analysis_date: datetime | None
    checked_at: datetime | None
    expires_at: datetime | None
    decided_by: str | None


def _insert_report(
    connection: Connection, ioc_id: int, report: ReportRow, now: datetime, decided: bool
) -> int:
    stats = report.stats or {}
    return connection.execute(
        insert(reports).values(
            ioc_id=ioc_id,
            provider=report.provider,
            fetched_at=now,
            outcome=report.outcome,
            verdict=report.verdict,
            analysis_date=report.analysis_date,
            malicious=stats.get("malicious"),
            suspicious=stats.get("suspicious"),
            harmless=stats.get("harmless"),
            undetected=stats.get("undetected"),
            timeout=stats.get("timeout"),
            total=report.total,
            ratio=report.ratio,
            score=report.score,
            engines=report.engines,
            labels=report.labels,
            reputation=report.reputation,
            popularity_rank=report.popularity_rank,
            permalink=report.permalink,
            decided=decided,
            raw=report.raw,
        )
    ).inserted_primary_key[0]


@dataclass(frozen=True)
class Recorded:
    report_id: int
    previous: str | None
    history_id: int | None  # set when the level changed

    @property
    def changed(self) -> bool:
        return self.history_id is not None


def record_answer(
    connection: Connection,
    ioc_id: int,
    report: ReportRow,
    ttl: timedelta,
    now: datetime,
    also: Sequence[ReportRow] = (),
) -> Recorded:
    """Store the deciding report (and the flow's other answers), make it the IoC's
    current verdict, and note a change of level in the history."""
    for other in also:
        _insert_report(connection, ioc_id, other, now, decided=False)
    report_id = _insert_report(connection, ioc_id, report, now, decided=True)
    stats = report.stats or {}
    previous = connection.execute(
        select(verdicts.c.verdict, verdicts.c.changed_at).where(verdicts.c.ioc_id == ioc_id)
    ).first()
    changed = previous is None or previous.verdict != report.verdict
    upsert(
        connection,
        verdicts,
        [
            {
                "ioc_id": ioc_id,
                "verdict": report.verdict,
                "ratio": report.ratio,
                "score": report.score,
                "malicious": stats.get("malicious"),
                "total": report.total,
                "engines": report.engines or [],
                "providers": [*(other.provider for other in also), report.provider],
                "decided_by": report.provider,
                "report_id": report_id,
                "analysis_date": report.analysis_date,
                "checked_at": now,
                "changed_at": now if changed else previous.changed_at,
                "expires_at": now + ttl,
                "last_used_at": now,
            }
        ],
        keys=["ioc_id"],
        replace=[
            "verdict",
            "ratio",
            "score",
            "malicious",
            "total",
            "engines",
            "providers",
            "decided_by",
            "report_id",
            "analysis_date",
            "checked_at",
            "changed_at",
            "expires_at",
            "last_used_at",
        ],
    )
    old = previous.verdict if previous is not None else None
    if not changed:
        return Recorded(report_id, old, None)
    history_id = connection.execute(
        insert(verdict_history).values(
            ioc_id=ioc_id,
            old_verdict=old,
            new_verdict=report.verdict,
            ratio=report.ratio,
            report_id=report_id,
            changed_at=now,
        )
    ).inserted_primary_key[0]
    return Recorded(report_id, old, history_id)


def cached_verdicts(
    connection: Connection, ioc_ids: Iterable[int], now: datetime, fresh_only: bool = True
) -> dict[int, CachedVerdict]:
    wanted = list(ioc_ids)
    if not wanted:
        return {}
    query = select(verdicts).where(verdicts.c.ioc_id.in_(wanted))
    if fresh_only:
        query = query.where(verdicts.c.expires_at > now)
    return {
        row.ioc_id: CachedVerdict(
            ioc_id=row.ioc_id,
            verdict=row.verdict,
            ratio=row.ratio,
            malicious=row.malicious,
            total=row.total,
            engines=list(row.engines or []),
            analysis_date=as_naive_utc(row.analysis_date),
            checked_at=as_naive_utc(row.checked_at),
            expires_at=as_naive_utc(row.expires_at),
            decided_by=row.decided_by,
        )
        for row in connection.execute(query)
    }


def touch(connection: Connection, ioc_ids: Iterable[int], now: datetime) -> None:
    """Mark cache entries as used, for least-recently-used eviction."""
    wanted = list(ioc_ids)
    if wanted:
        connection.execute(
            update(verdicts).where(verdicts.c.ioc_id.in_(wanted)).values(last_used_at=now)
        )


def record_cache_hits(
    connection: Connection, provider: str, ioc_ids: Iterable[int], hits: int, now: datetime
) -> None:
    """``hits`` answers from the cache for ``ioc_ids``: the entries count as used (for
    eviction) and the hits are added to the hourly statistics (for the hit rate)."""
    touch(connection, ioc_ids, now)
    count_outcome(connection, provider, "cache_hit", now, count=hits)


#: Why an IoC was queued, when whoever queued it counted its cache miss right then: a
#: lookup through the API, an enrichment, a command-line lookup handed on to the worker.
MISS_COUNTED_WHEN_QUEUED = frozenset({"api", "enrich", "cli"})
#: Steps of a re-analysis, a submission or a relationship fetch: no cache was missed.
NOT_A_CACHE_MISS = frozenset({"reanalyse", "submit", "poll", "refetch", "relate"})


def count_claimed_miss(
    connection: Connection,
    provider: str,
    ioc_id: int,
    worker: str,
    answers: Iterable[ReportRow],
    now: datetime,
) -> None:
    """A worker's request to ``provider`` for an IoC it claimed from the queue, answered
    now: one cache miss, whether the IoC is new or a re-check of an expired answer.

    Call it in the transaction that stores the answer, before the IoC leaves the queue:
    a request retried after an error or a 429 stored nothing the first time, so it is
    counted once. Not counted: an IoC queued by a lookup that counted its miss then
    (``MISS_COUNTED_WHEN_QUEUED``), an answer from a provider ahead of ``provider`` (no
    request was made), and an answer stored by a command-line lookup, which holds no
    claim and counts its own miss.
    """
    if all(answer.provider != provider for answer in answers):
        return
    reason = connection.execute(
        select(lookup_queue.c.reason).where(
            lookup_queue.c.ioc_id == ioc_id, lookup_queue.c.claimed_by == worker
        )
    ).scalar()
    if reason is not None and reason not in MISS_COUNTED_WHEN_QUEUED | NOT_A_CACHE_MISS:
        count_outcome(connection, provider, "cache_miss", now)


def evict_beyond(connection: Connection, max_entries: int) -> int:
    """Expire the least recently used cache entries beyond ``max_entries``.

    The verdict stays (dashboards and history need it); it just no longer
    answers without a request, so the next lookup asks again.
    """
    live = connection.execute(
        select(func.count()).select_from(verdicts).where(verdicts.c.expires_at.is_not(None))
    ).scalar_one()
    excess = live - max_entries
    if excess <= 0:
        return 0
    victims = list(
        connection.execute(
            select(verdicts.c.ioc_id)
            .where(verdicts.c.expires_at.is_not(None))
            .order_by(verdicts.c.last_used_at, verdicts.c.ioc_id)
            .limit(excess)
        ).scalars()
    )
    connection.execute(
        update(verdicts).where(verdicts.c.ioc_id.in_(victims)).values(expires_at=None)
    )
    return len(victims)


def count_outcome(
    connection: Connection, provider: str, outcome: str, now: datetime, count: int = 1
) -> None:
    """Hourly counters behind the dashboard's scan statistics and cache hit rate."""
    upsert(
        connection,
        lookup_stats,
        [{"hour": hour_bucket(now), "provider": provider, "outcome": outcome, "count": count}],
        keys=["hour", "provider", "outcome"],
        increment=["count"],
    )
