"""What the API, the page and the command line ask of jobs: their status, start and stop,
their flow, events sent over HTTP, and the Event Explorer's lists and details."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Engine

from vtguardian.clock import as_naive_utc, iso_z, utcnow
from vtguardian.config import FlowStep, JobSettings, Settings, describe_validation_error
from vtguardian.errors import UserError
from vtguardian.iocs import Classifier
from vtguardian.jobs.outputs import enriched_events
from vtguardian.jobs.pipeline import BatchResult, JobPipeline, effective_flow
from vtguardian.jobs.structured import PENDING
from vtguardian.store import jobs as store
from vtguardian.store.engine import run_in_transaction
from vtguardian.store.entities import find_ioc_ids

#: Seconds without a runner's round after which a "running" job is reported stopped.
STALE = 60.0
LEVELS = ("malicious", "suspicious", "harmless", "unknown", "pending")


class NoSuchJob(UserError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r} (vtguardian job list)")


def _row(engine: Engine, job_id: str) -> Any:
    with engine.connect() as connection:
        rows = store.load_jobs(connection, job_id)
    if not rows:
        raise NoSuchJob(job_id)
    return rows[0]


def status(engine: Engine, settings: Settings, job_id: str | None = None) -> list[dict[str, Any]]:
    """Each job: definition, state, counts, lag and its flow with answers and decisions."""
    with engine.connect() as connection:
        rows = store.load_jobs(connection, job_id)
        counted = {row.id: store.counts(connection, row.id) for row in rows}
    if job_id is not None and not rows:
        raise NoSuchJob(job_id)
    result = []
    now = utcnow()
    for row in rows:
        job = JobSettings(**row.definition)
        state, reason = row.state, row.reason
        heartbeat = as_naive_utc(row.heartbeat_at)
        if state == "running" and (heartbeat is None or (now - heartbeat).total_seconds() > STALE):
            # Its runner went away without a word (a kill, a demo that ended).
            state, reason = "stopped", f"no runner since {iso_z(heartbeat)}"
        flow_counts = row.flow_counts or {}
        steps = effective_flow(settings, job, row.flow)
        result.append(
            {
                "id": row.id,
                "title": row.title,
                "origin": row.origin,
                "enabled": bool(row.enabled),
                "state": state,
                "reason": reason,
                "input": job.input.model_dump(mode="json"),
                "outputs": {
                    "file": job.outputs.file,
                    "webhook": bool(job.outputs.webhook_url),
                },
                "retention": job.retention.model_dump(mode="json"),
                "events_in": int(row.events_in),
                "skipped": int(row.skipped),
                **counted[row.id],
                "lag_bytes": int(row.lag_bytes),
                "heartbeat_at": iso_z(row.heartbeat_at),
                "flow": [
                    {
                        "provider": step.provider,
                        "enabled": step.enabled,
                        "answers": flow_counts.get(step.provider, [0, 0])[0],
                        "decisions": flow_counts.get(step.provider, [0, 0])[1],
                    }
                    for step in steps
                ],
                "flow_changed": row.flow is not None,
            }
        )
    return result


def save(engine: Engine, data: dict[str, Any]) -> JobSettings:
    """A job defined through the API (the same shape as a ``[[jobs]]`` entry)."""
    try:
        job = JobSettings(**data)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, "job")) from None
    now = utcnow()
    definition = job.model_dump(mode="json")
    run_in_transaction(
        engine,
        lambda c: store.save_job(c, job.id, job.title, "api", definition, now, job.enabled),
    )
    return job


def set_enabled(engine: Engine, job_id: str, enabled: bool) -> None:
    _row(engine, job_id)
    run_in_transaction(engine, lambda c: store.update_job(c, job_id, enabled=enabled))


def set_flow(engine: Engine, job_id: str, steps: list[dict[str, Any]]) -> list[FlowStep]:
    """The job's providers in a new order, each enabled or not; kept in the database."""
    _row(engine, job_id)
    try:
        flow = [FlowStep(**step) for step in steps]
    except (ValidationError, TypeError) as exc:
        detail = describe_validation_error(exc, "flow") if isinstance(exc, ValidationError) else ""
        raise UserError(detail or "flow: a list of {provider, enabled}") from None
    names = [step.provider for step in flow]
    if len(set(names)) != len(names):
        raise UserError("flow: a provider is listed twice")
    stored = [step.model_dump() for step in flow]
    run_in_transaction(engine, lambda c: store.update_job(c, job_id, flow=stored))
    return flow


