"""Turning a parsed batch into the rows one transaction stores, without a database.

Everything here is pure Python over the batch: each distinct raw value is
classified once, hourly counts are merged per IoC, and the rows for the IoC,
client, sighting, queue and alert tables are laid out. Because none of it needs
the database, a large ingest does it in the parser processes, and the process
that owns the database connection only writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vtguardian.iocs import Classifier, IocType
from vtguardian.sources.batch import BadInput, Batch
from vtguardian.sources.timeparse import HourKey, hour_epoch, stamp_epoch, to_datetime
from vtguardian.store.sightings import client_days

IocKey = tuple[str, str]  # IoC type, normalised value


@dataclass(slots=True)
class Prepared:
    """A batch as rows keyed by IoC and client address; ids are added when stored.

    Dates in ``iocs``, ``sightings`` and ``client_days`` are ready for the database: SQLite's
    stored text when the batch was prepared for SQLite, datetimes otherwise.
    """

    source: str
    lines: int = 0
    events: int = 0
    skipped: int = 0
    invalid: int = 0
    hits: int = 0
    #: ioc -> (registered domain, first seen, last seen) within the batch
    iocs: dict[IocKey, tuple[str | None, Any, Any]] = field(default_factory=dict)
    #: (ioc, client, hour, hits, blocked, last seen)
    sightings: list[tuple[IocKey, str, Any, int, int, Any]] = field(default_factory=list)
    #: (ioc, client, day, hits, blocked, last seen): the same counts per day
    client_days: list[tuple[IocKey, str, Any, int, int, Any]] = field(default_factory=list)
    #: client address -> (name, last seen)
    clients: dict[str, tuple[str | None, datetime]] = field(default_factory=dict)
    #: ioc -> (distinct clients, hits) for the lookup queue
    queue: dict[IocKey, tuple[int, int]] = field(default_factory=dict)
    alerted: set[IocKey] = field(default_factory=set)
    #: alert row without its ids, the client address and the IoC it names
    alerts: list[tuple[dict[str, Any], str, IocKey | None]] = field(default_factory=list)
    errors: list[BadInput] = field(default_factory=list)


def prepare(batch: Batch, classifier: Classifier, text_dates: bool = False) -> Prepared:
    """Classify and merge ``batch``; private and invalid values are only counted.

    ``text_dates`` lays dates out as SQLite stores them, so the process that
    writes does not have to convert them.
    """
    out = Prepared(batch.source, lines=batch.lines, events=batch.events, errors=batch.errors)
    resolved: dict[tuple[str, str], IocKey | None] = {}
    invalid_values: set[tuple[str, str]] = set()
    hours: dict[HourKey, datetime] = {}
    merged: dict[tuple[IocKey, str, datetime], list[Any]] = {}
    spans: dict[IocKey, list[datetime]] = {}
    registered: dict[IocKey, str | None] = {}
    for (kind, raw, client, hour), (hits, blocked, last) in batch.counts.items():
        if (kind, raw) in resolved:
            ioc = resolved[(kind, raw)]
        else:
            result = (
                classifier.classify_as(raw, IocType(kind)) if kind else classifier.classify(raw)
            )
            ioc = None
            if result.type is None or result.value is None:
                invalid_values.add((kind, raw))
            elif result.eligible:
                ioc = (result.type.value, result.value)
                registered[ioc] = result.registered_domain
            resolved[(kind, raw)] = ioc
        if ioc is None:
            if (kind, raw) in invalid_values:
                out.invalid += hits
            else:
                out.skipped += hits
            continue
        out.hits += hits
        when = to_datetime(stamp_epoch(last))
        start = hours.get(hour)
        if start is None:
            start = hours[hour] = to_datetime(hour_epoch(hour) * 3600)
        key = (ioc, client, start)
        entry = merged.get(key)
        if entry is None:
            merged[key] = [hits, blocked, when]
        else:
            entry[0] += hits
            entry[1] += blocked
            if when > entry[2]:
                entry[2] = when
        span = spans.get(ioc)
        if span is None:
            spans[ioc] = [when, when]
        elif when < span[0]:
            span[0] = when
        elif when > span[1]:
            span[1] = when
    as_db = _db_dates(text_dates)
    out.iocs = {
        ioc: (registered[ioc], as_db(span[0]), as_db(span[1])) for ioc, span in spans.items()
    }
    _lay_out_rows(out, merged, text_dates)
    _lay_out_clients_and_queue(out, merged, batch)
    out.alerted = {resolved.get(k) for k in batch.alerted} - {None}  # type: ignore[assignment]
    for alert in batch.alerts:
        row = {
            "ts": to_datetime(stamp_epoch(alert.ts)),
            "source": batch.source,
            "signature_id": alert.signature_id,
            "signature": (alert.signature or "")[:512] or None,
            "category": (alert.category or "")[:255] or None,
            "severity": alert.severity,
            "src_ip": alert.src_ip,
            "src_port": alert.src_port,
            "dest_ip": alert.dest_ip,
            "dest_port": alert.dest_port,
            "proto": alert.proto,
        }
        out.alerts.append((row, alert.client, resolved.get((alert.ioc_kind, alert.ioc_raw or ""))))
        if alert.client not in out.clients:
            out.clients[alert.client] = (batch.client_names.get(alert.client), row["ts"])
    return out


def _lay_out_rows(
    out: Prepared, merged: dict[tuple[IocKey, str, datetime], list[Any]], text_dates: bool
) -> None:
    """Hourly rows and per-day rows, with dates as the database takes them."""

    as_db = _db_dates(text_dates)
    buckets: dict[datetime, Any] = {}  # hours and days recur: converted once each

    def bucket(moment: datetime) -> Any:
        value = buckets.get(moment)
        if value is None:
            value = buckets[moment] = as_db(moment)
        return value

    out.sightings = [
        (ioc, client, bucket(hour), hits, blocked, as_db(when))
        for (ioc, client, hour), (hits, blocked, when) in merged.items()
    ]
    days = client_days(
        ((ioc, client), hour, hits, blocked, when)
        for (ioc, client, hour), (hits, blocked, when) in merged.items()
    )
    out.client_days = [
        (ioc, client, bucket(day), hits, blocked, as_db(when))
        for ((ioc, client), day), (hits, blocked, when) in days.items()
    ]


def _db_dates(text_dates: bool) -> Callable[[datetime], Any]:
    """Dates as the database takes them: SQLite's stored text, or datetimes."""
    if text_dates:
        return lambda moment: moment.isoformat(" ", "microseconds")
    return lambda moment: moment


def _lay_out_clients_and_queue(
    out: Prepared, merged: dict[tuple[IocKey, str, datetime], list[Any]], batch: Batch
) -> None:
    """Each client's latest sighting, and each IoC's distinct clients and hits."""
    clients: dict[str, datetime] = {}
    askers: dict[IocKey, set[str]] = {}
    hits: dict[IocKey, int] = {}
    for (ioc, client, _hour), (count, _blocked, when) in merged.items():
        previous = clients.get(client)
        if previous is None or when > previous:
            clients[client] = when
        who = askers.get(ioc)
        if who is None:
            askers[ioc] = {client}
            hits[ioc] = count
        else:
            who.add(client)
            hits[ioc] += count
    names = batch.client_names
    out.clients = {client: (names.get(client), when) for client, when in clients.items()}
    out.queue = {ioc: (len(askers[ioc]), count) for ioc, count in hits.items()}
