"""The VirusTotal budget, counted in the database and shared by every worker.

Three budgets apply at once: a sliding per-minute window, a per-day window that
resets at 00:00 UTC and a per-month window that resets on the 1st (UTC). A
request is only sent after :meth:`QuotaScheduler.try_reserve` has counted it,
inside one serialised transaction, so any number of worker processes on one
MariaDB together never exceed the budgets, and a restart forgets nothing.

Every request counts, a 404 included, and so does one whose answer was lost:
over-counting wastes a little quota, under-counting gets the key blocked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, select, update

from vtguardian.clock import day_start, utcnow
from vtguardian.store.engine import run_in_transaction
from vtguardian.store.schema import provider_state, quota_usage
from vtguardian.store.upsert import upsert

# After a 429 the pause grows while the service keeps refusing.
PAUSE_STEPS = (60, 120, 300, 900, 3600)


@dataclass(frozen=True)
class Budget:
    per_minute: int
    per_day: int
    per_month: int
    minute_seconds: float = 60.0
    # Added to the minute window: our clock and the service's differ by the
    # request's transit time, and a request must never land in a full window.
    safety_seconds: float = 1.0


@dataclass(frozen=True)
class Usage:
    minute: int
    day: int
    month: int
    budget: Budget
    paused_until: datetime | None

    def remaining(self) -> dict[str, int]:
        return {
            "minute": max(0, self.budget.per_minute - self.minute),
            "day": max(0, self.budget.per_day - self.day),
            "month": max(0, self.budget.per_month - self.month),
        }


def month_start(moment: datetime) -> datetime:
    return day_start(moment).replace(day=1)


def next_month(moment: datetime) -> datetime:
    start = month_start(moment)
    return (start + timedelta(days=32)).replace(day=1)


class QuotaScheduler:
    """Reserves requests against the shared budget of one provider."""

    def __init__(self, engine: Engine, budget: Budget, provider: str = "virustotal") -> None:
        self.engine = engine
        self.budget = budget
        self.provider = provider

    @property
    def _window(self) -> timedelta:
        return timedelta(seconds=self.budget.minute_seconds + self.budget.safety_seconds)

    def try_reserve(self, now: datetime | None = None) -> float:
        """Count one request and return 0, or return the seconds to wait and count nothing."""
        return run_in_transaction(self.engine, lambda c: self._reserve(c, now))

    def _reserve(self, connection: Connection, fixed_now: datetime | None) -> float:
        locked_day = day_start(fixed_now or utcnow())
        day_used = self._lock_day(connection, locked_day)
        # Stamp the request only once the lock is held: time spent queueing for it
        # would otherwise make the send look older than it is, and the service
        # counts it from its arrival.
        now = fixed_now or utcnow()
        day, month = day_start(now), month_start(now)
        if day != locked_day:  # midnight passed while waiting
            day_used = self._lock_day(connection, day)
        key = {"provider": self.provider}
        paused = connection.execute(
            select(provider_state.c.paused_until).where(provider_state.c.provider == self.provider)
        ).scalar()
        if paused is not None and paused > now:
            return (paused - now).total_seconds()
        if day_used >= self.budget.per_day:
            return (day + timedelta(days=1) - now).total_seconds()
        if self._used(connection, "month", month) >= self.budget.per_month:
            return (next_month(now) - now).total_seconds()
        recent = self._recent(connection, now)
        if len(recent) >= self.budget.per_minute:
            oldest_that_must_expire = recent[len(recent) - self.budget.per_minute]
            return max(0.01, (oldest_that_must_expire + self._window - now).total_seconds())
        upsert(
            connection,
            quota_usage,
            [
                {**key, "window": "minute", "window_start": now, "used": 1},
                {**key, "window": "day", "window_start": day, "used": 1},
                {**key, "window": "month", "window_start": month, "used": 1},
            ],
            keys=["provider", "window", "window_start"],
            increment=["used"],
        )
        connection.execute(
            delete(quota_usage).where(
                quota_usage.c.provider == self.provider,
                quota_usage.c.window == "minute",
                quota_usage.c.window_start < now - 2 * self._window,
            )
        )
        return 0.0

    def _lock_day(self, connection: Connection, day: datetime) -> int:
        """Lock the day counter, which every reservation of this provider queues on."""
        upsert(
            connection,
            quota_usage,
            [{"provider": self.provider, "window": "day", "window_start": day, "used": 0}],
            keys=["provider", "window", "window_start"],
            increment=["used"],
        )
        return connection.execute(
            select(quota_usage.c.used)
            .where(
                quota_usage.c.provider == self.provider,
                quota_usage.c.window == "day",
                quota_usage.c.window_start == day,
            )
            .with_for_update()
        ).scalar_one()

    def _used(self, connection: Connection, window: str, start: datetime) -> int:
        # int(): MySQL's SUM is a DECIMAL, which JSON output and arithmetic must not see.
        return int(
            connection.execute(
                select(func.coalesce(func.sum(quota_usage.c.used), 0)).where(
                    quota_usage.c.provider == self.provider,
                    quota_usage.c.window == window,
                    quota_usage.c.window_start == start,
                )
            ).scalar_one()
        )

    def _recent(self, connection: Connection, now: datetime) -> list[datetime]:
        """Send times inside the sliding window, oldest first (one per request)."""
        rows = connection.execute(
            select(quota_usage.c.window_start, quota_usage.c.used)
            .where(
                quota_usage.c.provider == self.provider,
                quota_usage.c.window == "minute",
                quota_usage.c.window_start > now - self._window,
            )
            .order_by(quota_usage.c.window_start)
        ).all()
        return [when for when, used in rows for _ in range(used)]

    def usage(self, now: datetime | None = None) -> Usage:
        now = now or utcnow()
        with self.engine.connect() as connection:
            paused = connection.execute(
                select(provider_state.c.paused_until).where(
                    provider_state.c.provider == self.provider
                )
            ).scalar()
            return Usage(
                minute=len(self._recent(connection, now)),
                day=self._used(connection, "day", day_start(now)),
                month=self._used(connection, "month", month_start(now)),
                budget=self.budget,
                paused_until=paused if paused is not None and paused > now else None,
            )

    def pause_after_429(self, now: datetime | None = None) -> float:
        """The service refused: every worker waits, longer each time it happens again."""
        now = now or utcnow()

        def work(connection: Connection) -> float:
            upsert(
                connection,
                provider_state,
                [
                    {
                        "provider": self.provider,
                        "consecutive_429": 1,
                        "updated_at": now,
                        "last_error": "QuotaExceededError",
                    }
                ],
                keys=["provider"],
                increment=["consecutive_429"],
                replace=["updated_at", "last_error"],
            )
            count = connection.execute(
                select(provider_state.c.consecutive_429).where(
                    provider_state.c.provider == self.provider
                )
            ).scalar_one()
            step = PAUSE_STEPS[min(count, len(PAUSE_STEPS)) - 1]
            seconds = min(step, max(self.budget.minute_seconds, 1.0) * (step / 60))
            connection.execute(
                update(provider_state)
                .where(provider_state.c.provider == self.provider)
                .values(paused_until=now + timedelta(seconds=seconds))
            )
            return seconds

        return run_in_transaction(self.engine, work)

    def clear_pause(self) -> None:
        """A success ends the escalation (cheap no-op when nothing was paused)."""

        def work(connection: Connection) -> None:
            connection.execute(
                update(provider_state)
                .where(
                    provider_state.c.provider == self.provider,
                    provider_state.c.consecutive_429 > 0,
                )
                .values(consecutive_429=0, paused_until=None)
            )

        run_in_transaction(self.engine, work)
