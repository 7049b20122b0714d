"""Turning a parsed batch into the rows one transaction stores, without a database.

Everything here is pure Python over the batch: each distinct raw value is
classified once, hourly counts are merged per IoC, and the rows for the IoC,
client, sighting, queue and alert tables are laid out. Because none of it needs
the database, a large ingest does it in the parser processes, and the process
that owns the database connection only writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

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
from vtguardian.tally import Tally, add_to

IocKey = tuple[str, str]  # IoC type, normalised value


class CountRow(NamedTuple):
    """One device's counts of one IoC in one hour (``sightings``) or one UTC day
    (``client_days``, what ``ioc_days`` adds up). Dates are naive UTC text."""

    ioc: IocKey
    client: str
    when: str  # the hour's or the day's start
    hits: int
    blocked: int
    last: str
    first: str


class ResolutionRow(NamedTuple):
    """One device's answers linking a name to an address or CNAME target in one hour
    (``resolutions``). Dates are naive UTC text."""

    name: IocKey
    answer: IocKey
    client: str
    hour: str
    hits: int
    last: str
    first: str


class ConnectionRow(NamedTuple):
    """One device's connections to one public address in one hour (``connections``)."""

    address: str
    client: str
    hour: str
    hits: int
    last: str
    first: str


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
    #: per IoC, client and hour
    sightings: list[CountRow] = field(default_factory=list)
    #: the same counts per IoC, client and day
    client_days: list[CountRow] = field(default_factory=list)
    #: client address -> (name, first seen, last seen)
    clients: dict[str, tuple[str | None, datetime, datetime]] = field(default_factory=dict)
    #: ioc -> (distinct clients, hits) for the lookup queue
    queue: dict[IocKey, tuple[int, int]] = field(default_factory=dict)
    alerted: set[IocKey] = field(default_factory=set)
    #: the DNS answers, per name, answer, client and hour
    resolutions: list[ResolutionRow] = field(default_factory=list)
    #: the connections to public addresses, per address, client and hour
    connections: list[ConnectionRow] = field(default_factory=list)
    #: alert row without its ids, the client address and the IoC it names
    alerts: list[tuple[dict[str, Any], str, IocKey | None]] = field(default_factory=list)
    errors: list[BadInput] = field(default_factory=list)


class Ready(NamedTuple):
    """A prepared batch, where the file is read up to after it, and the parser's
    state there: what is stored together, with the checkpoint."""

    prepared: Prepared
    position: int
    state: Any


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
    # (ioc, client, UTC hour prefix) -> its tally: raw values that name the same IoC
    # (``Example.COM.`` and ``example.com``) merge here. Stamps become text only once
    # merged, one per row.
    merged: dict[tuple[IocKey, str, str], Tally] = {}
    # ioc -> [first stamp, its hour prefix, last stamp, its hour prefix]
    spans: dict[IocKey, list[Any]] = {}
    # ioc -> [distinct clients, hits]: what the lookup queue ranks by
    asked: dict[IocKey, list[Any]] = {}
    latest: dict[str, Stamp] = {}  # client -> its last stamp
    earliest: dict[str, Stamp] = {}  # client -> its first stamp
    registered: dict[IocKey, str | None] = {}
    devices: dict[str, str] = {}  # client as logged -> its address, or "" (unknown)
    eligible = invalid = skipped = 0
    for (kind, raw, client, hour), tally in batch.counts.items():
        hits, blocked, last, first = tally.hits, tally.blocked, tally.last, tally.first
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
        add_to(merged, key, hits, blocked, last, first)
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
    if batch.resolutions:
        _lay_out_resolutions(out, batch, classifier, devices, prefixes, names)
    if batch.connections:
        _lay_out_connections(out, batch, classifier, devices, prefixes, names)
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
        yield Ready(prepared, position, state)
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


# Why a value that is not looked up may still be kept as a resolution's end: an
# allowlisted name or network is exactly what tells a shared server from a C2 host.
_KEPT_ENDS = ("allowlisted",)


