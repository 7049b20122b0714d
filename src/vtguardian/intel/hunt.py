"""Retro-hunting: which devices talked to an IoC, or to anything under a domain, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, or_, select

from vtguardian.clock import as_naive_utc, utcnow
from vtguardian.errors import InvalidInput
from vtguardian.iocs import Classifier, IocType
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
            "first_seen": self.first_seen.isoformat() + "Z",
            "last_seen": self.last_seen.isoformat() + "Z",
            "hits": self.hits,
            "iocs": self.iocs,
        }


def hunt(engine: Engine, value: str, days: float = 30.0) -> list[Contact]:
    """Clients that contacted ``value`` (a domain also matches its subdomains and URLs)."""
    # Hunting is local: even private or allowlisted values may be searched for.
    result = Classifier(local_suffixes=()).classify(value)
    if result.type is None or result.value is None:
        raise InvalidInput(f"cannot hunt for {value!r}: {result.reason}")
    if result.type is IocType.DOMAIN:
        name = result.value
        condition = or_(
            iocs.c.value == name,
            iocs.c.value.like(f"%.{_escape(name)}", escape="\\"),
            iocs.c.registered_domain == name,
        )
    else:
        condition = (iocs.c.type == result.type.value) & (iocs.c.value == result.value)
    since = utcnow() - timedelta(days=days)
    query = (
        select(
            clients.c.ip,
            clients.c.name,
            func.min(sightings.c.hour),
            func.max(sightings.c.last_seen),
            func.sum(sightings.c.hits),
            func.count(func.distinct(sightings.c.ioc_id)),
        )
        .join(iocs, iocs.c.id == sightings.c.ioc_id)
        .join(clients, clients.c.id == sightings.c.client_id)
        .where(condition, sightings.c.hour >= since - timedelta(hours=1))
        .group_by(clients.c.ip, clients.c.name)
        .order_by(func.sum(sightings.c.hits).desc(), clients.c.ip)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        Contact(ip or "(unknown)", name, as_naive_utc(first), as_naive_utc(last), int(hits), n)
        for ip, name, first, last, hits, n in rows
    ]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
