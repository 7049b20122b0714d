"""Parsing a large, complete log in forked worker processes.

Workers parse *and* prepare (classify, merge, lay out rows), which is most of
an ingest's work; the parent, which alone holds the database connection, only
stores each batch with its checkpoint, strictly in file order. A file whose
lines stand alone is cut into byte segments parsed side by side, each worker
taking every n-th segment; a parser that carries state from line to line (Zeek
headers, dnsmasq query joins), or a gzip file that cannot seek, gets one worker.

A thread of the parent takes each batch as soon as it is sent and keeps at most
:data:`MOST_MERGED` waiting, so no worker runs far ahead of what is stored and
memory stays bounded however large the file. When the parent falls behind, it
stores all the batches that are waiting as one (see :func:`merge`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from multiprocessing.connection import Connection
from typing import Any

from vtguardian.errors import InvalidInput
from vtguardian.ingest.gc_pause import without_gc_pauses
from vtguardian.ingest.lines import open_log, parse_batches, skip_line
from vtguardian.ingest.offsets import Offset
from vtguardian.ingest.prepare import (
    ConnectionRow,
    CountRow,
    IocKey,
    Prepared,
    Ready,
    ResolutionRow,
    count_rows,
    prepared_batches,
)
from vtguardian.iocs import Classifier
from vtguardian.sources.base import LineParser
from vtguardian.tally import Tally, add_to

_END = "end"  # a worker has sent every batch of its segment
BACKLOG_THREAD = "ingest-backlog"  # receives the workers' batches in the parent
MOST_MERGED = 3  # batches stored as one at most: with those waiting, bounds the memory


def can_fork() -> bool:
    return "fork" in mp.get_all_start_methods()


def worker_count(parser: LineParser, path: str) -> int:
    """Side by side only for standalone lines in a seekable file; at most one per core."""
    if not parser.independent_lines or path.endswith(".gz"):
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
    backlog = _Backlog(_InFileOrder(pipes, segments, path))
    try:
        while (first := backlog.take()) is not None:
            parts = [first]
            while len(parts) < MOST_MERGED and (more := backlog.take_waiting()) is not None:
                parts.append(more)
            last = parts[-1]
            yield Ready(merge([part.prepared for part in parts]), last.position, last.state)
    finally:
        backlog.stop()
        for process in processes:
            process.join(timeout=5 if backlog.complete else 0)
            if process.is_alive():
                process.kill()
                process.join()
        backlog.close()
        for pipe in pipes:
            pipe.close()


class _InFileOrder:
    """The workers' batches in file order: segment k comes from pipe k mod workers."""

    def __init__(self, pipes: list[Connection], segments: int, path: str) -> None:
        self.pipes, self.segments, self.path = pipes, segments, path
        self.segment = 0

    def take(self) -> Ready | None:
        """The next batch, waiting for it; None after the last one."""
        while self.segment < self.segments:
            try:
                kind, payload = self.pipes[self.segment % len(self.pipes)].recv()
            except EOFError:
                raise InvalidInput(f"{self.path}: the parser process died") from None
            if kind == _END:
                self.segment += 1
            elif kind == "error":
                raise InvalidInput(f"{self.path}: {payload}")
            else:
                return payload
        return None


