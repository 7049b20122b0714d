"""DNS bypass: devices that reach flagged servers, or resolve names, around the local DNS.

A device that connects to an address of a malicious or suspicious domain without
having resolved a name to that address through the local DNS in the previous
``alerts.bypass_window_minutes`` got the address elsewhere (hard-coded, from
DNS-over-HTTPS, from another resolver), past any Pi-hole block: one
``dns-bypass`` alert per device, address and domain, delivered to the webhook
like every other alert. Addresses that also served a harmless, allowlisted or
very popular name (shared hosting, CDNs) are left out, as for firewall blocks.

Devices that talk to a well-known public DNS-over-HTTPS resolver (the list
shipped beside this module, or ``alerts.doh_resolvers_file``) while Pi-hole also
serves them are recorded too (kind ``doh``), for the dashboard's "DNS bypass"
panel: they resolve some names where Pi-hole cannot see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from vtguardian.clock import as_naive_utc, iso_z
from vtguardian.errors import ConfigError
from vtguardian.iocs import Classifier, IocType
from vtguardian.store.engine import run_in_transaction
from vtguardian.store.entities import find_ioc_ids
from vtguardian.store.resolutions import flagged_addresses, shared_addresses
from vtguardian.store.schema import (
    alerts,
    clients,
    connections,
    dns_bypasses,
    resolutions,
    sightings,
    verdicts,
)
from vtguardian.store.upsert import upsert
from vtguardian.verdict import Policy, vouching

BYPASS = "dns-bypass"
DOH = "doh"
LEVELS = ("malicious", "suspicious")
#: connections looked at; an alert is made once, so a wider look finds nothing twice
LOOKBACK = timedelta(days=7)
#: a connection this recent waits for the next round: the local DNS's answer for it may
#: still be on its way from another log being followed
SETTLE = timedelta(minutes=5)
#: what Pi-hole's own logs are stored as (sightings.source)
PIHOLE_SOURCES = ("pihole", "dnsmasq")


@dataclass
class BypassReport:
    alerts: int = 0  # new dns-bypass alerts
    doh: int = 0  # devices and resolvers newly seen talking DNS-over-HTTPS


@dataclass(frozen=True)
class DohResolvers:
    """Public DNS-over-HTTPS resolvers: addresses (with their names) and names."""

    addresses: dict[str, str]
    names: frozenset[str]

    @classmethod
    def read(cls, path: Path | None = None) -> DohResolvers:
        """The list shipped in the package, or the user's file of the same format:
        ``address name`` or ``name`` per line, ``#`` comments."""
        try:
            text = (
                path.read_text()
                if path is not None
                else resources.files("vtguardian.intel").joinpath("doh_resolvers.txt").read_text()
            )
        except OSError as exc:
            raise ConfigError(f"alerts.doh_resolvers_file: cannot read {path}: {exc}") from None
        classifier = Classifier(local_suffixes=())
        addresses: dict[str, str] = {}
        names: set[str] = set()
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            address = classifier.classify_as(words[0], IocType.IP)
            if address.value is not None and len(words) <= 2:
                name = words[1].lower().rstrip(".") if len(words) == 2 else ""
                addresses[address.value] = name
                if name:
                    names.add(name)
            elif len(words) == 1 and classifier.classify_as(words[0], IocType.DOMAIN).value:
                names.add(str(classifier.classify_as(words[0], IocType.DOMAIN).value))
            else:
                raise ConfigError(f"DNS-over-HTTPS resolvers, line {number}: not 'address name'")
        return cls(addresses, frozenset(names))


def detect_bypasses(
    engine: Engine,
    classifier: Classifier,
    policy: Policy,
    now: datetime,
    window_minutes: int = 60,
    resolvers: DohResolvers | None = None,
) -> BypassReport:
    """Record new DNS bypasses and their alerts, and devices using DoH; safe to repeat
    (each bypass is one row and one alert however often it is found)."""
    window = timedelta(minutes=window_minutes)
    since = now - LOOKBACK
    doh = resolvers or DohResolvers.read()

    def work(connection: Connection) -> BypassReport:
        report = BypassReport()
        report.alerts = _bypass_alerts(connection, classifier, policy, since, window, now)
        report.doh = _doh_devices(connection, doh, since, now)
        return report

    return run_in_transaction(engine, work)


