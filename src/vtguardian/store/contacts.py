"""Which clients contacted which IoCs: the question behind alerts and retro-hunts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from vtguardian.clock import as_naive_utc, iso_z
from vtguardian.store.schema import clients, iocs, sightings


@dataclass(frozen=True)
class Contact:
    client: str
    name: str | None
    first_seen: datetime
    last_seen: datetime
    hits: int
    iocs: int

    def as_dict(self) -> dict[str, object]:
        return {
            "client": self.client,
            "name": self.name,
            "first_seen": iso_z(self.first_seen),
            "last_seen": iso_z(self.last_seen),
            "hits": self.hits,
            "iocs": self.iocs,
        }


def client_contacts(connection: Connection, *conditions: Any) -> list[Contact]:
    """Clients with sightings of the IoCs matching ``conditions`` (on iocs/sightings),
    busiest first."""
    hits = func.sum(sightings.c.hits)
    rows = connection.execute(
        select(
            clients.c.ip,
            clients.c.name,
            func.min(sightings.c.first_seen),
            func.max(sightings.c.last_seen),
            hits,
            func.count(func.distinct(sightings.c.ioc_id)),
        )
        .join(iocs, iocs.c.id == sightings.c.ioc_id)
        .join(clients, clients.c.id == sightings.c.client_id)
        .where(*conditions)
        .group_by(clients.c.ip, clients.c.name)
        .order_by(hits.desc(), clients.c.ip)
    ).all()
    return [
        Contact(ip or "(unknown)", name, as_naive_utc(first), as_naive_utc(last), int(n), count)
        for ip, name, first, last, n, count in rows
    ]
