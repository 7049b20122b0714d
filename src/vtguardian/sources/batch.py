"""In-memory aggregation of observations, and the one transaction that stores them.

Parsers call :meth:`Batch.see` on the hot path with raw strings; nothing is
normalised or classified there. At :meth:`Batch.flush` each distinct raw value
is classified once, the hourly counts are merged per IoC, and sightings, new
IoCs, the lookup queue, IDS alerts, bad-input records and the source offset are
written in a single transaction: a crash at any point resumes exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from vtguardian.clock import utcnow
from vtguardian.intel import queue
from vtguardian.iocs import Classifier, IocType
from vtguardian.sources.timeparse import Stamp, hour_epoch, stamp_epoch, to_datetime
from vtguardian.store.engine import run_in_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs
from vtguardian.store.schema import ids_alerts, ingest_errors, verdicts
from vtguardian.store.sightings import add_sightings

# kind hint (or "" to detect), raw value, client, hour: Unix time // 3600, or for a
# Suricata stamp its text up to the hour followed by its zone (see timeparse.fast_stamp)
RawKey = tuple[str, str, str, int | str]


@dataclass(slots=True)
class IdsAlert:
    ts: Stamp
    signature_id: int | None
    signature: str | None
    category: str | None
    severity: int | None
    src_ip: str | None
    src_port: int | None
    dest_ip: str | None
    dest_port: int | None
    proto: str | None
    client: str
    ioc_kind: str
    ioc_raw: str | None


@dataclass(slots=True)
class BadInput:
    path: str
    position: int
    reason: str
    sample: str


@dataclass
class Totals:
    """The ``--json`` summary of an ingest run."""

    lines: int = 0
    events: int = 0
    iocs: int = 0
    sightings: int = 0
    skipped_private: int = 0
    invalid: int = 0
    errors: int = 0
    # Distinct IoCs of the whole run, so one seen in two batches counts once.
    seen: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k != "seen"}

    def add(self, other: Totals) -> None:
        for name, value in other.as_dict().items():
            setattr(self, name, getattr(self, name) + value)
        self.seen |= other.seen
        self.iocs = len(self.seen)


@dataclass
class Batch:
    source: str
    counts: dict[RawKey, list[Any]] = field(default_factory=dict)
    alerted: set[tuple[str, str]] = field(default_factory=set)
    alerts: list[IdsAlert] = field(default_factory=list)
    errors: list[BadInput] = field(default_factory=list)
    client_names: dict[str, str] = field(default_factory=dict)
    lines: int = 0
    events: int = 0

    def see(
        self, kind: str, raw: str, client: str, ts: Stamp, blocked: int = 0, hits: int = 1
    ) -> None:
        """One observation of ``raw`` by ``client`` at ``ts`` (Unix time or stamp text)."""
        hour = ts[:13] + ts[26:] if ts.__class__ is str else int(ts // 3600)  # type: ignore[index,operator]
        key = (kind, raw, client, hour)
        entry = self.counts.get(key)
        if entry is None:
            self.counts[key] = [hits, blocked, ts]
        else:
            entry[0] += hits
            entry[1] += blocked
            if ts > entry[2]:
                entry[2] = ts

    def alert(self, alert: IdsAlert) -> None:
        self.alerts.append(alert)
        if alert.ioc_raw:
            self.alerted.add((alert.ioc_kind, alert.ioc_raw))

    def bad(self, path: str, position: int, reason: str, line: bytes | str) -> None:
        raw = line if isinstance(line, bytes) else line.encode("utf-8", "replace")
        sample = repr(raw[:120])[2:-1][:255]
        self.errors.append(BadInput(path, position, reason[:255], sample))

    def __len__(self) -> int:
        return len(self.counts) + len(self.alerts) + len(self.errors)


Checkpoint = Callable[[Connection], None]


def flush(
    engine: Engine,
    batch: Batch,
    classifier: Classifier,
    totals: Totals,
    checkpoint: Checkpoint | None = None,
) -> None:
    """Store a batch and its checkpoint (source offset) atomically, then count it."""
    now = utcnow()
    merged: dict[tuple[tuple[str, str], str, datetime], list[Any]] = {}
    registered: dict[tuple[str, str], str | None] = {}
    first_last: dict[tuple[str, str], list[datetime]] = {}
    skipped = invalid = hits_total = 0
    resolved: dict[tuple[str, str], tuple[str, str] | None] = {}
    invalid_values: set[tuple[str, str]] = set()
    hours: dict[int | str, datetime] = {}
    for (kind, raw, client, hour), (hits, blocked, last) in batch.counts.items():
        if (kind, raw) not in resolved:
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
        ioc = resolved[(kind, raw)]
        if ioc is None:
            if (kind, raw) in invalid_values:
                invalid += hits
            else:
                skipped += hits
            continue
        hits_total += hits
        when = to_datetime(stamp_epoch(last))
        hour_start = hours.get(hour)
        if hour_start is None:
            hour_start = hours[hour] = to_datetime(hour_epoch(hour) * 3600)
        key = (ioc, client, hour_start)
        entry = merged.get(key)
        if entry is None:
            merged[key] = [hits, blocked, when]
        else:
            entry[0] += hits
            entry[1] += blocked
            entry[2] = max(entry[2], when)
        span = first_last.get(ioc)
        if span is None:
            first_last[ioc] = [when, when]
        else:
            span[0] = min(span[0], when)
            span[1] = max(span[1], when)
    alerted = {resolved.get(k) for k in batch.alerted} - {None}

    def work(connection: Connection) -> None:
        ioc_ids = ensure_iocs(
            connection,
            {ioc: (registered[ioc], span[0], span[1]) for ioc, span in first_last.items()},
        )
        seen_clients: dict[str, tuple[str | None, datetime]] = {}
        for (_ioc, client, _hour), (_h, _b, when) in merged.items():
            previous = seen_clients.get(client)
            if previous is None or when > previous[1]:
                seen_clients[client] = (batch.client_names.get(client), when)
        for alert in batch.alerts:
            seen_clients.setdefault(
                alert.client,
                (batch.client_names.get(alert.client), to_datetime(stamp_epoch(alert.ts))),
            )
        client_ids = ensure_clients(connection, seen_clients)
        add_sightings(
            connection,
            {
                (ioc_ids[ioc], client_ids[client], batch.source, hour): (hits, blocked, when)
                for (ioc, client, hour), (hits, blocked, when) in merged.items()
            },
        )
        _queue(connection, merged, ioc_ids, alerted, now)
        if batch.alerts:
            connection.execute(
                insert(ids_alerts),
                [_alert_row(a, batch.source, ioc_ids, client_ids, resolved) for a in batch.alerts],
            )
        if batch.errors:
            connection.execute(
                insert(ingest_errors),
                [
                    {
                        "source": batch.source,
                        "path": e.path[-1024:],
                        "position": e.position,
                        "reason": e.reason,
                        "sample": e.sample,
                        "created_at": now,
                    }
                    for e in batch.errors
                ],
            )
        if checkpoint is not None:
            checkpoint(connection)

    run_in_transaction(engine, work)
    totals.lines += batch.lines
    totals.events += batch.events
    totals.seen.update(first_last)
    totals.iocs = len(totals.seen)
    totals.sightings += hits_total
    totals.skipped_private += skipped
    totals.invalid += invalid
    totals.errors += len(batch.errors)


def _queue(
    connection: Connection,
    merged: dict[tuple[tuple[str, str], str, datetime], list[Any]],
    ioc_ids: dict[tuple[str, str], int],
    alerted: set[Any],
    now: datetime,
) -> None:
    """Queue every IoC of the batch without a fresh answer, alerted ones first."""
    clients: dict[int, set[str]] = {}
    hits: dict[int, int] = {}
    for (ioc, client, _hour), (count, _b, _w) in merged.items():
        ioc_id = ioc_ids[ioc]
        clients.setdefault(ioc_id, set()).add(client)
        hits[ioc_id] = hits.get(ioc_id, 0) + count
    alerted_ids = {ioc_ids[i] for i in alerted if i in ioc_ids}
    known = (
        set(
            connection.execute(
                select(verdicts.c.ioc_id).where(verdicts.c.ioc_id.in_(list(hits)))
            ).scalars()
        )
        if hits
        else set()
    )
    requests = []
    for ioc_id, count in hits.items():
        if ioc_id in alerted_ids:
            tier, reason = queue.TIER_ALERT, "ids-alert"
        elif ioc_id in known:
            tier, reason = queue.TIER_RECHECK, "recheck"
        else:
            tier, reason = queue.TIER_NEW, "new"
        requests.append(queue.QueueRequest(ioc_id, tier, len(clients[ioc_id]), count, reason))
    queue.enqueue(connection, requests, now)


def _alert_row(
    alert: IdsAlert,
    source: str,
    ioc_ids: dict[tuple[str, str], int],
    client_ids: dict[str, int],
    resolved: dict[tuple[str, str], tuple[str, str] | None],
) -> dict[str, Any]:
    ioc = resolved.get((alert.ioc_kind, alert.ioc_raw or ""))
    return {
        "ts": to_datetime(stamp_epoch(alert.ts)),
        "source": source,
        "signature_id": alert.signature_id,
        "signature": (alert.signature or "")[:512] or None,
        "category": (alert.category or "")[:255] or None,
        "severity": alert.severity,
        "src_ip": alert.src_ip,
        "src_port": alert.src_port,
        "dest_ip": alert.dest_ip,
        "dest_port": alert.dest_port,
        "proto": alert.proto,
        "client_id": client_ids.get(alert.client),
        "ioc_id": ioc_ids.get(ioc) if ioc else None,
    }
