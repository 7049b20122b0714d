"""The network's own passive DNS: what each name resolved to here, and back.

A resolution row is one link of a DNS answer as a source logged it: a name to an
address, or a name to its CNAME target, per device, source and hour. A chain is
kept as its links, so the addresses of a name are found by walking them
(:func:`walk`), and the names an address served by walking them backwards. The
rows are written with the sightings of the same batch, in its transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from vtguardian.clock import as_naive_utc, iso_z
from vtguardian.store.schema import (
    clients,
    connections,
    iocs,
    reports,
    resolutions,
    verdicts,
)
from vtguardian.store.upsert import upsert_rows

# name_id, answer_id, client_id, source, hour, hits, last_seen, first_seen
ResolutionDbRow = tuple[int, int, int, str, Any, int, Any, Any]

_COLUMNS = (
    "name_id",
    "answer_id",
    "client_id",
    "source",
    "hour",
    "hits",
    "last_seen",
    "first_seen",
)
#: CNAME links followed at most: real chains have two or three, a loop ends here
MAX_CHAIN = 8
_CHUNK = 500


def write_resolutions(connection: Connection, rows: list[ResolutionDbRow]) -> None:
    """Add each row's hits to its hourly resolution, widening its first and last stamp."""
    upsert_rows(
        connection,
        resolutions,
        _COLUMNS,
        rows,
        keys=5,
        increment=["hits"],
        greatest=["last_seen"],
        least=["first_seen"],
    )


def write_connections(
    connection: Connection, rows: list[tuple[str, int, str, Any, int, Any, Any]]
) -> None:
    """Add ``(address, client_id, source, hour, hits, last_seen, first_seen)`` rows to
    the hourly connections."""
    upsert_rows(
        connection,
        connections,
        ("address", "client_id", "source", "hour", "hits", "last_seen", "first_seen"),
        rows,
        keys=4,
        increment=["hits"],
        greatest=["last_seen"],
        least=["first_seen"],
    )


def walk(
    connection: Connection, start: Iterable[int], since: datetime, forward: bool = True
) -> dict[int, set[int]]:
    """Every IoC reached from each of ``start`` through resolutions since ``since``:
    forward, the CNAME targets and addresses of names; backward, the names (CNAME
    targets included) that led to an answer. Loops and long chains end after
    :data:`MAX_CHAIN` links."""
    here, there = (
        (resolutions.c.name_id, resolutions.c.answer_id)
        if forward
        else (resolutions.c.answer_id, resolutions.c.name_id)
    )
    reached: dict[int, set[int]] = {ioc_id: set() for ioc_id in start}
    # node -> the starts it was reached from
    origins: dict[int, set[int]] = {ioc_id: {ioc_id} for ioc_id in reached}
    frontier = set(reached)
    for _ in range(MAX_CHAIN):
        if not frontier:
            break
        links: list[tuple[int, int]] = []
        ordered = sorted(frontier)
        for index in range(0, len(ordered), _CHUNK):
            links += connection.execute(
                select(here, there)
                .where(here.in_(ordered[index : index + _CHUNK]), resolutions.c.hour >= since)
                .distinct()
            ).all()
        following: set[int] = set()
        for source_id, target_id in links:
            for origin in origins[source_id]:
                if target_id not in reached[origin] and target_id != origin:
                    reached[origin].add(target_id)
                    known = origins.setdefault(target_id, set())
                    if origin not in known:
                        known.add(origin)
                        following.add(target_id)
        frontier = following
    return reached


@dataclass
class Resolved:
    """One address (or name) a pivot found, with when and by which devices."""

    type: str
    value: str
    verdict: str | None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    hits: int = 0
    devices: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "value": self.value,
            "verdict": self.verdict,
            "first_seen": iso_z(self.first_seen) if self.first_seen else None,
            "last_seen": iso_z(self.last_seen) if self.last_seen else None,
            "hits": self.hits,
            "devices": sorted(self.devices),
        }


def ioc_id(connection: Connection, kind: str, value: str) -> int | None:
    found = connection.execute(
        select(iocs.c.id).where(iocs.c.type == kind, iocs.c.value == value).limit(1)
    ).scalar()
    return int(found) if found is not None else None


def addresses_of(connection: Connection, name_id: int, since: datetime) -> list[Resolved]:
    """The addresses a name resolved to here since ``since``, through its CNAME chain,
    with the devices that were given them and when."""
    reached = walk(connection, [name_id], since)[name_id]
    return _described(connection, reached, since, answers=True, only="ip")


def names_of(connection: Connection, address_id: int, since: datetime) -> list[Resolved]:
    """The names that resolved to an address here since ``since`` (the names asked
    and the CNAME targets between), with their verdicts and devices."""
    reached = walk(connection, [address_id], since, forward=False)[address_id]
    return _described(connection, reached, since, answers=False, only="domain")


