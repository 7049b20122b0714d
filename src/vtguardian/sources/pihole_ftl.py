"""Pi-hole's long-term query database (``pihole-FTL.db``), read-only, by query id.

Works with the v6/v5 ``queries`` view over ``query_storage`` and with the old
layout where ``queries`` is a table. Pi-hole writes to the file while we read,
so a locked database is waited for, never an error; we never write to it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from vtguardian.errors import InvalidInput
from vtguardian.retry import retrying
from vtguardian.sources.batch import Batch

# Status codes Pi-hole documents as "blocked" (docs: database/query-database).
BLOCKED_STATUS = frozenset({1, 4, 5, 6, 7, 8, 9, 10, 11, 15, 16, 18})
BATCH_ROWS = 50_000
LOCK_RETRIES = 30


def _connect(path: str) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise InvalidInput(f"Pi-hole database {path} does not exist")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    connection.execute("PRAGMA query_only = ON")
    return connection


def _client_names(connection: sqlite3.Connection) -> dict[str, str]:
    """Device names Pi-hole knows: ``client_by_id`` (v6) or ``network_addresses``."""
    names: dict[str, str] = {}
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    for table in ("network_addresses", "client_by_id"):
        if table in tables:
            for ip, name in connection.execute(f"SELECT ip, name FROM {table}"):
                if ip and name:
                    names[str(ip)] = str(name)
    return names


def _with_retries(action: Callable[[], list[tuple]]) -> list[tuple]:
    """``action``, waited out while Pi-hole holds its database locked (it writes every
    minute); any other failure, or a lock that lasts, is one clear error."""
    try:
        for attempt in retrying(_locked, base=0.1, cap=2.0, attempts=LOCK_RETRIES):
            with attempt:
                return action()
    except sqlite3.OperationalError as exc:
        if _locked(exc):
            raise InvalidInput("the Pi-hole database stayed locked; try again later") from None
        raise InvalidInput(f"cannot read the Pi-hole database: {exc}") from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def query_batches(
    path: str, after: int, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[Batch, int]]:
    """The queries with an id above ``after``, ``batch_rows`` at a time in id order,
    each batch with the last id it holds: where the next read starts."""
    connection = _connect(path)
    try:
        try:
            names = _client_names(connection)
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"{path} is not a Pi-hole database: {exc}") from None
        while True:
            rows = _with_retries(
                lambda after=after: connection.execute(
                    "SELECT id, timestamp, status, domain, client FROM queries "
                    "WHERE id > ? ORDER BY id LIMIT ?",
                    (after, batch_rows),
                ).fetchall()
            )
            if not rows:
                return
            batch = Batch("pihole")
            for query_id, stamp, status, domain, client in rows:
                batch.lines += 1
                if not isinstance(domain, str) or not isinstance(stamp, (int, float)):
                    batch.bad(path, int(query_id), "query row with wrong field types", repr(domain))
                    continue
                batch.events += 1
                client = str(client or "")
                if client in names:
                    batch.client_names[client] = names[client]
                batch.see(
                    "domain", domain, client, float(stamp), blocked=int(status in BLOCKED_STATUS)
                )
            after = int(rows[-1][0])
            yield batch, after
    finally:
        connection.close()