class Receiver:
    """Events POSTed to a job with an HTTP input; one pipeline per job, rebuilt when the
    job's definition or flow change."""

    def __init__(self, settings: Settings, engine: Engine, classifier: Classifier) -> None:
        self.settings = settings
        self.engine = engine
        self.classifier = classifier
        self._pipelines: dict[str, tuple[bytes, JobPipeline]] = {}
        # Requests run in threads; a pipeline's memo is one writer's at a time.
        self._lock = threading.Lock()

    def receive(self, job_id: str, body: bytes, ndjson: bool) -> BatchResult:
        with self._lock:
            return self._receive(job_id, body, ndjson)

    def _receive(self, job_id: str, body: bytes, ndjson: bool) -> BatchResult:
        row = _row(self.engine, job_id)
        job = JobSettings(**row.definition)
        if job.input.type != "http":
            raise UserError(f"job {job_id!r} reads {job.input.type}, not events over HTTP")
        if not row.enabled:
            raise UserError(f"job {job_id!r} is stopped (vtguardian job start {job_id})")
        key = orjson.dumps([row.definition, row.flow])
        cached = self._pipelines.get(job_id)
        if cached is None or cached[0] != key:
            flow = effective_flow(self.settings, job, row.flow)
            cached = (key, JobPipeline(self.settings, self.engine, job, flow, self.classifier))
            self._pipelines[job_id] = cached
        pipeline = cached[1]
        if ndjson:
            events, skipped, _filtered = pipeline.parse_lines(body.splitlines())
        else:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise UserError("body is not JSON (send application/x-ndjson for NDJSON)") from None
            items = [document] if isinstance(document, dict) else document
            if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
                raise UserError("send an event object or a list of event objects")
            events, skipped, _filtered = pipeline.parse_lines(orjson.dumps(e) for e in items)
        return pipeline.store(events, skipped)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"not a time: {value!r} (ISO 8601)") from None
    return as_naive_utc(moment)


def events(
    engine: Engine,
    settings: Settings,
    classifier: Classifier,
    job_id: str,
    *,
    is_malicious: bool | None = None,
    result: str | None = None,
    ioc: str | None = None,
    field: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The job's events newest first, each with its result and its IoCs."""
    _row(engine, job_id)
    ioc_ids = None
    if ioc:
        item = classifier.classify(ioc)
        key = (item.type.value, item.value) if item.type and item.value else None
        with engine.connect() as connection:
            found = find_ioc_ids(connection, [key]) if key else {}
        ioc_ids = list(found.values())
        if not ioc_ids:
            return []
    with engine.connect() as connection:
        rows = store.find_events(
            connection,
            job_id,
            is_malicious=is_malicious,
            result=result,
            ioc_ids=ioc_ids,
            field=field,
            since=_time(since),
            until=_time(until),
            before_seq=before,
            limit=limit,
        )
        iocs = store.event_iocs(connection, job_id, [row.seq for row in rows])
    by_event: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item in iocs:
        by_event[item.seq].append(
            {
                "field": item.field,
                "type": item.type,
                "value": item.value,
                "state": item.state,
                "provider": item.provider,
            }
        )
    return [
        {
            "seq": row.seq,
            "received_at": iso_z(row.received_at),
            "result": row.result,
            "is_malicious": bool(row.is_malicious),
            "pending": row.pending,
            "summary": _summary(row.raw),
            "iocs": by_event.get(row.seq, []),
        }
        for row in rows
    ]


def _summary(raw: str) -> str:
    """One line to tell events apart: a Suricata signature, an ECS message or action."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(event, dict):
        return ""
    alert = event.get("alert")
    if isinstance(alert, dict) and alert.get("signature"):
        return str(alert["signature"])[:200]
    for key in ("message", "event_type"):
        if isinstance(event.get(key), str):
            return event[key][:200]
    action = event.get("event")
    if isinstance(action, dict) and isinstance(action.get("action"), str):
        return action["action"][:200]
    return ""


def event_detail(engine: Engine, settings: Settings, job_id: str, seq: int) -> dict[str, Any]:
    """One event: Overview (each IoC, its field, verdict, ratio, engines, threat context,
    the provider that decided), Structured (the fields added) and Raw (as received)."""
    row = _row(engine, job_id)
    job = JobSettings(**row.definition)
    classifier = Classifier.from_settings(settings)
    pipeline = JobPipeline(
        settings, engine, job, effective_flow(settings, job, row.flow), classifier
    )
    with engine.connect() as connection:
        event = store.one_event(connection, job_id, seq)
        if event is None:
            raise UserError(f"job {job_id!r} has no event {seq}")
        iocs = store.event_iocs(connection, job_id, [seq])
        answers = pipeline.flow.resolve(connection, {(r.type, r.value): r.ioc_id for r in iocs})
    overview = []
    for item in iocs:
        answer = answers.get((item.type, item.value)) if item.state != PENDING else None
        overview.append(
            {
                "field": item.field,
                "type": item.type,
                "value": item.value,
                "state": item.state,
                "provider": item.provider,
                "verdict": answer.verdict if answer else PENDING,
                "ratio": answer.ratio if answer else None,
                "malicious": answer.malicious if answer else None,
                "total": answer.total if answer else None,
                "engines": list(answer.engines) if answer else [],
                "labels": list(answer.labels) if answer else [],
                "answered_by": list(answer.answered) if answer else [],
            }
        )
    document = enriched_events(engine, job_id, pipeline.flow, [event])[0]
    raw = orjson.loads(event.raw)
    # Exactly what the outputs receive on top of the event.
    added = {k: document[k] for k in ("threat", "vtguardian") if k in document}
    return {
        "seq": seq,
        "received_at": iso_z(event.received_at),
        "result": event.result,
        "is_malicious": bool(event.is_malicious),
        "pending": event.pending,
        "overview": overview,
        "structured": added,
        "raw": raw,
    }