class _Backlog:
    """Batches received on a thread as soon as the workers send them, so that the
    workers keep parsing while the parent stores, and what piles up meanwhile can
    be stored as one transaction. At most :data:`MOST_MERGED` wait, which bounds
    the memory they take."""

    _DONE = object()

    def __init__(self, incoming: _InFileOrder) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(MOST_MERGED)
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self.complete = False  # every batch was taken: the workers end by themselves
        self._thread = threading.Thread(
            target=self._receive, args=(incoming,), name=BACKLOG_THREAD, daemon=True
        )
        self._thread.start()

    def _receive(self, incoming: _InFileOrder) -> None:
        try:
            while (item := incoming.take()) is not None:
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # raised in the parent's own thread by take()
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self._stopping.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.1)
                return True
        return False

    def take(self) -> Ready | None:
        """The next batch, waiting for it; None after the last one."""
        if self._error is None and not self.complete:
            item = self._unpack(self._queue.get())
            if item is not None:
                return item
        if self._error is not None:
            raise self._error
        return None

    def take_waiting(self) -> Ready | None:
        """The next batch if it is here already; else, or after the last one or an
        error (which the next :meth:`take` raises), None."""
        if self._error is not None or self.complete:
            return None
        try:
            return self._unpack(self._queue.get_nowait())
        except queue.Empty:
            return None

    def _unpack(self, item: Any) -> Ready | None:
        if item is self._DONE:
            self.complete = True
            return None
        if isinstance(item, BaseException):
            self._error = item
            return None
        return item  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        """Once the workers are gone, the receiving thread's read has ended."""
        self._thread.join(timeout=5)


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
                for ready in prepared_batches(
                    without_gc_pauses(
                        parse_batches(handle, path, parser, first, True, batch_lines, end)
                    ),
                    classifier,
                ):
                    sender.send(("batch", ready))
                    del ready  # freed before the next batch is parsed
                sender.send((_END, None))
    except BaseException as exc:  # reported to the parent, which raises it
        sender.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()


def merge(parts: Sequence[Prepared]) -> Prepared:
    """Consecutive batches of one source as one batch that stores exactly what they
    store one after the other.

    When the storing process falls behind its parsers, it takes every batch that
    is waiting in one transaction: an IoC, a client's day of it or a queue entry
    that recurs in those batches is then written once instead of once per batch,
    which on MariaDB is most of the server's work after the hourly rows. Counts
    add up, first and last stamps widen, a later client name replaces an earlier
    one and a queue entry keeps its largest client count, as the upserts would.
    """
    if len(parts) == 1:
        return parts[0]
    out = Prepared(parts[0].source)
    hourly: dict[tuple[IocKey, str, str], Tally] = {}
    daily: dict[tuple[IocKey, str, str], Tally] = {}
    queue: dict[IocKey, tuple[int, int]] = {}
    resolved: dict[tuple[IocKey, IocKey, str, str], Tally] = {}
    joined: dict[tuple[str, str, str], Tally] = {}
    for part in parts:
        out.lines += part.lines
        out.events += part.events
        out.skipped += part.skipped
        out.invalid += part.invalid
        out.hits += part.hits
        for ioc, span in part.iocs.items():
            known = out.iocs.get(ioc)
            out.iocs[ioc] = (
                span
                if known is None
                else (known[0], min(known[1], span[1]), max(known[2], span[2]))
            )
        _add_counts(hourly, part.sightings)
        _add_counts(daily, part.client_days)
        for client, (name, first, last) in part.clients.items():
            known_client = out.clients.get(client)
            out.clients[client] = (
                (name, first, last)
                if known_client is None
                else (
                    name or known_client[0],
                    min(known_client[1], first),
                    max(known_client[2], last),
                )
            )
        for ioc, (clients, hits) in part.queue.items():
            queued = queue.get(ioc)
            queue[ioc] = (
                (clients, hits) if queued is None else (max(queued[0], clients), queued[1] + hits)
            )
        for r in part.resolutions:
            add_to(resolved, (r.name, r.answer, r.client, r.hour), r.hits, 0, r.last, r.first)
        for k in part.connections:
            add_to(joined, (k.address, k.client, k.hour), k.hits, 0, k.last, k.first)
        out.alerted |= part.alerted
        out.alerts += part.alerts
        out.errors += part.errors
    out.sightings = count_rows(hourly)
    out.client_days = count_rows(daily)
    out.queue = queue
    out.resolutions = [
        ResolutionRow(name, answer, client, hour, t.hits, t.last, t.first)
        for (name, answer, client, hour), t in resolved.items()
    ]
    out.connections = [
        ConnectionRow(address, client, hour, t.hits, t.last, t.first)
        for (address, client, hour), t in joined.items()
    ]
    return out


def _add_counts(into: dict[tuple[IocKey, str, str], Tally], rows: list[CountRow]) -> None:
    """Sum rows per IoC, client and hour (or day)."""
    for row in rows:  # UTC texts compare as their moments do
        add_to(into, (row.ioc, row.client, row.when), row.hits, row.blocked, row.last, row.first)
