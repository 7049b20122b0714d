"""Running jobs: each enabled job reads its file, enriches again what was pending,
feeds its outputs and keeps its retention; its state says how that went.

``vtguardian run`` runs one :class:`JobRunner` in a thread. A job that fails (its
file is missing, its webhook is down) is marked ``failed`` with the reason and tried
again next round; the others go on. Starting and stopping a job is a flag in the
database (``vtguardian job start|stop``, the API), so the runner follows it at its
next round, wherever it was set.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Engine

from vtguardian.clock import utcnow
from vtguardian.config import JobSettings, Settings
from vtguardian.errors import ConfigError, UserError
from vtguardian.iocs import Classifier
from vtguardian.jobs.follow import read_chunk
from vtguardian.jobs.outputs import Outputs
from vtguardian.jobs.pipeline import JobPipeline, effective_flow
from vtguardian.jobs.reenrich import reenrich
from vtguardian.store import jobs as store
from vtguardian.store.engine import run_in_transaction

log = logging.getLogger("vtguardian.jobs")
RETENTION_EVERY_SECONDS = 60.0
HEARTBEAT = 10.0  # seconds; a job without one for a minute is reported stopped


def sync_config_jobs(engine: Engine, settings: Settings) -> None:
    """The ``[[jobs]]`` of the config file into the database (definitions only: what the
    Flows page changed, the counters and the offsets stay)."""
    seen: set[str] = set()
    for job in settings.jobs:
        if job.id in seen:
            raise ConfigError(f"jobs: the id {job.id!r} is used twice")
        seen.add(job.id)
    now = utcnow()

    def work(connection: Any) -> None:
        for job in settings.jobs:
            definition = job.model_dump(mode="json")
            store.save_job(connection, job.id, job.title, "config", definition, now)

    if settings.jobs:
        run_in_transaction(engine, work)


@dataclass
class JobContext:
    """What one job needs between rounds, rebuilt when its definition or flow change."""

    key: bytes
    job: JobSettings
    pipeline: JobPipeline
    outputs: Outputs
    pruned_at: float = 0.0


def context_for(
    settings: Settings, engine: Engine, row: Any, classifier: Classifier, old: JobContext | None
) -> JobContext:
    key = orjson.dumps([row.definition, row.flow])
    if old is not None and old.key == key:
        return old
    job = JobSettings(**row.definition)
    pipeline = JobPipeline(
        settings, engine, job, effective_flow(settings, job, row.flow), classifier
    )
    outputs = Outputs(
        engine,
        job.id,
        job.outputs.file,
        job.outputs.webhook_url,
        job.outputs.timeout_seconds,
        job.pending_timeout_seconds,
        pipeline.flow,
    )
    return JobContext(key, job, pipeline, outputs)


class JobRunner:
    def __init__(
        self, settings: Settings, engine: Engine, classifier: Classifier | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.classifier = classifier or Classifier.from_settings(settings)
        self.contexts: dict[str, JobContext] = {}
        # What each job's row last said, and when: a running job's heartbeat is written
        # every HEARTBEAT_SECONDS, not every round (on SQLite every write waits).
        self._said: dict[str, tuple[str, str | None, float]] = {}

    def round(self) -> int:
        """One round over every job; returns how many events were read or went out."""
        with self.engine.connect() as connection:
            rows = store.load_jobs(connection)
        work = 0
        for row in rows:
            if not row.enabled:
                if row.state != "stopped":
                    self._state(row.id, "stopped", None)
                continue
            try:
                work += self.step(row)
            except (UserError, OSError, ValueError) as exc:
                self._state(row.id, "failed", str(exc)[:255])
            except Exception as exc:  # one job's fault must not stop the others
                log.debug("job %s failed", row.id, exc_info=True)
                self._state(row.id, "failed", f"{type(exc).__name__}: {exc}"[:255])
        return work

    def step(self, row: Any) -> int:
        context = self.contexts[row.id] = context_for(
            self.settings, self.engine, row, self.classifier, self.contexts.get(row.id)
        )
        job = context.job
        work = 0
        if job.input.type != "http" and job.input.path:
            chunk = read_chunk(job.input.path, row.position, row.fingerprint)
            if chunk.lines or chunk.position != row.position:
                events, skipped, _filtered = context.pipeline.parse_lines(chunk.lines)
                context.pipeline.store(
                    events,
                    skipped + chunk.overlong,
                    position=chunk.position,
                    fingerprint=chunk.fingerprint,
                    lag_bytes=chunk.lag_bytes,
                )
                work += len(chunk.lines)
        if reenrich(self.engine, job.id, context.pipeline.flow, context.pipeline.initial_emitted):
            context.pipeline.forget()
        work += context.outputs.emit()
        if time.monotonic() - context.pruned_at > RETENTION_EVERY_SECONDS:
            self.prune(job)
            context.pruned_at = time.monotonic()
        self._state(row.id, "running", None)
        return work

    def prune(self, job: JobSettings) -> int:
        before = utcnow() - timedelta(days=job.retention.days)
        keep = job.retention.max_events
        return run_in_transaction(self.engine, lambda c: store.prune(c, job.id, before, keep))

    def _state(self, job_id: str, state: str, reason: str | None) -> None:
        said = self._said.get(job_id)
        moment = time.monotonic()
        if said is not None and said[:2] == (state, reason) and moment - said[2] < HEARTBEAT:
            return
        self._said[job_id] = (state, reason, moment)
        now = utcnow()
        run_in_transaction(
            self.engine,
            lambda c: store.update_job(c, job_id, state=state, reason=reason, heartbeat_at=now),
        )

    def run(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        """Rounds until ``stop``; a busy job goes again at once, an idle one waits."""
        sync_config_jobs(self.engine, self.settings)
        try:
            while not stop.is_set():
                if not self.round():
                    stop.wait(poll_seconds)
        finally:
            for job_id in self.contexts:
                self._state(job_id, "stopped", None)
