"""The jobs API: status, definitions, start and stop, the flow, events in over HTTP
(Logstash, Vector, Fluent Bit) and the Event Explorer's reads.

Reads follow the app's token rule; every change and every event sent needs the
bearer token. A job's faults a client can cause are one line with 400/404/409.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from vtguardian.config import Settings
from vtguardian.errors import UserError
from vtguardian.iocs import Classifier
from vtguardian.jobs import service
from vtguardian.web.security import Guard


class FlowChange(BaseModel):
    flow: list[dict[str, Any]] = Field(min_length=1, max_length=16)


def _answer(exc: UserError) -> HTTPException:
    if isinstance(exc, service.NoSuchJob):
        return HTTPException(404, str(exc))
    message = str(exc)
    return HTTPException(409 if "is stopped" in message else 400, message)


def add_job_routes(app: FastAPI, settings: Settings, engine: Engine, write: Guard) -> None:
    classifier = Classifier.from_settings(settings)
    receiver = service.Receiver(settings, engine, classifier)

    @app.get("/api/v1/jobs")
    def list_jobs() -> dict[str, Any]:
        """Each job: state (running, stopped, failed with its reason), counts, lag, flow."""
        return {"items": service.status(engine, settings)}

    @app.post("/api/v1/jobs", dependencies=[Depends(write)])
    def define_job(body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a job: the same fields as a ``[[jobs]]`` entry."""
        try:
            job = service.save(engine, body)
            return service.status(engine, settings, job.id)[0]
        except UserError as exc:
            raise _answer(exc) from None

    @app.get("/api/v1/jobs/{job_id}")
    def show_job(job_id: str) -> dict[str, Any]:
        try:
            return service.status(engine, settings, job_id)[0]
        except UserError as exc:
            raise _answer(exc) from None

    @app.post("/api/v1/jobs/{job_id}/events", dependencies=[Depends(write)])
    async def receive_events(job_id: str, request: Request) -> dict[str, Any]:
        """Events for a job with an HTTP input: JSON (an event or a list) or NDJSON
        (``Content-Type: application/x-ndjson``). Stored enriched with what is known."""
        body = await request.body()
        ndjson = "ndjson" in request.headers.get("content-type", "")
        try:
            # The database work off the event loop, as FastAPI runs a plain route.
            result = await run_in_threadpool(receiver.receive, job_id, body, ndjson)
        except UserError as exc:
            raise _answer(exc) from None
        return {
            "accepted": result.events,
            "skipped": result.skipped,
            "malicious": result.malicious,
            "pending": result.pending,
            "first_event": result.first_seq or None,
        }

    @app.get("/api/v1/jobs/{job_id}/events")
    def list_events(
        job_id: str,
        is_malicious: bool | None = None,
        result: Annotated[
            str | None, Query(pattern="^(malicious|suspicious|harmless|unknown|pending)$")
        ] = None,
        ioc: Annotated[str | None, Query(max_length=4096)] = None,
        field: Annotated[str | None, Query(max_length=128)] = None,
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
        before: Annotated[int | None, Query(ge=1)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """The job's events newest first; ``before`` (an event number) pages back."""
        try:
            items = service.events(
                engine, settings, classifier, job_id, is_malicious=is_malicious,
                result=result, ioc=ioc, field=field, since=since, until=until,
                before=before, limit=limit,
            )  # fmt: skip
        except UserError as exc:
            raise _answer(exc) from None
        return {"items": items}

    @app.get("/api/v1/jobs/{job_id}/events/{seq}")
    def show_event(job_id: str, seq: int) -> dict[str, Any]:
        """One event: its Overview, Structured and Raw tabs."""
        try:
            return service.event_detail(engine, settings, job_id, seq)
        except UserError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.post("/api/v1/jobs/{job_id}/start", dependencies=[Depends(write)])
    def start_job(job_id: str) -> dict[str, Any]:
        return _enable(job_id, True)

    @app.post("/api/v1/jobs/{job_id}/stop", dependencies=[Depends(write)])
    def stop_job(job_id: str) -> dict[str, Any]:
        return _enable(job_id, False)

    def _enable(job_id: str, enabled: bool) -> dict[str, Any]:
        try:
            service.set_enabled(engine, job_id, enabled)
            return service.status(engine, settings, job_id)[0]
        except UserError as exc:
            raise _answer(exc) from None

    @app.post("/api/v1/jobs/{job_id}/flow", dependencies=[Depends(write)])
    def change_flow(job_id: str, body: FlowChange) -> dict[str, Any]:
        """The job's providers in order, each enabled or not; kept across restarts."""
        try:
            service.set_flow(engine, job_id, body.flow)
            return service.status(engine, settings, job_id)[0]
        except UserError as exc:
            raise _answer(exc) from None
