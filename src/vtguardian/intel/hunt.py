"""Retro-hunting: which devices talked to an IoC, or to anything under a domain, and when."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, or_

from vtguardian.clock import utcnow
from vtguardian.errors import InvalidInput
from vtguardian.iocs import Classifier, IocType
from vtguardian.store.contacts import Contact, client_contacts
from vtguardian.store.resolutions import ioc_id as resolution_ioc
from vtguardian.store.resolutions import pivots
from vtguardian.store.schema import iocs, sightings

__all__ = ["Contact", "hunt", "pivot"]


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
    since = utcnow() - timedelta(days=days, hours=1)
    with engine.connect() as connection:
        return client_contacts(connection, condition, sightings.c.hour >= since)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def pivot(engine: Engine, value: str, days: float = 30.0) -> dict[str, Any]:
    """The network's own passive DNS on ``value``: a domain's addresses here and the
    other domains on them, or the domains that resolved to an address
    (:func:`vtguardian.store.resolutions.pivots`); empty for anything else."""
    result = Classifier(local_suffixes=()).classify(value)
    if result.type not in (IocType.DOMAIN, IocType.IP) or result.value is None:
        return {}
    since = utcnow() - timedelta(days=days, hours=1)
    with engine.connect() as connection:
        ioc_id = resolution_ioc(connection, result.type.value, result.value)
        if ioc_id is None:
            return {}
        return pivots(connection, result.type.value, ioc_id, since)
