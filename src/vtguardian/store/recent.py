"""The newest rows of a table that points at an IoC, with that IoC's type and value."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table, select

from vtguardian.store.schema import actions, alerts, iocs


def recent_with_ioc(engine: Engine, table: Table, limit: int) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(
            select(table, iocs.c.type, iocs.c.value)
            .join(iocs, iocs.c.id == table.c.ioc_id)
            .order_by(table.c.id.desc())
            .limit(limit)
        ).all()


def recent_alerts(engine: Engine, limit: int) -> list[Any]:
    """The newest ``limit`` alerts, newest first, each with its IoC's type and value."""
    return recent_with_ioc(engine, alerts, limit)


def recent_actions(engine: Engine, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` blocks and unblocks, newest first, as column: value."""
    return [dict(row._mapping) for row in recent_with_ioc(engine, actions, limit)]
