"""Reading log files line by line from a stored offset, like ``tail -F``.

Handles what real log files do: a last line still being written (left for the
next read), lines too long to be log lines (recorded and skipped), rotation by
rename-and-create or by copytruncate (the unread tail of the old file is read
from its rotated copy, then the new file from its start), and ``.1``/``.gz``
rotated files, read once for backfill the first time a log is seen.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy import Connection, Engine

from vtguardian.iocs import Classifier
from vtguardian.sources import offsets
from vtguardian.sources.base import LineParser, ParseError
from vtguardian.sources.batch import Totals
from vtguardian.sources.commit import store
from vtguardian.sources.gc_pause import without_gc_pauses
from vtguardian.sources.lines import open_log, parse_batches
from vtguardian.sources.offsets import Offset
from vtguardian.sources.prepare import Prepared, prepared_batches
from vtguardian.sources.workers import can_fork, prepared_in_workers

# Below this much unread data a child process costs more than it saves.
PARALLEL_MIN_BYTES = 32 << 20
BATCH_LINES = 50_000
# A backfill is stored in batches this many times larger: an hour of a busy log then
# mostly lands in one batch, so each IoC and sighting row is written about once, and
# each batch's fixed cost (re-marking the IoCs it saw, its commit) is paid rarely.
BACKFILL_BATCH_FACTOR = 8
# Workers parse byte segments of up to this many bytes per line of a backfill batch,
# about one batch of EVE lines (250-1000 bytes each; 64 MiB by default). The first
# and last are a quarter of that, and sizes double between (see
# workers.segment_bounds): the writer starts soon, and has little left to store
# alone once parsing is done.
SEGMENT_BYTES_PER_LINE = 160
# A file written to within this many seconds may still be growing: a one-off read
# holds its last line back when it has no newline yet, as a follower does.
SETTLE_SECONDS = 5.0


def rotated_siblings(path: str) -> list[str]:
    """``x.log.3.gz ... x.log.2.gz, x.log.1`` (oldest first): logrotate's names."""
    found = []
    for n in range(1, 10):
        for candidate in (f"{path}.{n}", f"{path}.{n}.gz"):
            if os.path.exists(candidate):
                found.append(candidate)
    return list(reversed(found))


class FileReader:
    """Ingests one log file (and its rotations) for one source."""

    def __init__(
        self,
        engine: Engine,
        classifier: Classifier,
        source_key: str,
        make_parser: Callable[[str], LineParser],
        totals: Totals,
        batch_lines: int = BATCH_LINES,
        on_progress: Callable[[int], None] | None = None,
        parallel_min_bytes: int = PARALLEL_MIN_BYTES,
        settle_seconds: float = SETTLE_SECONDS,
    ) -> None:
        self.engine = engine
        self.classifier = classifier
        self.source_key = source_key
        self.make_parser = make_parser
        self.totals = totals
        self.batch_lines = batch_lines
        self.on_progress = on_progress
        self.parallel_min_bytes = parallel_min_bytes
        self.settle_seconds = settle_seconds
        self._reported = 0

    def read(self, path: str, final: bool = True) -> None:
        """Read what is new in ``path``; ``final`` False leaves a partial last line.

        Even when ``final``, a last line without its newline in a file that changed
        in the last few seconds is only the start of a line: it is left (its offset
        not passed) and counted in ``Totals.held``, so the next read takes it whole.
        """
        stored = offsets.load(self.engine, self.source_key, path)
        if stored is None:
            for sibling in rotated_siblings(path):
                self._backfill(sibling)
        try:
            handle = open_log(path)
        except FileNotFoundError:
            return
        with handle:
            current = offsets.fingerprint(handle)
            if stored is not None and stored.fingerprint and current != stored.fingerprint:
                if offsets.same_file(handle, stored.fingerprint):
                    pass  # the same file, grown past its first fingerprint
                else:
                    self._finish_rotated(path, stored)
                    stored = Offset()
            start = stored or Offset()
            size = os.fstat(handle.fileno()).st_size if not path.endswith(".gz") else None
            if size is not None and start.position > size:  # truncated in place
                start = Offset()
            complete = final and (size is None or self._settled(handle))
            end = self._consume(handle, path, path, start, complete)
            if final and not complete and size is not None and end < size:
                self.totals.held += 1

    def _settled(self, handle: BinaryIO) -> bool:
        """Whether the file has not been written to for ``settle_seconds``."""
        return time.time() - os.fstat(handle.fileno()).st_mtime >= self.settle_seconds

    def _backfill(self, sibling: str) -> None:
        if offsets.load(self.engine, self.source_key, sibling) is not None:
            return
        with open_log(sibling) as handle:
            self._consume(handle, sibling, sibling, Offset(), final=True)

    def _finish_rotated(self, path: str, stored: Offset) -> None:
        """The file we were reading was rotated: read the rest of it from its copy."""
        for sibling in [f"{path}.1", f"{path}.1.gz", *rotated_siblings(path)]:
            if not os.path.exists(sibling):
                continue
            with open_log(sibling) as handle:
                if offsets.same_file(handle, stored.fingerprint):
                    self._consume(handle, sibling, path, stored, final=True)
                    return

    def _consume(
        self, handle: BinaryIO, path: str, key_path: str, start: Offset, final: bool
    ) -> int:
        """Parse from ``start`` and store batch by batch, each with its checkpoint;
        the position read up to.

        A large one-off read is parsed and prepared in worker processes while this
        one stores (see :mod:`vtguardian.sources.workers`); the checkpoints are
        still written only here, in file order, with the rows they cover.
        """
        self._reported = start.position
        size = _size(handle)
        if final and size - start.position >= self.parallel_min_bytes and can_fork():
            lines = self.batch_lines * BACKFILL_BATCH_FACTOR
            ready = prepared_in_workers(
                self.make_parser,
                self.classifier,
                path,
                start,
                size,
                lines,
                segment_bytes=lines * SEGMENT_BYTES_PER_LINE,
                smallest_bytes=lines * SEGMENT_BYTES_PER_LINE // 4,
            )
        else:
            parser = self.make_parser(path)
            parser.restore(start.state)
            ready = prepared_batches(
                parse_batches(handle, path, parser, start.position, final, self.batch_lines),
                self.classifier,
            )
        stored = start.position
        for prepared, position, state in without_gc_pauses(ready):
            if prepared.lines or position != stored:
                self._store(prepared, handle, key_path, Offset(position, None, state))
                stored = position
            del prepared  # freed before the next batch is made (see prepared_batches)
        return stored

    def _store(self, prepared: Prepared, handle: BinaryIO, key_path: str, offset: Offset) -> None:
        offset.fingerprint = offsets.fingerprint(handle)
        inode = _inode(handle)

        def checkpoint(connection: Connection) -> None:
            offsets.save(connection, self.source_key, key_path, offset, inode)

        store(self.engine, prepared, self.totals, checkpoint)
        if self.on_progress is not None:
            self.on_progress(max(0, offset.position - self._reported))
        self._reported = offset.position


def _size(handle: BinaryIO) -> int:
    try:
        return os.fstat(handle.fileno()).st_size if not isinstance(handle, gzip.GzipFile) else 0
    except (OSError, AttributeError, ValueError):
        return 0


def _inode(handle: BinaryIO) -> int | None:
    try:
        return os.fstat(handle.fileno()).st_ino
    except (OSError, AttributeError, ValueError):
        return None


__all__ = ["FileReader", "ParseError", "rotated_siblings"]
