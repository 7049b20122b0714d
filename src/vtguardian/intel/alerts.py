"""Alerts: an IoC the network talked to turned malicious or suspicious.

One alert per flip (the ``verdict_history`` row that recorded it), with the
clients that contacted the IoC and when, created in the same transaction as
the verdict so a crash cannot lose or double it. Delivery to a webhook (n8n,
ntfy, Home Assistant, anything that takes a JSON POST) is separate and
retried with backoff until it succeeds or the attempts run out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import Connection, Engine, or_, select, update
from sqlalchemy.exc import DBAPIError

from vtguardian.clock import iso_z, utcnow
from vtguardian.intel.alert_context import alert_context
from vtguardian.retry import backoff_seconds, retrying_async
from vtguardian.store.contacts import Contact, client_contacts
from vtguardian.store.engine import is_disconnect, run_in_transaction
from vtguardian.store.entities import find_ioc_ids
from vtguardian.store.schema import alerts, iocs, sightings, verdicts
from vtguardian.store.upsert import upsert

#: How long a sent alert's record waits for a database that went away before it gives up.
RECORD_PATIENCE_SECONDS = 300.0

ALERT_LEVELS = ("malicious", "suspicious")


def create_alert(
    connection: Connection,
    ioc_id: int,
    previous: str | None,
    history_id: int,
    now: datetime,
) -> bool:
    """Record an alert for a flip if any client contacted the IoC; True when one was made."""
    verdict = connection.execute(
        select(verdicts.c.verdict, verdicts.c.ratio, verdicts.c.engines).where(
            verdicts.c.ioc_id == ioc_id
        )
    ).one()
    if verdict.verdict not in ALERT_LEVELS:
        return False
    contacts = sorted(client_contacts(connection, sightings.c.ioc_id == ioc_id), key=_by_ip)
    if not contacts:
        return False
    first = min(c.first_seen for c in contacts)
    last = max(c.last_seen for c in contacts)
    upsert(
        connection,
        alerts,
        [
            {
                "created_at": now,
                "ioc_id": ioc_id,
                "verdict": verdict.verdict,
                "previous_verdict": previous,
                "ratio": verdict.ratio,
                "engines": list(verdict.engines or []),
                "clients": [
                    {
                        "ip": c.client,
                        "name": c.name,
                        "hits": c.hits,
                        "first_seen": iso_z(c.first_seen),
                        "last_seen": iso_z(c.last_seen),
                    }
                    for c in contacts
                ],
                "first_seen": first,
                "last_seen": last,
                "flip_key": f"{ioc_id}:{verdict.verdict}:{history_id}",
                "delivery_attempts": 0,
                "next_attempt_at": now,
            }
        ],
        keys=["flip_key"],
    )
    return True


HELD = "held"


def hold_alerts(engine: Engine, kind: str, values: list[str], now: datetime) -> None:
    """An alert per value the circuit breaker held back ("held": a block waiting for
    review), at most one per value and day, delivered like every other alert."""
    if not values:
        return

    def work(connection: Connection) -> None:
        ids = find_ioc_ids(connection, [(kind, v) for v in values])
        rows = []
        for ioc_id in ids.values():
            verdict = connection.execute(
                select(verdicts.c.ratio, verdicts.c.engines).where(verdicts.c.ioc_id == ioc_id)
            ).first()
            rows.append(
                {
                    "created_at": now,
                    "ioc_id": ioc_id,
                    "verdict": HELD,
                    "previous_verdict": "malicious",
                    "ratio": verdict.ratio if verdict else None,
                    "engines": list(verdict.engines or []) if verdict else [],
                    "clients": [],
                    "flip_key": f"{ioc_id}:{HELD}:{now:%Y-%m-%d}",
                    "delivery_attempts": 0,
                    "next_attempt_at": now,
                }
            )
        upsert(connection, alerts, rows, keys=["flip_key"])

    run_in_transaction(engine, work)


def _by_ip(contact: Contact) -> str:
    return contact.client


@dataclass
class Delivery:
    delivered: int = 0
    failed: int = 0


def alert_payload(row: Any) -> dict[str, Any]:
    """The JSON a webhook receives: everything needed to act without opening vtguardian."""
    return {
        "id": row.id,
        "created_at": iso_z(row.created_at),
        "ioc": {"type": row.type, "value": row.value},
        "verdict": row.verdict,
        "previous_verdict": row.previous_verdict,
        "ratio": row.ratio,
        "engines": row.engines,
        "clients": row.clients,
        "first_seen": iso_z(row.first_seen),
        "last_seen": iso_z(row.last_seen),
        "source": "vtguardian",
    }


async def deliver_pending(
    engine: Engine,
    webhook_url: str,
    max_attempts: int = 8,
    timeout: float = 10.0,
    now: datetime | None = None,
) -> Delivery:
    """POST every alert that is due; a failure is retried later (1, 2, 4 ... 60 min)."""
    now = now or utcnow()
    with engine.connect() as connection:
        due = connection.execute(
            select(alerts, iocs.c.type, iocs.c.value)
            .join(iocs, iocs.c.id == alerts.c.ioc_id)
            .where(
                alerts.c.delivered_at.is_(None),
                alerts.c.delivery_attempts < max_attempts,
                or_(alerts.c.next_attempt_at.is_(None), alerts.c.next_attempt_at <= now),
            )
            .order_by(alerts.c.id)
            .limit(100)
        ).all()
    result = Delivery()
    if not due:
        return result
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for row in due:
            payload = {**alert_payload(row), **alert_context(engine, row.ioc_id)}
            error = await _post(session, webhook_url, payload)
            values: dict[str, Any]
            if error is None:
                result.delivered += 1
                values = {"delivered_at": utcnow(), "last_error": None}
            else:
                result.failed += 1
                delay = backoff_seconds(row.delivery_attempts, base=60.0, cap=3600.0)
                values = {
                    "last_error": error[:255],
                    "next_attempt_at": now + timedelta(seconds=delay),
                }
            values["delivery_attempts"] = row.delivery_attempts + 1

            await _record(engine, row.id, values)
    return result


async def _record(engine: Engine, alert_id: int, changes: dict[str, Any]) -> None:
    """Write down a delivery attempt, waiting out a database restart: the POST went out,
    and if its record were lost the alert would be sent again once the database is back.
    Repeating the update is harmless (it sets the same values on one row)."""

    def work(connection: Connection) -> None:
        connection.execute(update(alerts).where(alerts.c.id == alert_id).values(**changes))

    async for attempt in retrying_async(
        lambda exc: isinstance(exc, DBAPIError) and is_disconnect(exc),
        base=0.5,
        cap=5.0,
        within=RECORD_PATIENCE_SECONDS,
    ):
        with attempt:
            run_in_transaction(engine, work)


async def _post(session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> str | None:
    try:
        async with session.post(url, json=payload) as response:
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
