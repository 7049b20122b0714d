"""Re-analyses, URL submissions and relationship fetches: their rows and queue steps.

Each is an ``analysis_requests`` row (what was asked, its state, its polls) and,
while work remains, the IoC's one row in the lookup queue at the background tier
(below re-checks), whose ``reason`` says the next step: ``reanalyse`` or
``submit`` (a POST), ``poll`` (``GET /analyses/{id}``), ``refetch`` (the object,
once its analysis completed) or ``relate`` (relationships). One request per
claim, so every step passes the shared quota and the claim order: an alert or a
new IoC is always claimed first, and a poll that must wait holds no worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, insert, select, update

from vtguardian.clock import day_start
from vtguardian.store.schema import analysis_requests, iocs, lookup_queue, lookup_stats
from vtguardian.store.upsert import upsert

TIER_BACKGROUND = 0
REANALYSE, SUBMIT, RELATE = "reanalyse", "submit", "relate"
OPEN = ("wanted", "requested", "completed")
#: lookup_stats outcomes of the background requests ("Scan statistics").
OUTCOMES = ("reanalysis", "submission", "poll", "relationship")


@dataclass(frozen=True)
class OpenRequest:
    id: int
    ioc_id: int
    kind: str
    status: str
    analysis_id: str | None
    polls: int


def has_open(connection: Connection, ioc_id: int, kinds: tuple[str, ...]) -> bool:
    return (
        connection.execute(
            select(analysis_requests.c.id).where(
                analysis_requests.c.ioc_id == ioc_id,
                analysis_requests.c.kind.in_(kinds),
                analysis_requests.c.status.in_(OPEN),
            )
        ).first()
        is not None
    )


def requested_since(connection: Connection, ioc_id: int, kind: str, since: datetime) -> bool:
    """Whether a request of ``kind`` for the IoC was opened at or after ``since``."""
    return (
        connection.execute(
            select(analysis_requests.c.id).where(
                analysis_requests.c.ioc_id == ioc_id,
                analysis_requests.c.kind == kind,
                analysis_requests.c.created_at >= since,
            )
        ).first()
        is not None
    )


def ever_related(connection: Connection, ioc_id: int) -> bool:
    """Relationships fetched (or being fetched) for the IoC; a failed fetch may be retried."""
    return (
        connection.execute(
            select(analysis_requests.c.id).where(
                analysis_requests.c.ioc_id == ioc_id,
                analysis_requests.c.kind == RELATE,
                analysis_requests.c.status.in_((*OPEN, "done")),
            )
        ).first()
        is not None
    )


def last_seen(connection: Connection, ioc_id: int) -> datetime | None:
    return connection.execute(select(iocs.c.last_seen).where(iocs.c.id == ioc_id)).scalar()


def open_request(
    connection: Connection,
    ioc_id: int,
    kind: str,
    now: datetime,
    old_analysis_date: datetime | None = None,
    old_verdict: str | None = None,
) -> int:
    """A new request and the IoC's queue row for its first step (a queue row left by
    a lookup is taken over: that lookup has just been answered)."""
    request_id = connection.execute(
        insert(analysis_requests).values(
            ioc_id=ioc_id,
            kind=kind,
            status="wanted",
            old_analysis_date=old_analysis_date,
            old_verdict=old_verdict,
            polls=0,
            created_at=now,
        )
    ).inserted_primary_key[0]
    upsert(
        connection,
        lookup_queue,
        [
            {
                "ioc_id": ioc_id,
                "tier": TIER_BACKGROUND,
                "clients": 0,
                "hits": 0,
                "reason": kind,
                "enqueued_at": now,
                "not_before": now,
                "attempts": 0,
            }
        ],
        keys=["ioc_id"],
        replace=["tier", "reason", "not_before", "attempts"],
    )
    return request_id


def current(connection: Connection, ioc_id: int) -> OpenRequest | None:
    """The IoC's open request, newest first."""
    row = connection.execute(
        select(analysis_requests)
        .where(analysis_requests.c.ioc_id == ioc_id, analysis_requests.c.status.in_(OPEN))
        .order_by(analysis_requests.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return OpenRequest(row.id, row.ioc_id, row.kind, row.status, row.analysis_id, row.polls)


def update_request(connection: Connection, request_id: int, **values: object) -> None:
    connection.execute(
        update(analysis_requests).where(analysis_requests.c.id == request_id).values(**values)
    )


def next_step(
    connection: Connection,
    ioc_id: int,
    worker: str,
    reason: str,
    now: datetime,
    delay_seconds: float = 0.0,
) -> None:
    """Hand the IoC's queue row back with its next step, due after ``delay_seconds``."""
    connection.execute(
        update(lookup_queue)
        .where(lookup_queue.c.ioc_id == ioc_id, lookup_queue.c.claimed_by == worker)
        .values(
            reason=reason,
            claimed_by=None,
            claimed_until=None,
            attempts=0,
            not_before=now + timedelta(seconds=delay_seconds),
        )
    )


def counted_today(connection: Connection, provider: str, now: datetime) -> dict[str, int]:
    """Today's background requests by outcome, from the hourly counters."""
    rows = connection.execute(
        select(lookup_stats.c.outcome, func.sum(lookup_stats.c.count))
        .where(
            and_(
                lookup_stats.c.hour >= day_start(now),
                lookup_stats.c.provider == provider,
                lookup_stats.c.outcome.in_(OUTCOMES),
            )
        )
        .group_by(lookup_stats.c.outcome)
    ).all()
    return {outcome: int(total) for outcome, total in rows}
