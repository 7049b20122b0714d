"""Pi-hole's query database as a source: read by query id, stored batch by batch.

The database is not a log file: there is no line to split and nothing rotates.
Its position is the last query id stored, committed with the rows it produced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine

from vtguardian.ingest import offsets
from vtguardian.ingest.offsets import Offset
from vtguardian.ingest.prepare import prepare
from vtguardian.ingest.totals import Totals
from vtguardian.ingest.writer import store
from vtguardian.iocs import Classifier
from vtguardian.sources.pihole_ftl import BATCH_ROWS, query_batches

SOURCE_KEY = "pihole-ftl"


def ingest_ftl(
    engine: Engine,
    classifier: Classifier,
    path: str,
    totals: Totals,
    on_progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    batch_rows: int = BATCH_ROWS,
) -> None:
    """Store the queries added since the last read; a stop ends it after a batch."""
    stored = offsets.load(engine, SOURCE_KEY, path) or Offset(last_id=0)
    for batch, last_id in query_batches(path, stored.last_id or 0, batch_rows):

        def checkpoint(db: Connection, last_id: int = last_id) -> None:
            offsets.save(db, SOURCE_KEY, path, Offset(last_id=last_id), None)

        store(engine, prepare(batch, classifier), totals, checkpoint)
        if on_progress is not None:
            on_progress(batch.lines)
        if stop is not None and stop.is_set():
            return
