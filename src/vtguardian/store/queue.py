"""The lookup queue in the database, shared by every worker.

An eligible IoC without a fresh answer is queued once (the IoC id is the key).
Order: IoCs an IDS alerted on, then never-seen-before IoCs, then by clients and
hits, then stale re-checks. Workers take a lease on what they claim
(``SELECT ... FOR UPDATE SKIP LOCKED`` on MariaDB; SQLite serialises writers),
so a crashed worker's items come back when the lease runs out and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, or_, select, update

from vtguardian import retry
from vtguardian.clock import utcnow
from vtguardian.iocs import IocType
from vtguardian.store.engine import is_sqlite, run_in_transaction
from vtguardian.store.schema import iocs, lookup_queue, verdicts
from vtguardian.store.upsert import upsert

TIER_ALERT = 3
TIER_NEW = 2
TIER_RECHECK = 1
MAX_BACKOFF_SECONDS = 3600.0
CLAIM_INDEX = "ix_lookup_queue_claim_order"


@dataclass(frozen=True)
class QueueRequest:
    ioc_id: int
    tier: int
    clients: int = 0
    hits: int = 0
    reason: str = "new"


@dataclass(frozen=True)
class Claim:
    ioc_id: int
    kind: IocType
    value: str
    tier: int
    attempts: int
    # Why it was queued: a lookup, or a step of a re-analysis (intel/analyses.py).
    reason: str = "new"


def answer_expiry(connection: Connection, ioc_ids: Iterable[int]) -> dict[int, datetime]:
    """When the cached answer of each of ``ioc_ids`` that has one expires."""
    wanted = list(ioc_ids)
    if not wanted:
        return {}
    query = select(verdicts.c.ioc_id, verdicts.c.expires_at).where(verdicts.c.ioc_id.in_(wanted))
    return {ioc_id: expires for ioc_id, expires in connection.execute(query)}


def enqueue(
    connection: Connection,
    requests: Iterable[QueueRequest],
    now: datetime | None = None,
    expiry: dict[int, datetime] | None = None,
) -> int:
    """Queue what has no fresh answer; an IoC already queued keeps one row, its
    priority raised to the highest tier and client count asked for.

    ``expiry``: :func:`answer_expiry` of the requests, when the caller has read it
    already (an ingest does, to tell re-checks from new IoCs); else it is read here.
    """
    now = now or utcnow()
    requests = list(requests)
    if expiry is None:
        expiry = answer_expiry(connection, {r.ioc_id for r in requests})
    fresh = {ioc_id for ioc_id, expires in expiry.items() if expires > now}
    rows = [
        {
            "ioc_id": r.ioc_id,
            "tier": r.tier,
            "clients": r.clients,
            "hits": r.hits,
            "reason": r.reason,
            "enqueued_at": now,
            "not_before": now,
            "attempts": 0,
        }
        for r in requests
        if r.ioc_id not in fresh
    ]
    upsert(
        connection,
        lookup_queue,
        rows,
        keys=["ioc_id"],
        increment=["hits"],
        greatest=["tier", "clients"],
    )
    return len(rows)


def claim(
    engine: Engine, worker: str, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[Claim]:
    """Lease up to ``limit`` items, best first, that no other worker holds."""
    moment = now or utcnow()
    return run_in_transaction(engine, lambda c: claim_in(c, worker, limit, lease_seconds, moment))


def claim_in(
    connection: Connection, worker: str, limit: int, lease_seconds: float, now: datetime
) -> list[Claim]:
    """:func:`claim` inside the caller's transaction (the lease holds once committed)."""
    query = (
        select(lookup_queue.c.ioc_id)
        .where(
            lookup_queue.c.not_before <= now,
            or_(lookup_queue.c.claimed_until.is_(None), lookup_queue.c.claimed_until < now),
        )
        .order_by(
            lookup_queue.c.tier.desc(),
            lookup_queue.c.clients.desc(),
            lookup_queue.c.hits.desc(),
            lookup_queue.c.enqueued_at,
            lookup_queue.c.ioc_id,
        )
        .limit(limit)
    )
    if not is_sqlite(connection):
        # Walk the claim-order index so only the rows taken get locked; SKIP LOCKED
        # then hands concurrent workers the next ones instead of nothing.
        for dialect in ("mysql", "mariadb"):
            query = query.with_hint(lookup_queue, f"FORCE INDEX ({CLAIM_INDEX})", dialect)
        query = query.with_for_update(skip_locked=True)
    ids = list(connection.execute(query).scalars())
    if not ids:
        return []
    connection.execute(
        update(lookup_queue)
        .where(lookup_queue.c.ioc_id.in_(ids))
        .values(claimed_by=worker, claimed_until=now + timedelta(seconds=lease_seconds))
    )
    rows = connection.execute(
        select(
            lookup_queue.c.ioc_id,
            iocs.c.type,
            iocs.c.value,
            lookup_queue.c.tier,
            lookup_queue.c.attempts,
            lookup_queue.c.reason,
        )
        .join(iocs, iocs.c.id == lookup_queue.c.ioc_id)
        .where(lookup_queue.c.ioc_id.in_(ids))
    ).all()
    order = {ioc_id: n for n, ioc_id in enumerate(ids)}
    claims = [Claim(r.ioc_id, IocType(r.type), r.value, r.tier, r.attempts, r.reason) for r in rows]
    return sorted(claims, key=lambda c: order[c.ioc_id])


