"""Rows that other rows point at: IoCs and clients, created on first sight.

Both are get-or-create in bulk: insert what is missing (ignoring rows another
writer added meanwhile), then read the ids back, so collectors never race on
"SELECT then INSERT".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from vtguardian.store.schema import clients, iocs
from vtguardian.store.upsert import upsert, upsert_rows

UNKNOWN_CLIENT = ""
_CHUNK = 500


def ioc_digest(ioc_type: str, value: str) -> str:
    return hashlib.sha256(f"{ioc_type}:{value}".encode()).hexdigest()


def ensure_iocs(
    connection: Connection,
    items: Mapping[tuple[str, str], tuple[str | None, Any, Any]],
) -> dict[tuple[str, str], int]:
    """Ids for ``(type, value) -> (registered_domain, first_seen, last_seen)``.

    ``first_seen`` only ever moves back and ``last_seen`` forward, so batches
    arriving out of order, or stored together as one, are safe.
    Dates are datetimes or naive UTC text, as an ingest prepares them (see
    :func:`upsert_rows`). On MariaDB the upsert itself returns the ids; elsewhere
    they are read back: on a large ingest that query was a tenth of the writer's
    time.
    """
    by_digest = _by_digest(items)
    returned = upsert_rows(
        connection,
        iocs,
        ("digest", "type", "value", "registered_domain", "first_seen", "last_seen"),
        [(digest, kind, value, *items[kind, value]) for digest, (kind, value) in by_digest.items()],
        keys=1,
        greatest=["last_seen"],
        least=["first_seen"],
        returning=("digest", "id"),
    )
    if returned is None:
        return _ids(connection, by_digest)
    return {by_digest[digest]: ioc_id for digest, ioc_id in returned}


def find_or_create_iocs(
    connection: Connection,
    items: Mapping[tuple[str, str], tuple[str | None, Any, Any]],
) -> dict[tuple[str, str], int]:
    """Ids for ``items``, creating only the IoCs not stored yet.

    For lookups: asking about an IoC is not seeing it in traffic, so a known one
    keeps its first and last seen (a later last seen would also make it due for
    a re-check).
    """
    ids = find_ioc_ids(connection, items)
    missing = {key: span for key, span in items.items() if key not in ids}
    if missing:
        ids |= ensure_iocs(connection, missing)
    return ids


def ensure_clients(
    connection: Connection,
    items: Mapping[str, tuple[str | None, datetime, datetime]],
) -> dict[str, int]:
    """Ids for ``ip -> (name, first_seen, last_seen)``; a later name replaces an
    older one, and the span only widens, as for IoCs."""
    rows = [
        {"ip": ip, "name": name, "first_seen": first, "last_seen": last}
        for ip, (name, first, last) in items.items()
    ]
    named = [row for row in rows if row["name"]]
    unnamed = [row for row in rows if not row["name"]]
    span = {"greatest": ["last_seen"], "least": ["first_seen"]}
    upsert(connection, clients, named, keys=["ip"], replace=["name"], **span)
    upsert(connection, clients, unnamed, keys=["ip"], **span)
    ids: dict[str, int] = {}
    addresses = list(items)
    for start in range(0, len(addresses), _CHUNK):
        chunk = addresses[start : start + _CHUNK]
        for ip, client_id in connection.execute(
            select(clients.c.ip, clients.c.id).where(clients.c.ip.in_(chunk))
        ):
            ids[ip] = client_id
    return ids


def find_ioc_ids(
    connection: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Ids of IoCs already stored; absent ones are simply missing from the result."""
    return _ids(connection, _by_digest(keys))


def _by_digest(keys: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    return {ioc_digest(kind, value): (kind, value) for kind, value in keys}


# One statement whatever the number of digests: compiled once, the list expanded at
# execution, instead of a new IN (...) clause built and compiled for every chunk.
_IDS_BY_DIGEST = select(iocs.c.digest, iocs.c.id).where(
    iocs.c.digest.in_(bindparam("digests", expanding=True))
)


def _ids(
    connection: Connection, by_digest: dict[str, tuple[str, str]]
) -> dict[tuple[str, str], int]:
    ids: dict[tuple[str, str], int] = {}
    digests = list(by_digest)
    for start in range(0, len(digests), _CHUNK):
        chunk = digests[start : start + _CHUNK]
        for digest, ioc_id in connection.execute(_IDS_BY_DIGEST, {"digests": chunk}):
            ids[by_digest[digest]] = ioc_id
    return ids
