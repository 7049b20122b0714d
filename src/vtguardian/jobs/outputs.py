"""A job's outputs: an NDJSON file and an HTTP webhook, each given an event once.

An event goes out when its IoCs are decided, or when ``pending_timeout_seconds``
ran out (then with what is known). The file's length after each write is stored
with the events' marks in one transaction; a crash in between leaves the file
longer than recorded, and the next round cuts it back and writes those events
again, so each appears once. The webhook gets a batch as NDJSON; each event
carries ``vtguardian.job`` (job id and event number) so a receiver can drop a
batch it gets twice after a lost answer; a failed POST is tried again after a
pause (1, 2, 4 ... 60 s).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine

from vtguardian.clock import iso_z, utcnow
from vtguardian.errors import UserError
from vtguardian.jobs.answers import Answer, JobFlow
from vtguardian.jobs.structured import PENDING, added_fields, merged
from vtguardian.store import jobs as store
from vtguardian.store.engine import run_in_transaction

BATCH = 2000


def enriched_events(
    engine: Engine, job_id: str, flow: JobFlow, rows: list[Any]
) -> list[dict[str, Any]]:
    """The events of ``rows`` (seq, raw) with the fields the job adds, as output."""
    with engine.connect() as connection:
        iocs = store.event_iocs(connection, job_id, [row.seq for row in rows])
        answers = flow.resolve(connection, {(r.type, r.value): r.ioc_id for r in iocs})
    atoms: dict[int, list[tuple[str, tuple[str, str]]]] = defaultdict(list)
    states: dict[tuple[int, tuple[str, str]], str] = {}
    for row in iocs:
        atoms[row.seq].append((row.field, (row.type, row.value)))
        states[(row.seq, (row.type, row.value))] = row.state
    documents = []
    for row in rows:
        # The stored state rules: an IoC still pending in the event is shown pending.
        known: dict[tuple[str, str], Answer | None] = {
            ioc: (None if states[(row.seq, ioc)] == PENDING else answers.get(ioc))
            for _field, ioc in atoms[row.seq]
        }
        added = added_fields(job_id, row.seq, atoms[row.seq], known, iso_z(row.received_at))
        documents.append(merged(row.raw, added))
    return documents


class Outputs:
    """Hands a job's ready events to its file and its webhook."""

    def __init__(
        self,
        engine: Engine,
        job_id: str,
        file: str | None,
        webhook_url: str | None,
        timeout: float,
        pending_timeout: float,
        flow: JobFlow,
    ) -> None:
        self.engine = engine
        self.job_id = job_id
        self.file = Path(file) if file else None
        self.webhook_url = webhook_url
        self.timeout = timeout
        self.pending_timeout = pending_timeout
        self.flow = flow
        self._failures = 0
        self._retry_at = 0.0  # monotonic: a webhook that failed waits before the next try

    def emit(self, now: datetime | None = None) -> int:
        """One round: returns how many events went to an output."""
        now = now or utcnow()
        cutoff = now - timedelta(seconds=self.pending_timeout)
        sent = 0
        if self.file is not None:
            sent += self._to_file(cutoff)
        if self.webhook_url and time.monotonic() >= self._retry_at:
            sent += self._to_webhook(cutoff)
        return sent

    def _ready(self, bit: int, cutoff: datetime) -> list[Any]:
        with self.engine.connect() as connection:
            return store.ready_events(connection, self.job_id, bit, cutoff, BATCH)

    def _to_file(self, cutoff: datetime) -> int:
        assert self.file is not None
        with self.engine.connect() as connection:
            job = store.load_jobs(connection, self.job_id)[0]
        rows = self._ready(store.OUT_FILE, cutoff)
        if not rows:
            return 0
        documents = enriched_events(self.engine, self.job_id, self.flow, rows)
        data = b"".join(orjson.dumps(doc) + b"\n" for doc in documents)
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with self.file.open("ab") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size > job.output_position:  # written, then a crash before recording
                    handle.truncate(job.output_position)
                    size = job.output_position
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                end = size + len(data)
        except OSError as exc:
            raise UserError(f"output file {self.file}: {exc.strerror}") from None
        seqs = [row.seq for row in rows]

        def work(connection: Any) -> None:
            store.mark_emitted(connection, self.job_id, seqs, store.OUT_FILE)
            store.update_job(connection, self.job_id, output_position=end)

        run_in_transaction(self.engine, work)
        return len(rows)

    def _to_webhook(self, cutoff: datetime) -> int:
        assert self.webhook_url is not None
        rows = self._ready(store.OUT_WEBHOOK, cutoff)
        if not rows:
            return 0
        documents = enriched_events(self.engine, self.job_id, self.flow, rows)
        body = b"".join(orjson.dumps(doc) + b"\n" for doc in documents)
        try:
            response = httpx.post(
                self.webhook_url,
                content=body,
                headers={"Content-Type": "application/x-ndjson"},
                timeout=self.timeout,
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # 1, 2, 4 ... 60 seconds between tries; nothing is marked, nothing lost.
            self._failures += 1
            delay = min(60.0, 2.0 ** (self._failures - 1))
            self._retry_at = time.monotonic() + delay
            raise UserError(
                f"webhook: {type(exc).__name__}; tried again in {delay:.0f} s"
            ) from None
        self._failures = 0
        seqs = [row.seq for row in rows]
        run_in_transaction(
            self.engine,
            lambda c: store.mark_emitted(c, self.job_id, seqs, store.OUT_WEBHOOK),
        )
        return len(rows)