def complete(connection: Connection, ioc_id: int) -> None:
    """Remove an answered item (in the same transaction that stores the answer)."""
    connection.execute(delete(lookup_queue).where(lookup_queue.c.ioc_id == ioc_id))


def release(
    engine: Engine,
    ioc_id: int,
    worker: str,
    delay_seconds: float = 0.0,
    error: str | None = None,
    count_attempt: bool = False,
    now: datetime | None = None,
) -> None:
    """Give an item back, to be tried again after ``delay_seconds``."""
    now = now or utcnow()
    values: dict[str, object] = {
        "claimed_by": None,
        "claimed_until": None,
        "not_before": now + timedelta(seconds=delay_seconds),
    }
    if error is not None:
        values["last_error"] = error[:255]
    if count_attempt:
        values["attempts"] = lookup_queue.c.attempts + 1

    def work(connection: Connection) -> None:
        connection.execute(
            update(lookup_queue)
            .where(lookup_queue.c.ioc_id == ioc_id, lookup_queue.c.claimed_by == worker)
            .values(**values)
        )

    run_in_transaction(engine, work)


def backoff_seconds(attempts: int, base: float) -> float:
    """30 s, 1 min, 2 min ... capped at an hour: a flaky hour never drops an item."""
    return retry.backoff_seconds(attempts, base, MAX_BACKOFF_SECONDS)


def queue_length(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(lookup_queue)).scalar_one()


def seconds_until_ready(connection: Connection, now: datetime | None = None) -> float | None:
    """How long until some queued item can be claimed; None when the queue is empty."""
    now = now or utcnow()
    earliest = connection.execute(
        select(func.min(func.coalesce(lookup_queue.c.claimed_until, lookup_queue.c.not_before)))
    ).scalar()
    if earliest is None:
        return None
    if isinstance(earliest, str):
        earliest = datetime.fromisoformat(earliest)
    return max(0.0, (earliest - now).total_seconds())


def requeue_stale(connection: Connection, now: datetime | None = None, limit: int = 1000) -> int:
    """Queue re-checks for expired answers of IoCs seen again since they were checked.

    An expired answer is never served: the IoC goes back in the queue (lowest
    tier), but only while the network still talks to it, so quota is not spent on
    names nobody uses any more.
    """
    now = now or utcnow()
    stale = connection.execute(
        select(verdicts.c.ioc_id)
        .join(iocs, iocs.c.id == verdicts.c.ioc_id)
        .outerjoin(lookup_queue, lookup_queue.c.ioc_id == verdicts.c.ioc_id)
        .where(
            or_(verdicts.c.expires_at.is_(None), verdicts.c.expires_at <= now),
            iocs.c.last_seen > verdicts.c.checked_at,
            lookup_queue.c.ioc_id.is_(None),
        )
        .limit(limit)
    ).scalars()
    return enqueue(
        connection, [QueueRequest(ioc_id, TIER_RECHECK, reason="recheck") for ioc_id in stale], now
    )
