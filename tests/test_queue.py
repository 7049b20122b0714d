"""The lookup queue: one row per IoC, priority order, leases (both engines)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from vtguardian.store import queue
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.store.queue import TIER_ALERT, TIER_NEW, TIER_RECHECK, QueueRequest
from vtguardian.store.schema import lookup_queue

NOW = datetime(2026, 11, 20, 12, 0, 0)


def _iocs(engine, names):
    with write_transaction(engine) as connection:
        ids = ensure_iocs(connection, {("domain", n): (None, NOW, NOW) for n in names})
    return [ids[("domain", n)] for n in names]


def _enqueue(engine, requests, now=NOW):
    with write_transaction(engine) as connection:
        return queue.enqueue(connection, requests, now)


def test_priority_order(engine):
    recheck, quiet_new, busy_new, alerted, busiest_new = _iocs(
        engine,
        ["r.example.com", "q.example.com", "b.example.com", "a.example.com", "z.example.com"],
    )
    _enqueue(
        engine,
        [
            QueueRequest(recheck, TIER_RECHECK, clients=50, hits=900),
            QueueRequest(quiet_new, TIER_NEW, clients=1, hits=1),
            QueueRequest(busy_new, TIER_NEW, clients=4, hits=10),
            QueueRequest(alerted, TIER_ALERT, clients=1, hits=1),
            QueueRequest(busiest_new, TIER_NEW, clients=4, hits=80),
        ],
    )
    claims = queue.claim(engine, "w1", 10, 60, now=NOW)
    assert [c.ioc_id for c in claims] == [alerted, busiest_new, busy_new, quiet_new, recheck]
    assert claims[0].value == "a.example.com"


def test_an_ioc_is_queued_once_and_keeps_its_highest_priority(engine):
    (ioc,) = _iocs(engine, ["x.example.com"])
    _enqueue(engine, [QueueRequest(ioc, TIER_NEW, clients=1, hits=2)])
    _enqueue(engine, [QueueRequest(ioc, TIER_ALERT, clients=3, hits=5)])
    _enqueue(engine, [QueueRequest(ioc, TIER_RECHECK, clients=2, hits=1)])
    with engine.connect() as connection:
        rows = connection.execute(select(lookup_queue)).all()
    assert len(rows) == 1
    assert (rows[0].tier, rows[0].clients, rows[0].hits) == (TIER_ALERT, 3, 8)


def test_fresh_cache_entries_are_not_queued(engine):
    fresh, stale = _iocs(engine, ["fresh.example.com", "stale.example.com"])
    with write_transaction(engine) as connection:
        report = ReportRow(provider="virustotal", outcome="found", verdict="harmless")
        record_answer(connection, fresh, report, timedelta(days=7), NOW - timedelta(days=1))
        record_answer(connection, stale, report, timedelta(days=7), NOW - timedelta(days=8))
    queued = _enqueue(engine, [QueueRequest(fresh, TIER_NEW), QueueRequest(stale, TIER_NEW)])
    assert queued == 1
    assert [c.ioc_id for c in queue.claim(engine, "w", 10, 60, now=NOW)] == [stale]


def test_lease_hides_claimed_items_until_it_expires(engine):
    a, b = _iocs(engine, ["a.example.com", "b.example.com"])
    _enqueue(engine, [QueueRequest(a, TIER_NEW, hits=2), QueueRequest(b, TIER_NEW, hits=1)])
    assert [c.ioc_id for c in queue.claim(engine, "w1", 1, 60, now=NOW)] == [a]
    assert [c.ioc_id for c in queue.claim(engine, "w2", 5, 60, now=NOW)] == [b]
    assert queue.claim(engine, "w3", 5, 60, now=NOW + timedelta(seconds=30)) == []
    # w1 died: its lease runs out and the item comes back.
    later = NOW + timedelta(seconds=61)
    assert {c.ioc_id for c in queue.claim(engine, "w3", 5, 60, now=later)} == {a, b}


def test_release_with_backoff_counts_attempts(engine):
    (a,) = _iocs(engine, ["a.example.com"])
    _enqueue(engine, [QueueRequest(a, TIER_NEW)])
    queue.claim(engine, "w1", 1, 60, now=NOW)
    queue.release(engine, a, "w1", 30, "TransientError", count_attempt=True, now=NOW)
    assert queue.claim(engine, "w1", 1, 60, now=NOW + timedelta(seconds=10)) == []
    (again,) = queue.claim(engine, "w1", 1, 60, now=NOW + timedelta(seconds=31))
    assert again.attempts == 1
    with engine.connect() as connection:
        assert connection.execute(select(lookup_queue.c.last_error)).scalar() == "TransientError"


def test_release_by_another_worker_is_ignored(engine):
    (a,) = _iocs(engine, ["a.example.com"])
    _enqueue(engine, [QueueRequest(a, TIER_NEW)])
    queue.claim(engine, "w1", 1, 60, now=NOW)
    queue.release(engine, a, "not-the-owner", 0, now=NOW)
    assert queue.claim(engine, "w2", 1, 60, now=NOW) == []


@pytest.mark.parametrize("attempts", [0, 3, 20])
def test_backoff_grows_and_is_capped(attempts):
    assert queue.backoff_seconds(attempts, 30) == min(3600, 30 * 2**attempts)


def test_skip_locked_lets_workers_claim_different_items(mariadb_url):
    from vtguardian.store import migrate
    from vtguardian.store.engine import make_engine

    engine = make_engine(mariadb_url)
    migrate.upgrade(engine)
    ids = _iocs(engine, [f"h{n}.example.com" for n in range(4)])
    _enqueue(engine, [QueueRequest(i, TIER_NEW, hits=10 - n) for n, i in enumerate(ids)])
    # Worker 1 is mid-claim: it holds row locks on the two best items.
    with engine.connect() as holder, holder.begin():
        holder.execute(text("SET SESSION innodb_lock_wait_timeout = 3"))
        first = queue.claim_in(holder, "w1", 2, 60, NOW)
        second = queue.claim(engine, "w2", 2, 60, now=NOW)  # neither waits nor duplicates
    assert [c.ioc_id for c in first] == ids[:2]
    assert [c.ioc_id for c in second] == ids[2:]
    engine.dispose()
