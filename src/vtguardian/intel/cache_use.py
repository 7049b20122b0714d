"""Cache hits that were answered by reading only, recorded later in one write.

The API answers a cached IoC without writing: on SQLite a write would wait for an
ingest's batch transaction, and an answer from the cache must not. The hit still
matters, for the dashboard's cache hit rate and so that an entry in use is not the
first evicted, so it is noted in memory and a background thread writes what has
gathered, many requests in one transaction. If the database is away the hits are
kept and written once it is back; only a killed process loses the few it held.
Enrichment and the command line's lookups count their hits through it too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from vtguardian.clock import utcnow
from vtguardian.store.answers import record_cache_hits
from vtguardian.store.engine import run_in_transaction

log = logging.getLogger(__name__)


class CacheUse:
    def __init__(
        self, engine: Engine, provider: str, retry_seconds: float = 5.0, background: bool = True
    ) -> None:
        """``background`` False leaves every write to :meth:`flush`: the command line
        writes a run's hits once, at its end (and tests drive the writes themselves)."""
        self._engine = engine
        self._background = background
        self._provider = provider
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()  # guards what is pending
        self._writing = threading.Lock()  # one write at a time, in hit order
        self._ids: set[int] = set()
        self._hits = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, ioc_ids: Iterable[int]) -> None:
        """Count one hit for each id (ids may repeat); returns at once."""
        with self._lock:
            for ioc_id in ioc_ids:
                self._ids.add(ioc_id)
                self._hits += 1
            if self._thread is None and self._background:
                self._thread = threading.Thread(
                    target=self._run, name="vtguardian-cache-use", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return self._hits

    def flush(self) -> bool:
        """Write what is pending now; False (and everything kept) if the database failed."""
        with self._writing:
            with self._lock:
                ids, hits = self._ids, self._hits
                self._ids, self._hits = set(), 0
            if not hits:
                return True
            now = utcnow()
            try:
                run_in_transaction(
                    self._engine,
                    lambda c: record_cache_hits(c, self._provider, ids, hits, now),
                )
            except DBAPIError as exc:
                log.warning("cache hits not recorded yet, will retry: %s", exc.orig)
                with self._lock:
                    self._ids |= ids
                    self._hits += hits
                return False
            return True

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if not self.flush():
                time.sleep(self._retry_seconds)
                self._wake.set()
