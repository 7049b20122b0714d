"""The one way in: ``ingest`` reads the configured sources, once or following.

The command line, ``vtguardian run``, the demo and the benchmarks all call
:func:`ingest` with the sources (``FollowedSource``: which source, which file)
and the :class:`IngestOptions` built from the settings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from vtguardian.config import FollowedSource
from vtguardian.errors import InvalidInput
from vtguardian.ingest.files import FileReader
from vtguardian.ingest.ftl import ingest_ftl
from vtguardian.ingest.options import IngestOptions
from vtguardian.ingest.totals import Totals
from vtguardian.ingest.watch import ChangeWait
from vtguardian.iocs import Classifier
from vtguardian.sources.registry import parser_factory
from vtguardian.store.engine import is_disconnect, wait_for_database

Progress = Callable[[int], None]


def ingest(
    engine: Engine,
    classifier: Classifier,
    sources: Sequence[FollowedSource],
    options: IngestOptions = IngestOptions(),
    follow: bool = False,
    stop: threading.Event | None = None,
    on_progress: Progress | None = None,
) -> Totals:
    """Read every source once, or follow them all until ``stop`` is set.

    Following, each source has a thread of its own; once, they are read in turn.
    A one-off ingest stops at ``stop`` too, after the batch it is storing, whose
    offset is stored with it: the next ingest resumes exactly there. A follower
    reads what was written since its last poll before it stops.
    """
    stop = stop or threading.Event()
    if not follow:
        for source in sources:
            if not os.path.exists(source.path):
                raise InvalidInput(f"{source.path}: no such file")
    results: list[Totals] = []
    errors: list[BaseException] = []

    def one(source: FollowedSource) -> None:
        try:
            results.append(
                _read_source(engine, classifier, source, options, follow, stop, on_progress)
            )
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    if follow and len(sources) > 1:
        threads = [threading.Thread(target=one, args=(s,), daemon=True) for s in sources]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    else:
        for source in sources:
            if not follow and stop.is_set():  # a one-off ingest asked to stop (SIGTERM)
                break
            one(source)
    if errors:
        raise errors[0]
    total = Totals()
    for part in results:
        total.add(part)
    return total


def _read_source(
    engine: Engine,
    classifier: Classifier,
    source: FollowedSource,
    options: IngestOptions,
    follow: bool,
    stop: threading.Event,
    on_progress: Progress | None,
) -> Totals:
    """One source, once or until ``stop``; a follower's reads leave a partial last line."""
    totals = Totals()
    one_off_stop = None if follow else stop  # a follower finishes what it has
    read: Callable[[bool], None]
    if source.source == "pihole-ftl":

        def read(_final: bool) -> None:
            ingest_ftl(engine, classifier, source.path, totals, on_progress, one_off_stop)

    else:
        reader = FileReader(
            engine,
            classifier,
            source.source,
            parser_factory(source.source, source.fields, source.flows),
            totals,
            options,
            on_progress=on_progress,
            stop=one_off_stop,
        )

        def read(final: bool) -> None:
            reader.read(source.path, final=final)

    if not follow:
        _surviving_restarts(engine, options.patience, lambda: read(True))
        return totals
    # Watching starts before the first read: a line written during a read is not missed.
    with ChangeWait(source.path, stop, options.poll_seconds, options.file_notifications) as changes:
        while True:
            changes.read_now()
            _surviving_restarts(engine, options.patience, lambda: read(False))
            if changes.wait():
                # Asked to stop: take in what was written since the last read, then go.
                _surviving_restarts(engine, options.patience, lambda: read(False))
                return totals


def _surviving_restarts(engine: Engine, patience: float, read: Callable[[], None]) -> None:
    """Run one read; if the database goes away meanwhile, wait for it and read again.

    Reading again starts from the offset stored with the last committed batch, so
    a batch whose commit was cut off is read once more only if it was not stored.
    """
    while True:
        try:
            read()
            return
        except DBAPIError as exc:
            if not is_disconnect(exc):
                raise
            wait_for_database(engine, patience)


__all__ = ["IngestOptions", "Totals", "ingest"]
