"""The ``actions`` table as every blocking target uses it: what is blocked now, what
lapsed unconfirmed, how many blocks the last hour saw, and the record of a change.

A block is made for ``lifetime`` and lapses unless the verdict is confirmed
again (re-checked) after it was made: one bad day of one provider cannot keep
an address blocked for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, insert, select, update

from vtguardian.store.engine import run_in_transaction
from vtguardian.store.entities import find_ioc_ids
from vtguardian.store.schema import actions, iocs, verdicts


@dataclass(frozen=True)
class TargetState:
    """What a blocking target needs to decide: active blocks and their expiry, blocks
    that lapsed unconfirmed, and how many blocks the last hour saw."""

    active: dict[str, datetime | None]
    lapsed: set[str]
    recent: int
    # The user's own decisions (`block add` / `block remove`), which beat the verdicts.
    forced: set[str]
    refused: set[str]


MANUAL = "manual"


def target_state(engine: Engine, target: str, now: datetime) -> TargetState:
    with engine.connect() as connection:
        forced, refused = manual_choices(connection, target, now)
        return TargetState(
            active_blocks(connection, target),
            lapsed_unconfirmed(connection, target, now),
            blocks_in_last_hour(connection, target, now),
            forced,
            refused,
        )


def manual_choices(connection: Connection, target: str, now: datetime) -> tuple[set[str], set[str]]:
    """Values the user blocked (still in force) and unblocked: their latest choice counts."""
    latest = (
        select(actions.c.ioc_id, func.max(actions.c.id).label("last_id"))
        .where(actions.c.target == target, actions.c.reason == MANUAL)
        .group_by(actions.c.ioc_id)
        .subquery()
    )
    rows = connection.execute(
        select(iocs.c.value, actions.c.action, actions.c.expires_at)
        .join(latest, latest.c.last_id == actions.c.id)
        .join(iocs, iocs.c.id == actions.c.ioc_id)
    ).all()
    forced = {
        v for v, action, until in rows if action == "block" and (until is None or until > now)
    }
    refused = {v for v, action, _until in rows if action == "unblock"}
    return forced, refused


def active_blocks(connection: Connection, target: str) -> dict[str, datetime | None]:
    """Values with an active (non dry-run) block at ``target``, and when each expires."""
    rows = connection.execute(
        select(iocs.c.value, actions.c.expires_at)
        .join(iocs, iocs.c.id == actions.c.ioc_id)
        .where(
            actions.c.target == target,
            actions.c.action == "block",
            actions.c.active.is_(True),
            actions.c.dry_run.is_(False),
        )
    ).all()
    return dict(rows)


def lapsed_unconfirmed(connection: Connection, target: str, now: datetime) -> set[str]:
    """Values whose last block expired with no re-check of the verdict since it was made."""
    last_block = (
        select(actions.c.ioc_id, func.max(actions.c.created_at).label("blocked_at"))
        .where(
            actions.c.target == target,
            actions.c.action == "block",
            actions.c.dry_run.is_(False),
            actions.c.expires_at <= now,
        )
        .group_by(actions.c.ioc_id)
        .subquery()
    )
    rows = connection.execute(
        select(iocs.c.value)
        .join(last_block, last_block.c.ioc_id == iocs.c.id)
        .join(verdicts, verdicts.c.ioc_id == iocs.c.id)
        .where(verdicts.c.checked_at <= last_block.c.blocked_at)
    ).scalars()
    return set(rows)


def blocks_in_last_hour(connection: Connection, target: str, now: datetime) -> int:
    """New real blocks at ``target`` in the hour before ``now`` (the circuit breaker's count)."""
    return connection.execute(
        select(func.count())
        .select_from(actions)
        .where(
            actions.c.target == target,
            actions.c.action == "block",
            actions.c.dry_run.is_(False),
            actions.c.created_at > now - timedelta(hours=1),
        )
    ).scalar_one()


def record_changes(
    engine: Engine,
    target: str,
    kind: str,
    added: Sequence[str],
    removed: Sequence[str],
    dry_run: bool,
    now: datetime,
    lifetime: timedelta,
    reason: str | None = None,
) -> None:
    """One ``block`` row per added value and one ``unblock`` row per removed one
    (``reason`` :data:`MANUAL` marks the user's own choice)."""
    if not (added or removed):
        return

    def work(connection: Connection) -> None:
        ids = find_ioc_ids(connection, [(kind, v) for v in [*added, *removed]])
        for value in removed:
            ioc_id = ids[(kind, value)]
            connection.execute(
                update(actions)
                .where(
                    actions.c.ioc_id == ioc_id,
                    actions.c.target == target,
                    actions.c.active.is_(True),
                )
                .values(active=False)
            )
            connection.execute(
                insert(actions).values(
                    ioc_id=ioc_id,
                    target=target,
                    action="unblock",
                    created_at=now,
                    active=False,
                    reason=reason or "verdict cleared or block expired",
                    dry_run=dry_run,
                )
            )
        for value in added:
            connection.execute(
                insert(actions).values(
                    ioc_id=ids[(kind, value)],
                    target=target,
                    action="block",
                    created_at=now,
                    expires_at=now + lifetime,
                    active=not dry_run,
                    reason=reason or "malicious verdict",
                    dry_run=dry_run,
                )
            )

    run_in_transaction(engine, work)
