"""Parsing a large, complete log in forked worker processes.

Workers parse *and* prepare (classify, merge, lay out rows), which is most of
an ingest's work; the parent, which alone holds the database connection, only
stores each batch with its checkpoint, strictly in file order. A file whose
lines stand alone is cut into byte segments parsed side by side, each worker
taking every n-th segment; a parser that carries state from line to line (Zeek
headers, dnsmasq query joins), or a gzip file that cannot seek, gets one worker.

Each pipe holds about one batch, so no worker runs far ahead of what is stored
and memory stays bounded however large the file.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from itertools import accumulate
from multiprocessing.connection import Connection
from typing import Any

from vtguardian.errors import InvalidInput
from vtguardian.iocs import Classifier
from vtguardian.sources.base import LineParser, Stateless
from vtguardian.sources.gc_pause import without_gc_pauses
from vtguardian.sources.lines import open_log, parse_batches, skip_line
from vtguardian.sources.offsets import Offset
from vtguardian.sources.prepare import Prepared, prepare

Ready = tuple[Prepared, int, Any]  # a prepared batch, the position after it, the parser state
_END = "end"  # a worker has sent every batch of its segment


def can_fork() -> bool:
    return "fork" in mp.get_all_start_methods()


def worker_count(parser: LineParser, path: str) -> int:
    """Side by side only for standalone lines in a seekable file; at most one per core."""
    if not isinstance(parser, Stateless) or path.endswith(".gz"):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def prepared_in_workers(
    make_parser: Callable[[str], LineParser],
    classifier: Classifier,
    path: str,
    start: Offset,
    size: int,
    batch_lines: int,
    segment_bytes: int,
    workers: int | None = None,
    smallest_bytes: int | None = None,
) -> Iterator[Ready]:
    """Every line of the complete file ``path`` from ``start``, as prepared batches in
    file order. Positions are exact line starts, so each is a valid checkpoint."""
    allowed = worker_count(make_parser(path), path)
    workers = 1 if allowed == 1 else workers or allowed  # ``workers``: for tests
    if workers == 1:
        bounds = [start.position, size]
    else:
        bounds = segment_bounds(start.position, size, segment_bytes, smallest_bytes)
    segments = len(bounds) - 1
    workers = min(workers, segments)
    context = mp.get_context("fork")
    pipes: list[Connection] = []
    processes = []
    for index in range(workers):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_work,
            args=(sender, receiver, make_parser, classifier, path, start, batch_lines),
            kwargs={
                "mine": [
                    (bounds[k], bounds[k + 1] if k < segments - 1 else None)
                    for k in range(index, segments, workers)
                ],
            },
            daemon=True,
        )
        process.start()
        sender.close()
        pipes.append(receiver)
        processes.append(process)
    try:
        for segment in range(segments):
            pipe = pipes[segment % workers]
            while True:
                try:
                    kind, payload = pipe.recv()
                except EOFError:
                    raise InvalidInput(f"{path}: the parser process died") from None
                if kind == _END:
                    break
                if kind == "error":
                    raise InvalidInput(f"{path}: {payload}")
                yield payload
    finally:
        for pipe in pipes:
            pipe.close()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def segment_bounds(first: int, size: int, largest: int, smallest: int | None = None) -> list[int]:
    """Byte positions cutting ``[first, size)`` into segments of at most ``largest``.

    With ``smallest``, the segments grow from it to ``largest`` at the start and
    shrink back to it at the end: the writer gets its first batch early instead of
    idling while a whole large segment is parsed, and is left with little to store
    alone once the parsers are done.
    """
    total = size - first
    ramp: list[int] = []
    step = smallest or largest
    # Each step is at most half the largest, and enough is left for a middle segment
    # at least as large: the sizes then only grow towards the middle and shrink after.
    while 2 * step <= largest and total - 2 * (sum(ramp) + step) >= step:
        ramp.append(step)
        step *= 2
    middle = total - 2 * sum(ramp)
    count = max(1, -(-middle // largest))
    even, extra = divmod(middle, count)
    sizes = [*ramp, *[even + 1] * extra, *[even] * (count - extra), *reversed(ramp)]
    return list(accumulate(sizes, initial=first))


def _work(
    sender: Connection,
    receiver: Connection,
    make_parser: Callable[[str], LineParser],
    classifier: Classifier,
    path: str,
    start: Offset,
    batch_lines: int,
    mine: list[tuple[int, int | None]],
) -> None:
    """One worker: parse and prepare its segments, sending each batch as it is ready."""
    receiver.close()
    try:
        parser = make_parser(path)
        parser.restore(start.state)
        with open_log(path) as handle:
            for first, end in mine:
                if first > start.position:
                    handle.seek(first - 1)  # a line starting exactly at ``first`` is ours
                    first = first - 1 + skip_line(handle)
                for batch, position, state in without_gc_pauses(
                    parse_batches(handle, path, parser, first, True, batch_lines, end)
                ):
                    prepared = prepare(batch, classifier)
                    sender.send(("batch", (prepared, position, state)))
                sender.send((_END, None))
    except BaseException as exc:  # reported to the parent, which raises it
        sender.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()