def _bypass_alerts(
    connection: Connection,
    classifier: Classifier,
    policy: Policy,
    since: datetime,
    window: timedelta,
    now: datetime,
) -> int:
    found = flagged_addresses(connection, since - window, LEVELS)
    found = {
        address_id: entry
        for address_id, entry in found.items()
        if classifier.classify_as(entry[0], IocType.IP).eligible
    }
    for address_id in shared_addresses(
        connection, found, since - window, vouching(policy, classifier.is_allowlisted)
    ):
        del found[address_id]
    if not found:
        return 0
    by_address = {address: (address_id, names) for address_id, (address, names) in found.items()}
    joined = _connections_to(connection, list(by_address), since)
    if not joined:
        return 0
    # When each device was given each address by the local DNS: (client, address) -> spans
    answered: dict[tuple[int, int], list[tuple[datetime, datetime]]] = {}
    for client_id, answer_id, first, last in _in_chunks(
        connection,
        select(
            resolutions.c.client_id,
            resolutions.c.answer_id,
            resolutions.c.first_seen,
            resolutions.c.last_seen,
        ).where(resolutions.c.hour >= since - window),
        resolutions.c.answer_id,
        list(found),
    ):
        answered.setdefault((client_id, answer_id), []).append(
            (as_naive_utc(first), as_naive_utc(last))
        )
    bypasses: dict[tuple[int, str, int, str], list[datetime]] = {}
    for address, client_id, first, last in joined:
        first, last = as_naive_utc(first), as_naive_utc(last)
        if first > now - SETTLE:
            continue
        address_id, names = by_address[address]
        spans = answered.get((client_id, address_id), ())
        if any(start <= first and end >= first - window for start, end in spans):
            continue  # resolved here just before: the local DNS saw it
        for domain_id, domain in names:
            span = bypasses.setdefault((client_id, address, domain_id, domain), [first, last])
            span[0], span[1] = min(span[0], first), max(span[1], last)
    if not bypasses:
        return 0
    return _record_bypasses(connection, bypasses, now)


def _record_bypasses(
    connection: Connection,
    bypasses: dict[tuple[int, str, int, str], list[datetime]],
    now: datetime,
) -> int:
    """One dns_bypasses row and one alert per (device, address, domain)."""
    keys = {
        f"{BYPASS}:{client_id}:{address}:{domain_id}": (client_id, address, domain_id, domain)
        for client_id, address, domain_id, domain in bypasses
    }
    known = {
        row[0] for row in _in_chunks(connection, select(alerts.c.flip_key), alerts.c.flip_key, keys)
    }
    devices = {
        client_id: (ip, name)
        for client_id, ip, name in _in_chunks(
            connection,
            select(clients.c.id, clients.c.ip, clients.c.name),
            clients.c.id,
            sorted({client_id for client_id, *_ in bypasses}),
        )
    }
    levels = dict(
        _in_chunks(
            connection,
            select(verdicts.c.ioc_id, verdicts.c.verdict),
            verdicts.c.ioc_id,
            sorted({domain_id for _c, _a, domain_id, _d in bypasses}),
        )
    )
    upsert(
        connection,
        dns_bypasses,
        [
            {
                "kind": BYPASS,
                "client_id": client_id,
                "address": address,
                "domain": domain[:255],
                "first_seen": first,
                "last_seen": last,
                "created_at": now,
            }
            for (client_id, address, _domain_id, domain), (first, last) in bypasses.items()
        ],
        keys=["kind", "client_id", "address", "domain"],
        greatest=["last_seen"],
        least=["first_seen"],
    )
    rows = []
    for flip_key, (client_id, address, domain_id, domain) in sorted(keys.items()):
        if flip_key in known:
            continue
        first, last = bypasses[(client_id, address, domain_id, domain)]
        rows.append(
            {
                "created_at": now,
                "ioc_id": domain_id,
                "verdict": BYPASS,
                "previous_verdict": levels.get(domain_id),
                "ratio": None,
                "engines": [],
                # The device, and the address it reached without asking the local DNS.
                "clients": [
                    {
                        "ip": devices.get(client_id, ("", None))[0],
                        "name": devices.get(client_id, ("", None))[1],
                        "address": address,
                        "domain": domain,
                        "first_seen": iso_z(first),
                        "last_seen": iso_z(last),
                    }
                ],
                "first_seen": first,
                "last_seen": last,
                "flip_key": flip_key,
                "delivery_attempts": 0,
                "next_attempt_at": now,
            }
        )
    if rows:
        upsert(connection, alerts, rows, keys=["flip_key"])
    return len(rows)


