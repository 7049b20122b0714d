"""Reading log files line by line from a stored offset, like ``tail -F``.

Handles what real log files do: a last line still being written (left for the
next read), lines too long to be log lines (recorded and skipped), rotation by
rename-and-create or by copytruncate (the unread tail of the old file is read
from its rotated copy, then the new file from its start), and ``.1``/``.gz``
rotated files, read once for backfill the first time a log is seen.
"""

from __future__ import annotations

import gzip
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine

from vtguardian.errors import InvalidInput
from vtguardian.iocs import Classifier
from vtguardian.sources import offsets
from vtguardian.sources.base import LineParser, ParseError
from vtguardian.sources.batch import Batch, Totals, flush
from vtguardian.sources.offsets import Offset

MAX_LINE = 1 << 20
CHUNK_BYTES = 1 << 22
# Below this much unread data a child process costs more than it saves.
PARALLEL_MIN_BYTES = 32 << 20
BATCH_LINES = 50_000
# A backfill is stored in batches this many times larger: an hour of a busy log then
# mostly lands in one batch, so each IoC and sighting row is written about once.
BACKFILL_BATCH_FACTOR = 4


def open_log(path: str) -> BinaryIO:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


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
    ) -> None:
        self.engine = engine
        self.classifier = classifier
        self.source_key = source_key
        self.make_parser = make_parser
        self.totals = totals
        self.batch_lines = batch_lines
        self.on_progress = on_progress
        self.parallel_min_bytes = parallel_min_bytes
        self._reported = 0

    def read(self, path: str, final: bool = True) -> None:
        """Read what is new in ``path``; ``final`` False leaves a partial last line."""
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
            self._consume(handle, path, path, start, final)

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
    ) -> None:
        """Parse from ``start`` and store batch by batch, each with its checkpoint.

        A large one-off read parses in a child process while this one stores the
        previous batch: on two cores that nearly halves the time, and the
        checkpoints are still written only here, with the rows they cover.
        """
        self._reported = start.position
        remaining = _size(handle) - start.position
        parallel = final and remaining >= self.parallel_min_bytes
        if parallel and "fork" in mp.get_all_start_methods():
            batches = _parsed_in_child(
                self.make_parser, path, start, self.batch_lines * BACKFILL_BATCH_FACTOR
            )
        else:
            parser = self.make_parser(path)
            parser.restore(start.state)
            batches = parse_batches(handle, path, parser, start, final, self.batch_lines)
        for batch, position, state in batches:
            if batch.lines or position != start.position:
                self._flush(batch, handle, key_path, Offset(position, None, state))

    def _flush(self, batch: Batch, handle: BinaryIO, key_path: str, offset: Offset) -> None:
        offset.fingerprint = offsets.fingerprint(handle)
        inode = _inode(handle)

        def checkpoint(connection: Connection) -> None:
            offsets.save(connection, self.source_key, key_path, offset, inode)

        flush(self.engine, batch, self.classifier, self.totals, checkpoint)
        if self.on_progress is not None:
            self.on_progress(max(0, offset.position - self._reported))
        self._reported = offset.position


Parsed = tuple[Batch, int, Any]  # a batch, the position after it, the parser state there


def parse_batches(
    handle: BinaryIO,
    path: str,
    parser: LineParser,
    start: Offset,
    final: bool,
    batch_lines: int,
) -> Iterator[Parsed]:
    """Lines from ``start`` into batches of ``batch_lines``; a partial last line is
    left for the next read unless the file is ``final``."""
    handle.seek(start.position)
    position = start.position
    batch = Batch(parser.source)
    feed = parser.feed
    pending = b""
    while True:
        chunk = handle.read(CHUNK_BYTES)
        if not chunk:
            break
        lines = (pending + chunk if pending else chunk).split(b"\n")
        pending = lines.pop()  # no newline yet: the start of the next line
        for line in lines:
            line_start = position
            position += len(line) + 1
            batch.lines += 1
            if len(line) > MAX_LINE:
                batch.bad(path, line_start, "line longer than 1 MiB", line)
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                try:
                    feed(line, batch)
                except ParseError as exc:
                    batch.bad(path, line_start, str(exc), line)
            if batch.lines >= batch_lines:
                yield batch, position, parser.state()
                batch = Batch(parser.source)
        if len(pending) > MAX_LINE:
            batch.bad(path, position, "line longer than 1 MiB", pending)
            batch.lines += 1
            position += len(pending) + _skip_rest(handle)
            pending = b""
    if pending and final:  # a last line without a newline, in a file that is complete
        batch.lines += 1
        try:
            feed(pending.rstrip(b"\r"), batch)
        except ParseError as exc:
            batch.bad(path, position, str(exc), pending)
        position += len(pending)
    yield batch, position, parser.state()


def _parsed_in_child(
    make_parser: Callable[[str], LineParser], path: str, start: Offset, batch_lines: int
) -> Iterator[Parsed]:
    """:func:`parse_batches` of a complete file, run in a forked child process.

    The pipe holds about one batch, so the child parses the next batch while the
    parent stores the last one, and never runs far ahead of what is stored.
    """
    receiver, sender = mp.get_context("fork").Pipe(duplex=False)

    def child() -> None:
        receiver.close()
        try:
            parser = make_parser(path)
            parser.restore(start.state)
            with open_log(path) as handle:
                for item in parse_batches(handle, path, parser, start, True, batch_lines):
                    sender.send(("batch", item))
            sender.send(("done", None))
        except BaseException as exc:  # reported to the parent, which raises it
            sender.send(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            sender.close()

    process = mp.get_context("fork").Process(target=child, daemon=True)
    process.start()
    sender.close()
    try:
        while True:
            try:
                kind, payload = receiver.recv()
            except EOFError:
                raise InvalidInput(f"{path}: the parser process died") from None
            if kind == "done":
                return
            if kind == "error":
                raise InvalidInput(f"{path}: {payload}")
            yield payload
    finally:
        receiver.close()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()


def _size(handle: BinaryIO) -> int:
    try:
        return os.fstat(handle.fileno()).st_size if not isinstance(handle, gzip.GzipFile) else 0
    except (OSError, AttributeError, ValueError):
        return 0


def _skip_rest(handle: BinaryIO) -> int:
    """Discard the rest of an overlong line; returns the bytes skipped."""
    skipped = 0
    while True:
        chunk = handle.readline(MAX_LINE)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _inode(handle: BinaryIO) -> int | None:
    try:
        return os.fstat(handle.fileno()).st_ino
    except (OSError, AttributeError, ValueError):
        return None


__all__ = ["FileReader", "ParseError", "rotated_siblings"]