def _described(
    connection: Connection, ids: set[int], since: datetime, answers: bool, only: str
) -> list[Resolved]:
    """``ids`` of type ``only`` with their verdicts, and their span, hits and devices
    as an answer (``answers``) or as a name of a resolution."""
    column = resolutions.c.answer_id if answers else resolutions.c.name_id
    found: dict[int, Resolved] = {}
    ordered = sorted(ids)
    for index in range(0, len(ordered), _CHUNK):
        chunk = ordered[index : index + _CHUNK]
        for row_id, kind, value, verdict in connection.execute(
            select(iocs.c.id, iocs.c.type, iocs.c.value, verdicts.c.verdict)
            .outerjoin(verdicts, verdicts.c.ioc_id == iocs.c.id)
            .where(iocs.c.id.in_(chunk), iocs.c.type == only)
        ):
            found[row_id] = Resolved(kind, value, verdict)
        if not found:
            continue
        for row_id, device, first, last, hits in connection.execute(
            select(
                column,
                clients.c.ip,
                func.min(resolutions.c.first_seen),
                func.max(resolutions.c.last_seen),
                func.sum(resolutions.c.hits),
            )
            .join(clients, clients.c.id == resolutions.c.client_id)
            .where(column.in_([i for i in chunk if i in found]), resolutions.c.hour >= since)
            .group_by(column, clients.c.ip)
        ):
            entry = found[row_id]
            first, last = as_naive_utc(first), as_naive_utc(last)
            entry.first_seen = first if entry.first_seen is None else min(entry.first_seen, first)
            entry.last_seen = last if entry.last_seen is None else max(entry.last_seen, last)
            entry.hits += int(hits)
            entry.devices.add(device or "(unknown)")
    return sorted(found.values(), key=lambda r: r.last_seen or datetime.min, reverse=True)


def pivots(connection: Connection, kind: str, ioc_id: int, since: datetime) -> dict[str, Any]:
    """What the resolutions say about one IoC since ``since``.

    A domain: the addresses it resolved to here (through its CNAMEs), and the other
    domains seen on those addresses, with their verdicts: what else lives on that
    server. An address: the domains that resolved to it. Anything else: nothing.
    """
    if kind == "domain":
        chain = walk(connection, [ioc_id], since)[ioc_id]
        addresses = _described(connection, chain, since, answers=True, only="ip")
        ids = [
            address_id
            for address_id, _value in _ids_of(connection, [a.value for a in addresses], "ip")
        ]
        served = walk(connection, ids, since, forward=False)
        others = {name for names in served.values() for name in names} - chain - {ioc_id}
        return {
            "addresses": [a.as_dict() for a in addresses],
            "neighbours": [
                n.as_dict() for n in _described(connection, others, since, False, "domain")
            ],
        }
    if kind == "ip":
        return {"names": [n.as_dict() for n in names_of(connection, ioc_id, since)]}
    return {}


def _ids_of(connection: Connection, values: list[str], kind: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for index in range(0, len(values), _CHUNK):
        found += [
            (int(row_id), value)
            for row_id, value in connection.execute(
                select(iocs.c.id, iocs.c.value).where(
                    iocs.c.type == kind, iocs.c.value.in_(values[index : index + _CHUNK])
                )
            )
        ]
    return found


#: whether a name vouches for the addresses it resolved to: (value, verdict, best
#: VirusTotal popularity rank) -> True for a harmless, allowlisted or popular name
Vouches = Callable[[str, str | None, int | None], bool]


def shared_addresses(
    connection: Connection, address_ids: Iterable[int], since: datetime, vouches: Vouches
) -> set[int]:
    """Of ``address_ids``, those that since ``since`` also served a name that
    ``vouches`` for (through CNAMEs too): shared hosting and CDNs, which a block or a
    bypass alert for one bad name on them would get wrong."""
    served = walk(connection, address_ids, since, forward=False)
    names = sorted({name for found in served.values() for name in found})
    good: set[int] = set()
    for index in range(0, len(names), _CHUNK):
        chunk = names[index : index + _CHUNK]
        rank = (
            select(reports.c.ioc_id, func.min(reports.c.popularity_rank).label("rank"))
            .where(reports.c.ioc_id.in_(chunk))
            .group_by(reports.c.ioc_id)
            .subquery()
        )
        for name_id, value, verdict, popularity in connection.execute(
            select(iocs.c.id, iocs.c.value, verdicts.c.verdict, rank.c.rank)
            .outerjoin(verdicts, verdicts.c.ioc_id == iocs.c.id)
            .outerjoin(rank, rank.c.ioc_id == iocs.c.id)
            .where(iocs.c.id.in_(chunk), iocs.c.type == "domain")
        ):
            if vouches(value, verdict, popularity):
                good.add(name_id)
    return {address for address, found in served.items() if found & good}


def flagged_addresses(
    connection: Connection, since: datetime, levels: tuple[str, ...]
) -> dict[int, tuple[str, list[tuple[int, str]]]]:
    """Public addresses that domains with a verdict in ``levels`` resolved to here since
    ``since`` (through CNAMEs): address id -> (address, [(domain id, domain)])."""
    domains = dict(
        connection.execute(
            select(iocs.c.id, iocs.c.value)
            .join(verdicts, verdicts.c.ioc_id == iocs.c.id)
            .where(verdicts.c.verdict.in_(levels), iocs.c.type == "domain")
        ).all()
    )
    reached = walk(connection, domains, since)
    nodes = sorted({node for found in reached.values() for node in found})
    addresses: dict[int, str] = {}
    for index in range(0, len(nodes), _CHUNK):
        addresses.update(
            connection.execute(
                select(iocs.c.id, iocs.c.value).where(
                    iocs.c.id.in_(nodes[index : index + _CHUNK]), iocs.c.type == "ip"
                )
            ).all()
        )
    found: dict[int, tuple[str, list[tuple[int, str]]]] = {}
    for domain_id in sorted(reached, key=lambda d: domains[d]):
        for node in reached[domain_id]:
            if node in addresses:
                found.setdefault(node, (addresses[node], []))[1].append(
                    (domain_id, domains[domain_id])
                )
    return found