def _doh_devices(connection: Connection, doh: DohResolvers, since: datetime, now: datetime) -> int:
    """Devices that Pi-hole serves and that talked to (or looked up) a public DoH
    resolver since ``since``, recorded as ``doh`` rows; how many are new. Every query
    starts from the resolvers' addresses and names, through the tables' keys: a week
    of sightings is never scanned."""
    if not (doh.addresses or doh.names):
        return 0
    found: dict[tuple[int, str, str], list[datetime]] = {}
    for address, client_id, first, last in _connections_to(
        connection, sorted(doh.addresses), since
    ):
        _widen(found, (client_id, address, doh.addresses[address]), first, last)
    name_ids = find_ioc_ids(connection, [("domain", name) for name in sorted(doh.names)])
    names = {ioc_id: value for (_kind, value), ioc_id in name_ids.items()}
    for ioc_id, client_id, first, last in _in_chunks(
        connection,
        select(
            sightings.c.ioc_id, sightings.c.client_id, sightings.c.first_seen, sightings.c.last_seen
        ).where(sightings.c.hour >= since),
        sightings.c.ioc_id,
        sorted(names),
    ):
        _widen(found, (client_id, "", names[ioc_id]), first, last)
    if not found:
        return 0
    served = {
        row[0]
        for row in _in_chunks(
            connection,
            select(sightings.c.client_id)
            .where(sightings.c.hour >= since, sightings.c.source.in_(PIHOLE_SOURCES))
            .distinct(),
            sightings.c.client_id,
            sorted({client_id for client_id, _a, _n in found}),
        )
    }
    found = {key: span for key, span in found.items() if key[0] in served}
    if not found:
        return 0
    before = connection.execute(
        select(dns_bypasses.c.client_id, dns_bypasses.c.address, dns_bypasses.c.domain).where(
            dns_bypasses.c.kind == DOH
        )
    ).all()
    upsert(
        connection,
        dns_bypasses,
        [
            {
                "kind": DOH,
                "client_id": client_id,
                "address": address,
                "domain": name,
                "first_seen": first,
                "last_seen": last,
                "created_at": now,
            }
            for (client_id, address, name), (first, last) in found.items()
        ],
        keys=["kind", "client_id", "address", "domain"],
        greatest=["last_seen"],
        least=["first_seen"],
    )
    return len(set(found) - {tuple(row) for row in before})


def _widen(
    found: dict[tuple[int, str, str], list[datetime]], key: tuple[int, str, str], first, last
) -> None:
    first, last = as_naive_utc(first), as_naive_utc(last)
    span = found.setdefault(key, [first, last])
    span[0], span[1] = min(span[0], first), max(span[1], last)


def _connections_to(connection: Connection, addresses: list[str], since: datetime) -> list:
    """(address, client id, first seen, last seen) of the devices' connections to
    ``addresses`` in the hours since ``since``."""
    return _in_chunks(
        connection,
        select(
            connections.c.address,
            connections.c.client_id,
            connections.c.first_seen,
            connections.c.last_seen,
        ).where(connections.c.hour >= since),
        connections.c.address,
        addresses,
    )


def _in_chunks(connection: Connection, query, column, values: Iterable) -> list:
    """``query`` restricted to ``column IN values``, a bounded list at a time."""
    values = list(values)
    rows: list = []
    for index in range(0, len(values), 500):
        rows += connection.execute(query.where(column.in_(values[index : index + 500]))).all()
    return rows
