"""In-memory aggregation of observations, on the parsers' hot path.

Parsers call :meth:`Batch.see` with raw strings; nothing is normalised or
classified there. :mod:`vtguardian.ingest.prepare` classifies and merges a
batch, and :mod:`vtguardian.ingest.writer` stores it in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vtguardian.sources.timeparse import HourKey, Stamp, unix_hour
from vtguardian.tally import Tally

# kind hint (or "" to detect), raw value, client, hour (see timeparse.HourKey)
RawKey = tuple[str, str, str, HourKey]
# name, answer type ("ip" or "domain" for a CNAME target), answer, client, hour
ResolutionKey = tuple[str, str, str, str, HourKey]
# address connected to, client, hour
ConnectionKey = tuple[str, str, HourKey]


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
class Batch:
    source: str
    counts: dict[RawKey, Tally] = field(default_factory=dict)
    alerted: set[tuple[str, str]] = field(default_factory=set)
    alerts: list[IdsAlert] = field(default_factory=list)
    errors: list[BadInput] = field(default_factory=list)
    client_names: dict[str, str] = field(default_factory=dict)
    #: DNS answers as logged: one link of a name to an address or a CNAME target
    resolutions: dict[ResolutionKey, Tally] = field(default_factory=dict)
    #: connections a device made to an address (not DNS): what a DNS bypass shows
    connections: dict[ConnectionKey, Tally] = field(default_factory=dict)
    lines: int = 0
    events: int = 0

    def see(
        self, kind: str, raw: str, client: str, ts: Stamp, blocked: int = 0, hits: int = 1
    ) -> None:
        """One observation of ``raw`` by ``client`` at ``ts`` (Unix time or aware datetime)."""
        hour = int(ts // 3600) if ts.__class__ is not datetime else unix_hour(ts)  # type: ignore[arg-type,operator]
        key = (kind, raw, client, hour)
        entry = self.counts.get(key)
        if entry is None:
            self.counts[key] = Tally(hits, blocked, ts, ts)
        else:
            entry.add(hits, blocked, ts, ts)

    def see_at(self, kind: str, raw: str, client: str, hour: HourKey, ts: Stamp) -> None:
        """:meth:`see` for one allowed hit whose hour key the parser already has:
        the hot path of the busiest sources."""
        key = (kind, raw, client, hour)
        entry = self.counts.get(key)
        if entry is None:
            self.counts[key] = Tally(1, 0, ts, ts)
        else:
            entry.see(ts)

    def resolve(self, name: str, kind: str, answer: str, client: str, ts: Stamp) -> None:
        """One DNS answer seen by ``client``: ``name`` is ``answer``, an address
        (``kind`` "ip") or the target of a CNAME (``kind`` "domain")."""
        hour = int(ts // 3600) if ts.__class__ is not datetime else unix_hour(ts)  # type: ignore[arg-type,operator]
        self.resolve_at(name, kind, answer, client, hour, ts)

    def resolve_at(
        self, name: str, kind: str, answer: str, client: str, hour: HourKey, ts: Stamp
    ) -> None:
        """:meth:`resolve` when the parser already has the hour key."""
        key = (name, kind, answer, client, hour)
        entry = self.resolutions.get(key)
        if entry is None:
            self.resolutions[key] = Tally(1, 0, ts, ts)
        else:
            entry.see(ts)

    def connect_at(self, address: str, client: str, hour: HourKey, ts: Stamp) -> None:
        """``client`` connected to ``address`` (a flow, a TLS or HTTP request) at ``ts``."""
        key = (address, client, hour)
        entry = self.connections.get(key)
        if entry is None:
            self.connections[key] = Tally(1, 0, ts, ts)
        else:
            entry.see(ts)

    def connect(self, address: str, client: str, ts: Stamp) -> None:
        """:meth:`connect_at` working the hour out from ``ts``."""
        hour = int(ts // 3600) if ts.__class__ is not datetime else unix_hour(ts)  # type: ignore[arg-type,operator]
        self.connect_at(address, client, hour, ts)

    def keys(self) -> int:
        """The keys counted so far: what bounds a batch's memory."""
        return len(self.counts) + len(self.resolutions) + len(self.connections)

    def alert(self, alert: IdsAlert) -> None:
        self.alerts.append(alert)
        if alert.ioc_raw:
            self.alerted.add((alert.ioc_kind, alert.ioc_raw))

    def bad(self, path: str, position: int, reason: str, line: bytes | str) -> None:
        raw = line if isinstance(line, bytes) else line.encode("utf-8", "replace")
        sample = repr(raw[:120])[2:-1][:255]
        self.errors.append(BadInput(path, position, reason[:255], sample))

    def __len__(self) -> int:
        return self.keys() + len(self.alerts) + len(self.errors)
