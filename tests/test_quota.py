"""The shared VirusTotal budget, counted in the database (both engines)."""

from __future__ import annotations

from datetime import datetime, timedelta

from vtguardian.quota import Budget, QuotaScheduler

T0 = datetime(2026, 11, 30, 23, 58, 0)


def _spend(scheduler: QuotaScheduler, now: datetime, count: int) -> list[float]:
    return [scheduler.try_reserve(now) for _ in range(count)]


def test_per_minute_window_slides(engine):
    scheduler = QuotaScheduler(engine, Budget(4, 500, 15500, safety_seconds=1.0))
    assert _spend(scheduler, T0, 4) == [0.0] * 4
    wait = scheduler.try_reserve(T0 + timedelta(seconds=10))
    assert 50.0 < wait <= 51.0  # the first request leaves the window at 60 s (+1 s safety)
    assert scheduler.try_reserve(T0 + timedelta(seconds=61.5)) == 0.0
    assert scheduler.usage(T0 + timedelta(seconds=61.5)).minute == 1


def test_day_budget_resets_at_midnight_utc_and_month_on_the_first(engine):
    scheduler = QuotaScheduler(engine, Budget(100, 3, 5))
    assert _spend(scheduler, T0, 3) == [0.0] * 3
    wait = scheduler.try_reserve(T0 + timedelta(seconds=1))
    assert abs(wait - 119.0) < 0.01  # until 00:00 UTC
    next_day = datetime(2026, 12, 1, 0, 0, 1)
    # A new day and a new month: November's 3 requests no longer count.
    assert _spend(scheduler, next_day, 3) == [0.0] * 3
    assert scheduler.try_reserve(next_day) == (datetime(2026, 12, 2) - next_day).total_seconds()
    usage = scheduler.usage(next_day)
    assert (usage.day, usage.month) == (3, 3)


def test_month_budget_blocks_until_next_month(engine):
    scheduler = QuotaScheduler(engine, Budget(100, 100, 4))
    day1 = datetime(2026, 11, 10, 12, 0, 0)
    assert _spend(scheduler, day1, 2) == [0.0, 0.0]
    day2 = datetime(2026, 11, 11, 12, 0, 0)
    assert _spend(scheduler, day2, 2) == [0.0, 0.0]
    wait = scheduler.try_reserve(day2 + timedelta(hours=1))
    assert wait == (datetime(2026, 12, 1) - (day2 + timedelta(hours=1))).total_seconds()


def test_counts_survive_a_restart(engine):
    QuotaScheduler(engine, Budget(4, 500, 15500)).try_reserve(T0)
    QuotaScheduler(engine, Budget(4, 500, 15500)).try_reserve(T0)
    usage = QuotaScheduler(engine, Budget(4, 500, 15500)).usage(T0 + timedelta(seconds=1))
    assert (usage.minute, usage.day, usage.month) == (2, 2, 2)
    assert usage.remaining() == {"minute": 2, "day": 498, "month": 15498}


def test_pause_after_429_is_shared_and_escalates(engine):
    first = QuotaScheduler(engine, Budget(4, 500, 15500))
    second = QuotaScheduler(engine, Budget(4, 500, 15500))
    now = datetime(2026, 11, 20, 12, 0, 0)
    assert first.pause_after_429(now) == 60
    assert second.try_reserve(now + timedelta(seconds=1)) == 59.0
    assert first.pause_after_429(now) == 120
    second.clear_pause()
    assert second.try_reserve(now + timedelta(seconds=1)) == 0.0
    assert first.pause_after_429(now) == 60  # escalation starts over after a success
