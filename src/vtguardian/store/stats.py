"""The hourly lookup counters (``lookup_stats``), summed."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, func, select

from vtguardian.store.schema import lookup_stats


def outcome_counts(
    connection: Connection, outcomes: Collection[str] | None = None
) -> dict[tuple[str, str], int]:
    """Each provider's count of each outcome over every hour stored, keyed by
    ``(provider, outcome)``; only ``outcomes`` when given. What was never counted
    is absent."""
    query = select(
        lookup_stats.c.provider, lookup_stats.c.outcome, func.sum(lookup_stats.c.count)
    ).group_by(lookup_stats.c.provider, lookup_stats.c.outcome)
    if outcomes is not None:
        query = query.where(lookup_stats.c.outcome.in_(list(outcomes)))
    return {
        (provider, outcome): int(total) for provider, outcome, total in connection.execute(query)
    }
