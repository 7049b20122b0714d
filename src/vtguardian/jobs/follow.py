"""Reading a job's file from where it stopped: whole lines only, rotation noticed.

The offset and a fingerprint of the file's first bytes are stored with the events
read up to there (one transaction), so a restart resumes exactly. A file whose
first bytes changed, or that is now shorter than the offset, was rotated or
truncated: it is read from its start. A last line without its newline is left
for the next round (the writer is still writing it).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from vtguardian.errors import UserError

FINGERPRINT_BYTES = 256
READ_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Chunk:
    lines: list[bytes]
    position: int  # where the next read starts
    fingerprint: str | None
    lag_bytes: int  # what is left in the file after this chunk
    overlong: int = 0  # a line longer than a whole read, skipped


def fingerprint(head: bytes) -> str | None:
    if not head:
        return None
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()[:64]}"


def read_chunk(path: str, position: int, known: str | None, limit: int = READ_BYTES) -> Chunk:
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(FINGERPRINT_BYTES)
            if known is not None:
                length = int(known.split(":", 1)[0])
                if fingerprint(head[:length]) != known:
                    position = 0  # another file under the same name: rotated
            if size < position:
                position = 0  # truncated
            handle.seek(position)
            data = handle.read(limit)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (waiting for it)") from None
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    end = data.rfind(b"\n")
    overlong = 0
    if end < 0 and len(data) == limit:
        # No line end in a whole read: not an event anyone sends. Skipped and counted
        # (its rest fails to parse and is counted too), so the job does not stall.
        end, overlong = len(data) - 1, 1
        data = data[:end] + b"\n"
    whole = data[: end + 1] if end >= 0 else b""
    new_position = position + len(whole)
    # Of the bytes read so far, the first FINGERPRINT_BYTES: they no longer change.
    consumed = fingerprint(head[:new_position]) or known
    lines = [] if overlong else whole.splitlines()
    return Chunk(lines, new_position, consumed, max(0, size - new_position), overlong)
