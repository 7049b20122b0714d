"""What an alert adds beyond the flip: the IoC's threat context and the related IoCs
the network also contacted (README, "Threat context", "Relationships")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, exists, select

from vtguardian.clock import utcnow
from vtguardian.intel.threat_context import YOUNG_DAYS, shown_context
from vtguardian.store.entities import find_ioc_ids
from vtguardian.store.schema import sightings
from vtguardian.store.threats import contexts, related_of


def alert_context(engine: Engine, ioc_id: int, young_days: int = YOUNG_DAYS) -> dict[str, Any]:
    """``threat`` (categories, family, domain age ...) and ``related_contacted``: related
    IoCs (a resolution, a file's contacted host) that a device of the network contacted."""
    with engine.connect() as connection:
        context = contexts(connection, [ioc_id]).get(ioc_id)
        related = related_of(connection, ioc_id)
        ids = find_ioc_ids(connection, [(r["type"], r["value"]) for r in related])
        contacted = []
        for item in related:
            other = ids.get((item["type"], item["value"]))
            seen = (
                other is not None
                and connection.execute(select(exists().where(sightings.c.ioc_id == other))).scalar()
            )
            if seen:
                contacted.append(item)
    extra: dict[str, Any] = {}
    shown = shown_context(context, utcnow(), young_days)
    if shown:
        extra["threat"] = shown
    if contacted:
        extra["related_contacted"] = contacted
    return extra
