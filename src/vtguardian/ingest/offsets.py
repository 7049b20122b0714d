"""Where each source file was read up to, committed with the rows it produced.

A file is recognised by its first bytes (its fingerprint), not only by its name,
so a log renamed by logrotate is still known as the file we were reading, and a
new file under the old name starts from the beginning.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, select

from vtguardian.clock import utcnow
from vtguardian.store.schema import source_offsets
from vtguardian.store.upsert import upsert

FINGERPRINT_BYTES = 1024


@dataclass
class Offset:
    position: int = 0
    fingerprint: str | None = None
    state: dict[str, Any] | None = None
    last_id: int | None = None


def head(handle: BinaryIO, length: int = FINGERPRINT_BYTES) -> bytes:
    """The first ``length`` bytes of a file, its position left where it was.

    Taken once per file read, never per batch: on a ``.gz`` the seek back to the
    start decompresses the stream again from its first byte, so a fingerprint
    taken for every batch made reading a large rotated ``.gz`` quadratic.
    """
    where = handle.tell()
    handle.seek(0)
    first = handle.read(length)
    handle.seek(where)
    return first


def of_head(first: bytes) -> str | None:
    """``<n>:<sha256 of the first n bytes>``; None for an empty file."""
    if not first:
        return None
    return f"{len(first)}:{hashlib.sha256(first).hexdigest()}"


def fingerprint(handle: BinaryIO, length: int = FINGERPRINT_BYTES) -> str | None:
    """``<n>:<sha256 of the first n bytes>``; None for an empty file."""
    return of_head(head(handle, length))


def starts_like(first: bytes, stored: str | None) -> bool:
    """Whether a file whose first bytes are ``first`` is the one ``stored`` was taken
    from: the fingerprint of a file that has grown since covers fewer bytes."""
    if stored is None:
        return False
    length = int(stored.split(":", 1)[0])
    return len(first) >= length and of_head(first[:length]) == stored


def _digest(source: str, path: str) -> str:
    return hashlib.sha256(f"{source}:{os.path.abspath(path)}".encode()).hexdigest()


def load(engine: Engine, source: str, path: str) -> Offset | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(source_offsets).where(source_offsets.c.digest == _digest(source, path))
        ).first()
    if row is None:
        return None
    return Offset(row.position, row.fingerprint, row.state, row.last_id)


def save(connection: Connection, source: str, path: str, offset: Offset, inode: int | None) -> None:
    """Called inside the transaction that stores what was read up to ``offset``."""
    upsert(
        connection,
        source_offsets,
        [
            {
                "digest": _digest(source, path),
                "source": source,
                "path": os.path.abspath(path)[-1024:],
                "inode": inode,
                "fingerprint": offset.fingerprint,
                "position": offset.position,
                "last_id": offset.last_id,
                "state": offset.state,
                "updated_at": utcnow(),
            }
        ],
        keys=["digest"],
        replace=["path", "inode", "fingerprint", "position", "last_id", "state", "updated_at"],
    )