def _lay_out_resolutions(
    out: Prepared,
    batch: Batch,
    classifier: Classifier,
    devices: dict[str, str],
    prefixes: dict[HourKey, str],
    names: dict[str, str],
) -> None:
    """The batch's DNS answers as rows; a link with a private, local or invalid end is
    left out (nothing to look up or block), an allowlisted end is kept. A name or
    target seen only in answers becomes an IoC row without being queued."""
    ends: dict[tuple[str, str], IocKey | None] = {}
    merged: dict[tuple[IocKey, IocKey, str, str], Tally] = {}
    spans: dict[IocKey, list[Any]] = {}
    for (name, kind, answer, client, hour), tally in batch.resolutions.items():
        owner = ends.get(("domain", name), _UNSEEN)
        if owner is _UNSEEN:
            owner = ends["domain", name] = _end(classifier, "domain", name)
        target = ends.get((kind, answer), _UNSEEN)
        if target is _UNSEEN:
            target = ends[kind, answer] = _end(classifier, kind, answer)
        if owner is None or target is None:
            continue
        prefix, device = _placed(prefixes, devices, hour, client)
        add_to(merged, (owner, target, device, prefix), tally.hits, 0, tally.last, tally.first)  # type: ignore[arg-type]
        for ioc in (owner, target):
            span = spans.get(ioc)  # type: ignore[arg-type]
            if span is None:
                spans[ioc] = [tally.first, prefix, tally.last, prefix]  # type: ignore[index]
            else:
                if tally.first < span[0]:
                    span[0], span[1] = tally.first, prefix
                if tally.last > span[2]:
                    span[2], span[3] = tally.last, prefix
    rows = out.resolutions
    for (owner, target, device, prefix), tally in merged.items():
        rows.append(
            ResolutionRow(
                owner,
                target,
                device,
                hour_text(prefix),
                tally.hits,
                stamp_text(tally.last, prefix),
                stamp_text(tally.first, prefix),
            )
        )
        _note_device(out, names, device, tally)
    for ioc, (first, since, last, until) in spans.items():
        if ioc not in out.iocs:
            registered = classifier.classify_as(ioc[1], IocType(ioc[0])).registered_domain
            out.iocs[ioc] = (registered, stamp_text(first, since), stamp_text(last, until))


_UNSEEN: Any = object()


def _lay_out_connections(
    out: Prepared,
    batch: Batch,
    classifier: Classifier,
    devices: dict[str, str],
    prefixes: dict[HourKey, str],
    names: dict[str, str],
) -> None:
    """The batch's connections to public addresses as rows (private, allowlisted and
    invalid addresses are left out: nothing to tell about them)."""
    addresses: dict[str, str | None] = {}
    merged: dict[tuple[str, str, str], Tally] = {}
    for (raw, client, hour), tally in batch.connections.items():
        address = addresses.get(raw, _UNSEEN)
        if address is _UNSEEN:
            result = classifier.classify_as(raw, IocType.IP)
            address = addresses[raw] = result.value if result.eligible else None
        if address is None:
            continue
        prefix, device = _placed(prefixes, devices, hour, client)
        add_to(merged, (address, device, prefix), tally.hits, 0, tally.last, tally.first)
    rows = out.connections
    for (address, device, prefix), tally in merged.items():
        rows.append(
            ConnectionRow(
                address,
                device,
                hour_text(prefix),
                tally.hits,
                stamp_text(tally.last, prefix),
                stamp_text(tally.first, prefix),
            )
        )
        _note_device(out, names, device, tally)


def _placed(
    prefixes: dict[HourKey, str], devices: dict[str, str], hour: HourKey, client: str
) -> tuple[str, str]:
    """The hour's text prefix and the device's address, each worked out once a batch."""
    prefix = prefixes.get(hour)
    if prefix is None:
        prefix = prefixes[hour] = utc_hour_text(hour)
    device = devices.get(client)
    if device is None:
        device = devices[client] = client_address(client)
    return prefix, device


def _note_device(out: Prepared, names: dict[str, str], device: str, tally: Tally) -> None:
    """A device the batch's other rows did not name, with the times of this row."""
    if device not in out.clients:
        first, last = stamp_datetime(tally.first), stamp_datetime(tally.last)
        out.clients[device] = (names.get(device), first, last)


def _end(classifier: Classifier, kind: str, raw: str) -> IocKey | None:
    """The IoC a resolution's name or answer is, or None when it is left out."""
    result = classifier.classify_as(raw, IocType(kind))
    if result.type is None or result.value is None or result.type.value != kind:
        return None
    if not result.eligible and result.reason not in _KEPT_ENDS:
        return None
    return (kind, result.value)


def _lay_out_rows(
    out: Prepared, merged: dict[tuple[IocKey, str, str], Tally], prefixes: set[str]
) -> None:
    """Hourly rows, and the same counts summed per client and UTC day, dates as text:
    hours and days recur, so each is made once."""
    texts = {prefix: (hour_text(prefix), day_text(prefix)) for prefix in prefixes}
    rows = []
    days: dict[tuple[IocKey, str, str], Tally] = {}
    for (ioc, client, prefix), tally in merged.items():
        hour, day = texts[prefix]
        last, first = stamp_text(tally.last, prefix), stamp_text(tally.first, prefix)
        rows.append(CountRow(ioc, client, hour, tally.hits, tally.blocked, last, first))
        add_to(days, (ioc, client, day), tally.hits, tally.blocked, last, first)
    out.sightings = rows
    out.client_days = count_rows(days)


def count_rows(counts: dict[tuple[IocKey, str, str], Tally]) -> list[CountRow]:
    """The tallies per (IoC, client, hour or day) as rows."""
    return [
        CountRow(ioc, client, when, tally.hits, tally.blocked, tally.last, tally.first)
        for (ioc, client, when), tally in counts.items()
    ]
