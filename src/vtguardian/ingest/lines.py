"""Splitting a log into lines and feeding them to a parser, batch by batch.

Real logs end in a line still being written (left for the next read unless the
file is complete) and sometimes hold lines too long to be log lines (recorded
and skipped, never loaded whole). A read can be bounded to the lines that
*start* before a byte position, so several processes can each parse a segment
of one file and together cover every line exactly once.
"""

from __future__ import annotations

import gzip
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import Any, BinaryIO, NamedTuple

from vtguardian.sources.base import LineParser, ParseError
from vtguardian.sources.batch import Batch

MAX_LINE = 1 << 20
# A batch also ends once it counts this many (IoC, client, hour) keys. A busy real log
# repeats itself (400,000 lines of the ingest benchmark hold about 21,000 keys), but a
# file of values that are all different (a scan, a hostile client) would otherwise
# hold a whole batch of lines as distinct IoCs, at about 4 KB each until stored.
MAX_BATCH_KEYS = 30_000
# A chunk's lines are freed together once parsed. Up to about this size their memory
# stays within the one empty arena Python's small-object allocator keeps; larger
# chunks return arenas to the system and fault them back in for the next chunk
# (a 4 MiB chunk: 0.1-0.2 s of page faults per million EVE lines, 5 % of the parse).
CHUNK_BYTES = 1 << 18


class Parsed(NamedTuple):
    """A parsed batch, where the file is read up to after it, and the parser's state
    there (what a restart at that position must restore)."""

    batch: Batch
    position: int
    state: Any


def open_log(path: str) -> BinaryIO:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def parse_batches(
    handle: BinaryIO,
    path: str,
    parser: LineParser,
    position: int,
    final: bool,
    batch_lines: int,
    end: int | None = None,
) -> Iterator[Parsed]:
    """Lines from ``position`` into batches of ``batch_lines``.

    A partial last line is left for the next read unless the file is ``final``.
    With ``end``, only lines starting before it are read; the last batch's
    position is then the start of the first line at or after ``end``.
    """
    handle.seek(position)
    limit = end if end is not None else float("inf")
    batch = Batch(parser.source)
    feed = parser.feed
    feed_block = parser.feed_block
    pending = b""
    while position < limit:
        chunk = handle.read(CHUNK_BYTES)
        if not chunk:
            if pending and final:  # a last line without a newline, in a complete file
                batch.lines += 1
                try:
                    feed(pending.rstrip(b"\r"), batch)
                except ParseError as exc:
                    batch.bad(path, position, str(exc), pending)
                position += len(pending)
            break
        data = pending + chunk if pending else chunk
        lines = data.split(b"\n")
        pending = lines.pop()  # no newline yet: the start of the next line
        # Where this chunk's complete lines end, as a file position: a block running to
        # the last of them then knows its length without adding up its lines.
        complete_end = position + len(data) - len(pending)
        short = no_long_lines(data, len(data) - len(pending))
        index = 0
        while index < len(lines) and position < limit:
            # A line adds a key or a few: a group never takes a batch far past its keys.
            room = min(batch_lines - batch.lines, MAX_BATCH_KEYS - batch.keys())
            group = lines[index : index + max(room, 1)]
            to_end = complete_end - position if index + len(group) == len(lines) else None
            taken, length = _block(feed_block, group, batch, path, position, limit, short, to_end)
            if taken:
                position += length
                batch.lines += taken
                index += taken
            else:  # one line at a time: blank, overlong and broken lines are handled here
                line = lines[index]
                index += 1
                line_start = position
                position += len(line) + 1
                batch.lines += 1
                if len(line) > MAX_LINE:
                    batch.bad(path, line_start, "line longer than 1 MiB", line)
                elif line.endswith(b"\r"):
                    line = line[:-1]
                if line and len(line) <= MAX_LINE:
                    try:
                        feed(line, batch)
                    except ParseError as exc:
                        batch.bad(path, line_start, str(exc), line)
            if batch.lines >= batch_lines or batch.keys() >= MAX_BATCH_KEYS:
                yield Parsed(batch, position, parser.state())
                batch = Batch(parser.source)
        if index < len(lines):
            break  # the segment ends here
        if len(pending) > MAX_LINE and position < limit:
            batch.bad(path, position, "line longer than 1 MiB", pending)
            batch.lines += 1
            position += len(pending) + skip_line(handle)
            pending = b""
    yield Parsed(batch, position, parser.state())


# Shorter runs (a few lines appended to a followed log, the tail of a segment) go
# line by line: setting up a block would cost more than it saves.
MIN_BLOCK = 64


def no_long_lines(data: bytes, end: int, limit: int = MAX_LINE) -> bool:
    """Whether no line of ``data[:end]`` can be longer than ``limit``, told by a few
    searches instead of a look at every line: a line longer than ``limit`` covers a
    whole aligned window of half that, which then holds no newline. True means
    certainly none; False means perhaps one, and the lines are measured."""
    half = max(1, limit // 2)
    return all(data.find(b"\n", start, start + half) != -1 for start in range(0, end - half, half))


def _block(
    feed_block: Any,
    group: list[bytes],
    batch: Batch,
    path: str,
    position: int,
    limit: float,
    short: bool,
    length: int | None,
) -> tuple[int, int]:
    """Feed the lines of ``group`` to the parser in one call; returns how many lines
    it took and their length in bytes with newlines, (0, 0) to feed them singly.

    ``short`` says no line of the group is overlong and ``length`` is the group's
    length when the caller knows it; otherwise the lines are measured. The block
    stops before the first line starting at or after ``limit``; a group with an
    overlong line is left to the single-line path, which records it.
    """
    if len(group) < MIN_BLOCK or (not short and max(map(len, group)) > MAX_LINE):
        return 0, 0
    if length is None:
        length = sum(map(len, group)) + len(group)
    if position + length > limit:
        ends = list(accumulate(map(len, group)))
        # line k starts at position + ends[k - 1] + k: keep those starting before limit
        later = bisect_left(range(1, len(group)), limit, key=lambda k: position + ends[k - 1] + k)
        group = group[: later + 1]
        if len(group) < MIN_BLOCK:
            return 0, 0
        length = ends[len(group) - 1] + len(group)
    starts = LineStarts(group, position)

    def bad(index: int, reason: str) -> None:
        batch.bad(path, starts.at(index), reason, group[index])

    feed_block(group, batch, bad)
    return len(group), length


class LineStarts:
    """File positions of a block's lines, worked out only for the bad ones, which
    parsers report in line order: each is found from the one before."""

    def __init__(self, lines: list[bytes], position: int) -> None:
        self._lines = lines
        self._start = position
        self._index, self._position = 0, position

    def at(self, index: int) -> int:
        if index < self._index:  # out of order after all: count from the first line
            self._index, self._position = 0, self._start
        self._position += sum(map(len, self._lines[self._index : index])) + index - self._index
        self._index = index
        return self._position


def skip_line(handle: BinaryIO) -> int:
    """Discard the rest of the current line, however long; returns the bytes skipped."""
    skipped = 0
    while True:
        chunk = handle.readline(MAX_LINE)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped
