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


def fingerprint(handle: BinaryIO, length: int = FINGERPRINT_BYTES) -> str | None:
    """``<n>:<sha256 of the first n bytes>``; None for an empty file."""
    where = handle.tell()
    handle.seek(0)
    head = handle.read(length)
    handle.seek(where)
    if not head:
        return None
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()}"


def same_file(handle: BinaryIO, stored: str | None) -> bool:
    """Whether the file starts with the bytes a stored fingerprint was taken from."""
    if stored is None:
        return False
    length = int(stored.split(":", 1)[0])
    return fingerprint(handle, length) == stored


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
