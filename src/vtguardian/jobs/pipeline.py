"""From events to stored, enriched events: one transaction per batch.

A batch's distinct IoCs are resolved once (a warm cache is a dictionary lookup per
field), the events and their IoC rows are written with the counters and, for a
followed file, the offset the batch ends at: a crash resumes from what was
committed, nothing lost and nothing stored twice. IoCs nobody has answered are
queued for the lookup worker, at the top, once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from vtguardian.clock import utcnow
from vtguardian.config import FlowStep, JobSettings, Settings
from vtguardian.intel.flow import VIRUSTOTAL
from vtguardian.iocs import Classifier
from vtguardian.jobs.answers import Answer, JobFlow
from vtguardian.jobs.fields import Atom, FieldReader, job_fields
from vtguardian.jobs.structured import PENDING, worst
from vtguardian.store import jobs as store
from vtguardian.store import queue
from vtguardian.store.answers import count_outcome
from vtguardian.store.engine import run_in_transaction
from vtguardian.store.entities import ensure_iocs, find_ioc_ids

#: How long a known answer is reused without reading the database again.
ANSWER_SECONDS = 30.0
MEMO_LIMIT = 100_000


@dataclass
class BatchResult:
    events: int = 0
    skipped: int = 0
    malicious: int = 0
    pending: int = 0
    queued: int = 0
    first_seq: int = 0
    reasons: list[str] = field(default_factory=list)


def effective_flow(settings: Settings, job: JobSettings, stored: Any) -> list[FlowStep]:
    """The Flows page's order when it changed it, else the job's, else the global flow."""
    if stored:
        return [FlowStep(**step) for step in stored]
    return list(job.flow or settings.flow)


def emitted_mask(job: JobSettings) -> int:
    """The outputs the job does not have count as done from the start."""
    mask = store.OUT_ALL
    if job.outputs.file:
        mask &= ~store.OUT_FILE
    if job.outputs.webhook_url:
        mask &= ~store.OUT_WEBHOOK
    return mask


class JobPipeline:
    """One job's way from events to rows; reused across batches (it memoises)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        job: JobSettings,
        flow: list[FlowStep],
        classifier: Classifier | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.job = job
        self.classifier = classifier or Classifier.from_settings(settings)
        self.flow = JobFlow(settings, self.classifier, flow)
        self.reader = FieldReader(job_fields(job), self._classify)
        self.initial_emitted = emitted_mask(job)
        types = job.input.event_types if job.input.type == "suricata" else []
        self.event_types = frozenset(types)
        self._ids: dict[tuple[str, str], int] = {}
        self._answers: dict[tuple[str, str], tuple[Answer, float]] = {}
        self._queued: set[int] = set()
        self._after_commit: tuple[dict[tuple[str, str], int], list[int]] = ({}, [])

    def _classify(self, raw: str) -> tuple[str, str] | None:
        result = self.classifier.classify(raw)
        if result.eligible and result.type is not None and result.value is not None:
            return (result.type.value, result.value)
        return None

    # --- parsing ---------------------------------------------------------------------

    def parse_lines(self, lines: Iterable[bytes]) -> tuple[list[tuple[dict, bytes]], int, int]:
        """JSON objects of the job's kind, with their bytes; (events, skipped, filtered):
        a line that is no JSON object is counted and skipped; an event of a type the job
        does not keep (a Suricata flow record for an alert job) is filtered out."""
        events = []
        skipped = filtered = 0
        keep = self.event_types
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped += 1
                continue
            if event.__class__ is not dict:
                skipped += 1
                continue
            if keep and event.get("event_type") not in keep:
                filtered += 1
                continue
            events.append((event, line))
        return events, skipped, filtered

    # --- storing ---------------------------------------------------------------------

    def store(
        self,
        events: list[tuple[dict, bytes]],
        skipped: int = 0,
        now: datetime | None = None,
        **job_values: Any,
    ) -> BatchResult:
        """The events, enriched with what is known, in one transaction with
        ``job_values`` (a file's new offset) and the counters."""
        now = now or utcnow()
        atoms = [self.reader.atoms(event) for event, _line in events]
        wanted = {ioc for per_event in atoms for _field, ioc in per_event}
        if wanted - self._ids.keys():
            # Read first: known IoCs need no write (on SQLite a write waits for others).
            with self.engine.connect() as connection:
                self._ids.update(find_ioc_ids(connection, wanted - self._ids.keys()))
        answers = self._known(wanted)
        result = BatchResult(events=len(events), skipped=skipped)

        def work(connection: Connection) -> BatchResult:
            result.malicious = result.pending = 0  # a retried transaction counts afresh
            missing = {ioc: (None, now, now) for ioc in wanted if ioc not in self._ids}
            ids = dict(self._ids)
            if missing:
                ids.update(ensure_iocs(connection, missing))
            unresolved = {ioc: ids[ioc] for ioc in wanted if ioc not in answers}
            if unresolved:
                answers.update(self.flow.resolve(connection, unresolved))
            first = store.reserve_seq(connection, self.job.id, len(events)) if events else 0
            rows, ioc_rows, counts, pending_ids = self._rows(
                events, atoms, answers, ids, first, now, result
            )
            store.insert_events(connection, rows, ioc_rows)
            fresh = [i for i in pending_ids if i not in self._queued]
            if fresh:
                requests = [queue.QueueRequest(i, queue.TIER_ALERT, reason="enrich") for i in fresh]
                queue.enqueue(connection, requests, now)
                count_outcome(connection, VIRUSTOTAL, "cache_miss", now, count=len(fresh))
            store.add_counts(connection, self.job.id, len(events), skipped, counts, **job_values)
            result.first_seq = first
            result.queued = len(fresh)
            self._after_commit = (ids, fresh)
            return result

        run_in_transaction(self.engine, work)
        ids, fresh = self._after_commit
        self._remember(ids, answers)
        self._queued.update(fresh)
        return result

    def _rows(
        self,
        events: list[tuple[dict, bytes]],
        atoms: list[list[Atom]],
        answers: dict[tuple[str, str], Answer | None],
        ids: dict[tuple[str, str], int],
        first: int,
        now: datetime,
        result: BatchResult,
    ) -> tuple[list[tuple], list[tuple], dict[str, list[int]], set[int]]:
        rows: list[tuple] = []
        ioc_rows: list[tuple] = []
        counts: dict[str, list[int]] = {}
        pending_ids: set[int] = set()
        job_id = self.job.id
        emitted = self.initial_emitted
        received = store.stamp(now)
        for offset, ((_event, line), per_event) in enumerate(zip(events, atoms, strict=True)):
            seq = first + offset
            states = []
            pending = 0
            for field_name, ioc in per_event:
                answer = answers.get(ioc)
                ioc_id = ids[ioc]
                if answer is None:
                    state, provider = PENDING, None
                    pending += 1
                    pending_ids.add(ioc_id)
                else:
                    state, provider = answer.verdict, answer.provider
                    for name in answer.answered:
                        counts.setdefault(name, [0, 0])[0] += 1
                    counts.setdefault(provider, [0, 0])[1] += 1
                states.append(state)
                ioc_rows.append((job_id, seq, ioc_id, field_name[:128], state, provider))
            level = worst(states)
            result.malicious += level == "malicious"
            result.pending += pending > 0
            rows.append(
                (
                    job_id,
                    seq,
                    received,
                    level,
                    level == "malicious",
                    min(pending, 32_000),
                    emitted,
                    line.decode(),
                )
            )
        return rows, ioc_rows, counts, pending_ids

    # --- the memo of answers -----------------------------------------------------------

    def _known(self, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], Answer | None]:
        now = time.monotonic()
        known: dict[tuple[str, str], Answer | None] = {}
        for ioc in wanted:
            memo = self._answers.get(ioc)
            if memo is not None and memo[1] > now:
                known[ioc] = memo[0]
        return known

    def _remember(
        self, ids: dict[tuple[str, str], int], answers: dict[tuple[str, str], Answer | None]
    ) -> None:
        if len(self._ids) > MEMO_LIMIT:
            self._ids.clear()
        self._ids.update(ids)
        if len(self._answers) > MEMO_LIMIT:
            self._answers.clear()
        until = time.monotonic() + ANSWER_SECONDS
        for ioc, answer in answers.items():
            if answer is not None:  # a pending IoC is read again each batch
                self._answers[ioc] = (answer, until)

    def forget(self) -> None:
        """Drop the memo of answers (after a re-enrichment, or a changed flow)."""
        self._answers.clear()
