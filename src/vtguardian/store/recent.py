"""The newest rows of a table that points at an IoC, with that IoC's type and value."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table, select

from vtguardian.store.schema import iocs


def recent_with_ioc(engine: Engine, table: Table, limit: int) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(
            select(table, iocs.c.type, iocs.c.value)
            .join(iocs, iocs.c.id == table.c.ioc_id)
            .order_by(table.c.id.desc())
            .limit(limit)
        ).all()
