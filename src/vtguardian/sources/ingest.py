"""``vtguardian ingest``: the right reader and parser for each source, once or following."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from vtguardian.config import FollowedSource
from vtguardian.errors import InvalidInput
from vtguardian.iocs import Classifier
from vtguardian.sources.base import LineParser
from vtguardian.sources.batch import Totals
from vtguardian.sources.dnsmasq import DnsmasqParser
from vtguardian.sources.ecs import DEFAULT_FIELDS, EcsParser
from vtguardian.sources.files import FileReader
from vtguardian.sources.pihole_ftl import ingest_ftl
from vtguardian.sources.plain import PlainParser
from vtguardian.sources.suricata import SuricataParser
from vtguardian.sources.zeek import ZeekParser
from vtguardian.store.engine import is_disconnect, wait_for_database

SOURCES = ("pihole-ftl", "pihole-log", "dnsmasq", "suricata", "zeek", "ecs", "plain")


def parser_factory(
    source: str, fields: Sequence[str] = (), flows: bool = False
) -> Callable[[str], LineParser]:
    """A new parser for each file (``path`` decides the Zeek log kind and the log year)."""
    if source in ("pihole-log", "dnsmasq"):
        label = "pihole" if source == "pihole-log" else "dnsmasq"
        return lambda path: DnsmasqParser(label, _modified(path))
    if source == "suricata":
        return lambda _path: SuricataParser(flows=flows)
    if source == "zeek":
        return lambda path: ZeekParser(path)
    if source == "ecs":
        chosen = tuple(fields) or DEFAULT_FIELDS
        return lambda _path: EcsParser(chosen)
    if source == "plain":
        return lambda _path: PlainParser()
    raise InvalidInput(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")


def _modified(path: str) -> datetime:
    try:
        return datetime.fromtimestamp(os.stat(path).st_mtime)
    except OSError:
        return datetime.now()


def ingest_configured(
    engine: Engine,
    classifier: Classifier,
    jobs: Sequence[FollowedSource],
    follow: bool = False,
    stop: threading.Event | None = None,
    batch_lines: int | None = None,
    poll_seconds: float = 0.5,
    on_progress: Callable[[int], None] | None = None,
    parallel_min_bytes: int | None = None,
    patience: float = 600.0,
) -> Totals:
    """Several sources at once: one thread each when following, in turn otherwise."""
    stop = stop or threading.Event()
    results: list[Totals] = []
    errors: list[BaseException] = []

    def one(job: FollowedSource) -> None:
        try:
            results.append(
                ingest_paths(
                    engine,
                    classifier,
                    job.source,
                    [job.path],
                    fields=job.fields,
                    flows=job.flows,
                    follow=follow,
                    stop=stop,
                    poll_seconds=poll_seconds,
                    batch_lines=batch_lines,
                    on_progress=on_progress,
                    parallel_min_bytes=parallel_min_bytes,
                    patience=patience,
                )
            )
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    if follow and len(jobs) > 1:
        threads = [threading.Thread(target=one, args=(job,), daemon=True) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    else:
        for job in jobs:
            if not follow and stop.is_set():  # a one-off ingest asked to stop (SIGTERM)
                break
            one(job)
    if errors:
        raise errors[0]
    total = Totals()
    for part in results:
        total.add(part)
    return total


def ingest_paths(
    engine: Engine,
    classifier: Classifier,
    source: str,
    paths: Sequence[str],
    fields: Sequence[str] = (),
    flows: bool = False,
    follow: bool = False,
    stop: threading.Event | None = None,
    poll_seconds: float = 0.5,
    batch_lines: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    parallel_min_bytes: int | None = None,
    patience: float = 600.0,
) -> Totals:
    """Ingest every path once, or keep following them until ``stop`` is set; wait up
    to ``patience`` seconds for a database that went away.

    A one-off ingest stops at ``stop`` too, after the batch it is storing, whose
    offset is stored with it: the next ingest resumes exactly there. A follower
    reads what was written since its last poll before it stops.
    """
    totals = Totals()
    for path in paths:
        if not follow and not os.path.exists(path):
            raise InvalidInput(f"{path}: no such file")
    if source == "pihole-ftl":
        while True:
            for path in paths:
                _surviving_restarts(
                    engine,
                    patience,
                    lambda p=path: ingest_ftl(
                        engine, classifier, p, totals, on_progress=on_progress
                    ),
                )
            if not follow or _wait(stop, poll_seconds):
                return totals
    reader = FileReader(
        engine,
        classifier,
        source,
        parser_factory(source, fields, flows),
        totals,
        **({"batch_lines": batch_lines} if batch_lines else {}),
        **({"parallel_min_bytes": parallel_min_bytes} if parallel_min_bytes is not None else {}),
        on_progress=on_progress,
        stop=None if follow else stop,
    )
    while True:
        for path in paths:
            if reader.stopping():
                break
            _surviving_restarts(engine, patience, lambda p=path: reader.read(p, final=not follow))
        if not follow:
            return totals
        if _wait(stop, poll_seconds):
            # Asked to stop: take in what was written since the last poll, then go.
            for path in paths:
                _surviving_restarts(engine, patience, lambda p=path: reader.read(p, final=False))
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


def _wait(stop: threading.Event | None, seconds: float) -> bool:
    """Sleep between polls; True when it is time to stop."""
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)
