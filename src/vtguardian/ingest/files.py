"""Reading log files line by line from a stored offset, like ``tail -F``.

Handles what real log files do: a last line still being written (left for the
next read), lines too long to be log lines (recorded and skipped), and rotation
by rename-and-create or by copytruncate, however many times it happened while
nothing was reading: the rotated generations (``x.1``, ``x.2.gz``, logrotate's
dated ``x-20261204[.gz]``) are told apart by their first bytes and read oldest
first, each finished before the next, then the live file. The first time a log
is seen, all of its generations are read the same way (backfill).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine

from vtguardian.ingest import offsets
from vtguardian.ingest.gc_pause import without_gc_pauses
from vtguardian.ingest.lines import open_log, parse_batches
from vtguardian.ingest.offsets import Offset
from vtguardian.ingest.options import IngestOptions
from vtguardian.ingest.parallel import can_fork, prepared_in_workers
from vtguardian.ingest.prepare import Prepared, prepared_batches
from vtguardian.ingest.totals import Totals
from vtguardian.ingest.writer import store
from vtguardian.iocs import Classifier
from vtguardian.sources.base import LineParser, ParseError

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


_NUMBERED = re.compile(r"\.(\d+)(\.gz)?")
# logrotate's dateext: -%Y%m%d by default, or a dateformat that starts with the year
# or with %s, so that the names sort as the dates do.
_DATED = re.compile(r"-(\d{4,}(?:[._-]\d+)*)(\.gz)?")


def rotated_siblings(path: str) -> list[str]:
    """The rotated copies of ``path`` that can be read, oldest first: logrotate's
    dated names (``x-20261204``, ``x-20261205.gz``, with ``dateext``), earliest date
    first, then its numbered ones (``x.3.gz ... x.2.gz, x.1``), highest first. A
    plain copy comes before a ``.gz`` of the same name, which may be half written."""
    folder, name = os.path.split(path)
    try:
        entries = os.listdir(folder or ".")
    except OSError:
        return []
    ranked: list[tuple[int, Any, bool, str]] = []
    for entry in entries:
        if not entry.startswith(name):
            continue
        rest = entry[len(name) :]
        if numbered := _NUMBERED.fullmatch(rest):
            ranked.append((1, -int(numbered[1]), bool(numbered[2]), entry))
        elif dated := _DATED.fullmatch(rest):
            ranked.append((0, dated[1], bool(dated[2]), entry))
    return [os.path.join(folder, entry) for *_rank, entry in sorted(ranked)]


@dataclass(frozen=True)
class Generation:
    """One rotated copy of a log, known by its first bytes rather than its name,
    which changes at every rotation."""

    path: str
    head: bytes

    @property
    def fingerprint(self) -> str | None:
        return offsets.of_head(self.head)

    def alike(self, other: bytes) -> bool:
        """Whether a file starting with ``other`` is this generation: one of the two
        may have grown since the other was copied, so the shorter start decides."""
        if not other or not self.head:
            return False
        return self.head.startswith(other) or other.startswith(self.head)


def generations(path: str, live_head: bytes) -> list[Generation]:
    """The rotated generations of ``path`` with something to read, oldest first, each
    once: a copy that starts like another is the same generation (``x.2`` while
    ``x.2.gz`` is written), and one that starts like the live file is the live file
    itself, copied by ``copytruncate`` and not truncated yet."""
    found: list[Generation] = []
    for sibling in rotated_siblings(path):
        try:
            with open_log(sibling) as handle:
                first = offsets.head(handle)
        except (OSError, EOFError):  # gone meanwhile, or a .gz still being written
            continue
        known = [*found, Generation(path, live_head)]
        if first and not any(other.alike(first) for other in known):
            found.append(Generation(sibling, first))
    return found


class FileReader:
    """Ingests one log file (and its rotations) for one source.

    One stored offset per log, under the live file's name, says which generation
    is being read (by its fingerprint) and how far: every older one is done, every
    newer one is still to read. A restart, or a stop asked for by ``stop`` (a
    one-off ingest's SIGTERM), resumes exactly there.
    """

    def __init__(
        self,
        engine: Engine,
        classifier: Classifier,
        source_key: str,
        make_parser: Callable[[str], LineParser],
        totals: Totals,
        options: IngestOptions = IngestOptions(),
        on_progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.engine = engine
        self.classifier = classifier
        self.source_key = source_key
        self.make_parser = make_parser
        self.totals = totals
        self.batch_lines = options.batch_lines
        self.on_progress = on_progress
        self.parallel_min_bytes = options.parallel_min_bytes
        self.settle_seconds = options.settle_seconds
        self.stop = stop
        self._reported = 0

    def stopping(self) -> bool:
        """Whether to stop after the batch just stored (its offset is stored with it)."""
        return self.stop is not None and self.stop.is_set()

    def read(self, path: str, final: bool = True) -> None:
        """Read what is new in ``path``; ``final`` False leaves a partial last line.

        Even when ``final``, a last line without its newline in a file that changed
        in the last few seconds is only the start of a line: it is left (its offset
        not passed) and counted in ``Totals.held``, so the next read takes it whole.
        """
        stored = offsets.load(self.engine, self.source_key, path)
        try:
            handle: BinaryIO | None = open_log(path)
        except FileNotFoundError:
            handle = None  # rotated away and not created again yet
        with handle if handle is not None else contextlib.nullcontext():
            live_head = offsets.head(handle) if handle is not None else b""
            if stored is None or not _continues(live_head, stored, handle is not None):
                if not self._catch_up(path, stored, live_head):
                    return
                stored = None
            if handle is not None:
                self._read_live(handle, path, stored or Offset(), live_head, final)

    def _read_live(
        self, handle: BinaryIO, path: str, start: Offset, live_head: bytes, final: bool
    ) -> None:
        size = os.fstat(handle.fileno()).st_size if not path.endswith(".gz") else None
        if size is not None and start.position > size:  # truncated in place
            start = Offset()
        complete = final and (size is None or self._settled(handle, size))
        end = self._consume(handle, path, path, start, complete, offsets.of_head(live_head))
        if final and not complete and size is not None and end < size and not self.stopping():
            self.totals.held += 1

    def _settled(self, handle: BinaryIO, size: int) -> bool:
        """Whether the file's last line is whole: it ends with a newline, or the file
        has not been written to for ``settle_seconds``."""
        if size == 0 or _last_byte(handle, size) == b"\n":
            return True
        return time.time() - os.fstat(handle.fileno()).st_mtime >= self.settle_seconds

    def _catch_up(self, path: str, stored: Offset | None, live_head: bytes) -> bool:
        """Read the rotated generations of ``path`` not read yet, oldest first, each to
        its end before the next; False when asked to stop meanwhile.

        ``stored`` is where the live file's offset stood, in a generation rotated
        away since: the rest of it is read, then every generation newer than it.
        With no offset yet (a log seen for the first time) every generation is
        read. If the generation is found nowhere (deleted before it was finished),
        nothing tells the newer generations from the older ones: none is read, and
        the live file is read from its start.
        """
        found = generations(path, live_head)
        if stored is not None:
            matching = [
                n for n, g in enumerate(found) if offsets.starts_like(g.head, stored.fingerprint)
            ]
            if not matching:
                return True
            found = found[matching[-1] :]
        for n, generation in enumerate(found):
            if stored is None:
                start = self._read_alone(generation)
            else:
                start = stored if n == 0 else Offset()
            with contextlib.suppress(FileNotFoundError), open_log(generation.path) as handle:
                self._consume(handle, generation.path, path, start, True, generation.fingerprint)
            if self.stopping():
                return False
        return True

    def _read_alone(self, generation: Generation) -> Offset:
        """Where a generation was read to under its own name (``vtguardian ingest``
        given that file, or the backfill of earlier versions, which kept an offset per
        rotated file): only the rest of it is read."""
        own = offsets.load(self.engine, self.source_key, generation.path)
        if own is not None and offsets.starts_like(generation.head, own.fingerprint):
            return own
        return Offset()

    def _consume(
        self,
        handle: BinaryIO,
        path: str,
        key_path: str,
        start: Offset,
        final: bool,
        fingerprint: str | None,
    ) -> int:
        """Parse from ``start`` and store batch by batch, each with its checkpoint
        (``fingerprint``, taken once, says which file it is in); the position read
        up to. Stops after the batch being stored when asked to.

        A large one-off read is parsed and prepared in worker processes while this
        one stores (see :mod:`vtguardian.ingest.parallel`); the checkpoints are
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
        batches = without_gc_pauses(ready)
        # Closed at once when stopping early: the workers are ended, not left parsing.
        with contextlib.closing(ready), contextlib.closing(batches):
            for prepared, position, state in batches:
                if prepared.lines or position != stored:
                    self._store(prepared, handle, key_path, Offset(position, fingerprint, state))
                    stored = position
                del prepared  # freed before the next batch is made (see prepared_batches)
                if self.stopping():
                    break
        return stored

    def _store(self, prepared: Prepared, handle: BinaryIO, key_path: str, offset: Offset) -> None:
        inode = _inode(handle)

        def checkpoint(connection: Connection) -> None:
            offsets.save(connection, self.source_key, key_path, offset, inode)

        store(self.engine, prepared, self.totals, checkpoint)
        if self.on_progress is not None:
            self.on_progress(max(0, offset.position - self._reported))
        self._reported = offset.position


def _continues(live_head: bytes, stored: Offset, live: bool) -> bool:
    """Whether the stored offset is in the live file (not in a generation rotated
    away since); an offset stored without a fingerprint cannot tell, and is."""
    if stored.fingerprint is None:
        return live
    return offsets.starts_like(live_head, stored.fingerprint)


def _last_byte(handle: BinaryIO, size: int) -> bytes:
    where = handle.tell()
    handle.seek(size - 1)
    last = handle.read(1)
    handle.seek(where)
    return last


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


__all__ = ["FileReader", "Generation", "ParseError", "generations", "rotated_siblings"]
