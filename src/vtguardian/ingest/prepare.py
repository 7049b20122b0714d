"""Turning a parsed batch into the rows one transaction stores, without a database.

Everything here is pure Python over the batch: each distinct raw value is
classified once, hourly counts are merged per IoC, and the rows for the IoC,
client, sighting, queue and alert tables are laid out. Because none of it needs
the database, a large ingest does it in the parser processes, and the process
that owns the database connection only writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vtguardian.ingest.lines import Parsed
from vtguardian.iocs import Classifier, InvalidIoc, IocType, normalise_ip
from vtguardian.sources.batch import BadInput, Batch
from vtguardian.sources.timeparse import (
    HourKey,
    Stamp,
    day_text,
    hour_text,
    stamp_datetime,
    stamp_text,
    utc_hour_text,
)

IocKey = tuple[str, str]  # IoC type, normalised value


@dataclass(slots=True)
class Prepared:
    """A batch as rows keyed by IoC and client address; ids are added when stored.

    Dates in ``iocs``, ``sightings`` and ``client_days`` are naive UTC text, as
    SQLite stores them and MySQL reads them (see :func:`timeparse.stamp_text`):
    neither the worker nor the writer builds a datetime per row.
    """

    source: str
    lines: int = 0
    events: int = 0
    skipped: int = 0
    invalid: int = 0
    hits: int = 0
    #: ioc -> (registered domain, first seen, last seen) within the batch
    iocs: dict[IocKey, tuple[str | None, str, str]] = field(default_factory=dict)
    #: (ioc, client, hour, hits, blocked, last seen, first seen)
    sightings: list[tuple[IocKey, str, str, int, int, str, str]] = field(default_factory=list)
    #: (ioc, client, day, hits, blocked, last seen): the same counts per day
    client_days: list[tuple[IocKey, str, str, int, int, str]] = field(default_factory=list)
    #: client address -> (name, first seen, last seen)
    clients: dict[str, tuple[str | None, datetime, datetime]] = field(default_factory=dict)
    #: ioc -> (distinct clients, hits) for the lookup queue
    queue: dict[IocKey, tuple[int, int]] = field(default_factory=dict)
    alerted: set[IocKey] = field(default_factory=set)
    #: alert row without its ids, the client address and the IoC it names
    alerts: list[tuple[dict[str, Any], str, IocKey | None]] = field(default_factory=list)
    errors: list[BadInput] = field(default_factory=list)


Ready = tuple[Prepared, int, Any]  # a prepared batch, the position after it, the parser state

# What a raw value resolves to when it is not an eligible IoC.
_INVALID, _SKIPPED = "invalid", "skipped"


def prepare(batch: Batch, classifier: Classifier) -> Prepared:
    """Classify and merge ``batch``; private and invalid values are only counted.

    One pass over the batch's counts gathers everything keyed by IoC or client
    (merged hours, first and last stamps, askers, each client's latest stamp) and
    one over the merged hours lays out the rows: with a hundred thousand keys a
    batch, every extra pass over them costs more than the work it does.
    """
    out = Prepared(batch.source, lines=batch.lines, events=batch.events, errors=batch.errors)
    resolved: dict[tuple[str, str], IocKey | str] = {}
    prefixes: dict[HourKey, str] = {}
    # (ioc, client, UTC hour prefix) -> [hits, blocked, last, first stamp]: raw values that
    # name the same IoC (``Example.COM.`` and ``example.com``) merge here. Stamps
    # become text only once merged, one per row.
    merged: dict[tuple[IocKey, str, str], list[Any]] = {}
    # ioc -> [first stamp, its hour prefix, last stamp, its hour prefix]
    spans: dict[IocKey, list[Any]] = {}
    # ioc -> [distinct clients, hits]: what the lookup queue ranks by
    asked: dict[IocKey, list[Any]] = {}
    latest: dict[str, Stamp] = {}  # client -> its last stamp
    earliest: dict[str, Stamp] = {}  # client -> its first stamp
    registered: dict[IocKey, str | None] = {}
    devices: dict[str, str] = {}  # client as logged -> its address, or "" (unknown)
    eligible = invalid = skipped = 0
    for (kind, raw, client, hour), (hits, blocked, last, first) in batch.counts.items():
        ioc = resolved.get((kind, raw))
        if ioc is None:
            ioc = resolved[(kind, raw)] = _resolve(classifier, kind, raw, registered)
        if ioc.__class__ is str:
            if ioc is _INVALID:
                invalid += hits
            else:
                skipped += hits
            continue
        eligible += hits
        prefix = prefixes.get(hour)
        if prefix is None:
            prefix = prefixes[hour] = utc_hour_text(hour)
        device = devices.get(client)
        if device is None:
            device = devices[client] = client_address(client)
        client = device
        key = (ioc, client, prefix)
        entry = merged.get(key)
        if entry is None:
            merged[key] = [hits, blocked, last, first]
        else:
            entry[0] += hits
            entry[1] += blocked
            if last > entry[2]:
                entry[2] = last
            if first < entry[3]:
                entry[3] = first
        span = spans.get(ioc)
        if span is None:
            spans[ioc] = [first, prefix, last, prefix]
            asked[ioc] = [{client}, hits]
        else:
            if first < span[0]:
                span[0], span[1] = first, prefix
            if last > span[2]:
                span[2], span[3] = last, prefix
            who = asked[ioc]
            who[0].add(client)
            who[1] += hits
        seen = latest.get(client)
        if seen is None:
            latest[client], earliest[client] = last, first
        else:
            if last > seen:
                latest[client] = last
            if first < earliest[client]:
                earliest[client] = first
    out.hits, out.invalid, out.skipped = eligible, invalid, skipped
    out.iocs = {
        ioc: (registered[ioc], stamp_text(first, since), stamp_text(last, until))
        for ioc, (first, since, last, until) in spans.items()
    }
    _lay_out_rows(out, merged, set(prefixes.values()))
    names = {client_address(client): name for client, name in batch.client_names.items()}
    out.clients = {
        client: (names.get(client), stamp_datetime(earliest[client]), stamp_datetime(ts))
        for client, ts in latest.items()
    }
    out.queue = {ioc: (len(who), hits) for ioc, (who, hits) in asked.items()}
    out.alerted = {ioc for k in batch.alerted if (ioc := resolved.get(k)).__class__ is tuple}  # type: ignore[misc]
    for alert in batch.alerts:
        row = {
            "ts": stamp_datetime(alert.ts),
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
        ioc = resolved.get((alert.ioc_kind, alert.ioc_raw or ""))
        device = client_address(alert.client)
        out.alerts.append((row, device, ioc if ioc.__class__ is tuple else None))  # type: ignore[arg-type]
        if device not in out.clients:
            out.clients[device] = (names.get(device), row["ts"], row["ts"])
    return out


def client_address(client: str) -> str:
    """A device as stored: its address, normalised (``::ffff:192.168.1.5`` is
    192.168.1.5, a zone id is dropped), or "" when the log gave no address.

    A device is shown everywhere and offered as a Grafana variable, whose quoting
    does not escape backslashes: only an address is ever stored as one.
    """
    if not client:
        return ""
    try:
        return normalise_ip(client).compressed
    except InvalidIoc:
        return ""


def prepared_batches(batches: Iterable[Parsed], classifier: Classifier) -> Iterator[Ready]:
    """Each parsed batch prepared, with the position and parser state after it.

    A batch and the rows prepared from it are dropped together when the caller
    asks for the next one, before it is parsed: objects made together then go
    together, and the memory arenas they filled are free for the next batch.
    Keeping the batch until the next was parsed, or dropping it alone before its
    rows, raised the peak memory of a parse from 79 to 88 MB (1M-event eve.json,
    batches of 400,000 lines). The caller drops its prepared batch first.
    """
    for batch, position, state in batches:
        prepared = prepare(batch, classifier)
        yield prepared, position, state
        del batch, prepared


def _resolve(
    classifier: Classifier, kind: str, raw: str, registered: dict[IocKey, str | None]
) -> IocKey | str:
    """The IoC a raw value names, or why it names none."""
    result = classifier.classify_as(raw, IocType(kind)) if kind else classifier.classify(raw)
    if result.type is None or result.value is None:
        return _INVALID
    if not result.eligible:
        return _SKIPPED
    ioc = (result.type.value, result.value)
    registered[ioc] = result.registered_domain
    return ioc


def _lay_out_rows(
    out: Prepared, merged: dict[tuple[IocKey, str, str], list[Any]], prefixes: set[str]
) -> None:
    """Hourly rows, and the same counts summed per client and UTC day (what
    ``ioc_days`` adds up), dates as text: hours and days recur, so each is made once."""
    texts = {prefix: (hour_text(prefix), day_text(prefix)) for prefix in prefixes}
    rows = []
    days: dict[tuple[IocKey, str, str], list[Any]] = {}
    for (ioc, client, prefix), (hits, blocked, last, first) in merged.items():
        hour, day = texts[prefix]
        when = stamp_text(last, prefix)
        rows.append((ioc, client, hour, hits, blocked, when, stamp_text(first, prefix)))
        entry = days.get((ioc, client, day))
        if entry is None:
            days[(ioc, client, day)] = [hits, blocked, when]
        else:
            entry[0] += hits
            entry[1] += blocked
            if when > entry[2]:  # UTC texts compare as their moments do
                entry[2] = when
    out.sightings = rows
    out.client_days = [(*key, hits, blocked, when) for key, (hits, blocked, when) in days.items()]


def merge(parts: Sequence[Prepared]) -> Prepared:
    """Consecutive batches of one source as one batch that stores exactly what they
    store one after the other.

    When the storing process falls behind its parsers, it takes every batch that
    is waiting in one transaction: an IoC, a client's day of it or a queue entry
    that recurs in those batches is then written once instead of once per batch,
    which on MariaDB is most of the server's work after the hourly rows. Counts
    add up, first and last stamps widen, a later client name replaces an earlier
    one and a queue entry keeps its largest client count, as the upserts would.
    """
    if len(parts) == 1:
        return parts[0]
    out = Prepared(parts[0].source)
    hourly: dict[tuple[IocKey, str, str], list[Any]] = {}
    daily: dict[tuple[IocKey, str, str], list[Any]] = {}
    queue: dict[IocKey, tuple[int, int]] = {}
    for part in parts:
        out.lines += part.lines
        out.events += part.events
        out.skipped += part.skipped
        out.invalid += part.invalid
        out.hits += part.hits
        for ioc, span in part.iocs.items():
            known = out.iocs.get(ioc)
            out.iocs[ioc] = (
                span
                if known is None
                else (known[0], min(known[1], span[1]), max(known[2], span[2]))
            )
        _add_counts(hourly, part.sightings)
        _add_counts(daily, part.client_days)
        for client, (name, first, last) in part.clients.items():
            known_client = out.clients.get(client)
            out.clients[client] = (
                (name, first, last)
                if known_client is None
                else (
                    name or known_client[0],
                    min(known_client[1], first),
                    max(known_client[2], last),
                )
            )
        for ioc, (clients, hits) in part.queue.items():
            queued = queue.get(ioc)
            queue[ioc] = (
                (clients, hits) if queued is None else (max(queued[0], clients), queued[1] + hits)
            )
        out.alerted |= part.alerted
        out.alerts += part.alerts
        out.errors += part.errors
    out.sightings = [(*key, *counts) for key, counts in hourly.items()]
    out.client_days = [(*key, *counts) for key, counts in daily.items()]
    out.queue = queue
    return out


def _add_counts(
    into: dict[tuple[IocKey, str, str], list[Any]],
    rows: list[tuple[Any, ...]],
) -> None:
    """Sum ``(ioc, client, hour or day, hits, blocked, last seen[, first seen])`` rows
    per key: the latest last and the earliest first stamp."""
    for ioc, client, when, hits, blocked, last, *first in rows:
        key = (ioc, client, when)
        entry = into.get(key)
        if entry is None:
            into[key] = [hits, blocked, last, *first]
        else:
            entry[0] += hits
            entry[1] += blocked
            if last > entry[2]:  # UTC texts compare as their moments do
                entry[2] = last
            if first and first[0] < entry[3]:
                entry[3] = first[0]
