"""Threat context in the database: an IoC's current context and each report's threats.

``threat_context`` holds one row per IoC (its deciding report's context, in
columns); ``report_threats`` one row per threat category, family and threat label
of each report, so the attack-vector panels count them with the report an IoC's
verdict history points at (the verdict it had at that time).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from vtguardian.clock import as_naive_utc
from vtguardian.store.schema import iocs, related_iocs, report_threats, threat_context
from vtguardian.store.upsert import upsert

NAME_LENGTH = 128


@dataclass(frozen=True)
class ThreatContext:
    """What a report says beyond counts (README, "Threat context")."""

    threat_label: str | None = None
    threat_categories: list[str] = field(default_factory=list)
    site_categories: list[str] = field(default_factory=list)
    result_labels: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    rules: list[dict[str, str]] = field(default_factory=list)
    sandboxes: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    creation_date: datetime | None = None
    asn: int | None = None
    as_owner: str | None = None
    country: str | None = None

    def is_empty(self) -> bool:
        return not any(asdict(self).values())


def record_context(
    connection: Connection, ioc_id: int, report_id: int, context: ThreatContext, now: datetime
) -> None:
    """Make ``context`` the IoC's current one and list the report's threats."""
    row = {"ioc_id": ioc_id, "report_id": report_id, **asdict(context), "updated_at": now}
    upsert(
        connection,
        threat_context,
        [row],
        keys=["ioc_id"],
        replace=[name for name in row if name != "ioc_id"],
    )
    threats = {("category", name) for name in context.threat_categories}
    threats |= {("family", name) for name in context.families}
    if context.threat_label:
        threats.add(("label", context.threat_label))
    rows = [
        {"report_id": report_id, "ioc_id": ioc_id, "kind": kind, "name": name[:NAME_LENGTH]}
        for kind, name in sorted(threats)
    ]
    if rows:
        connection.execute(insert(report_threats), rows)


def contexts(connection: Connection, ioc_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The current context of each IoC that has one, as plain JSON-ready values."""
    wanted = list(ioc_ids)
    if not wanted:
        return {}
    found: dict[int, dict[str, Any]] = {}
    for row in connection.execute(
        select(threat_context).where(threat_context.c.ioc_id.in_(wanted))
    ).mappings():
        item = {str(k): v for k, v in row.items() if k not in ("ioc_id", "report_id", "updated_at")}
        item["creation_date"] = as_naive_utc(row["creation_date"])
        found[row["ioc_id"]] = item
    return found


def record_related(
    connection: Connection, ioc_id: int, related: dict[int, str], now: datetime
) -> None:
    """``related``: related IoC id -> relationship name."""
    rows = [
        {"ioc_id": ioc_id, "related_id": other, "relation": relation, "found_at": now}
        for other, relation in related.items()
        if other != ioc_id
    ]
    upsert(connection, related_iocs, rows, keys=["ioc_id", "related_id", "relation"])


def related_of(connection: Connection, ioc_id: int) -> list[dict[str, str]]:
    """The IoCs related to ``ioc_id``, either way round."""
    out: list[dict[str, str]] = []
    for mine, other in (
        (related_iocs.c.ioc_id, related_iocs.c.related_id),
        (related_iocs.c.related_id, related_iocs.c.ioc_id),
    ):
        rows = connection.execute(
            select(iocs.c.type, iocs.c.value, related_iocs.c.relation)
            .join(iocs, iocs.c.id == other)
            .where(mine == ioc_id)
            .order_by(iocs.c.value)
        ).all()
        out.extend({"type": t, "value": v, "relation": r} for t, v, r in rows)
    return out
