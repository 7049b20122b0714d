"""The REST API: IoCs, lookups (cache or queue, never waiting), enrichment, alerts, actions.

Writes need the bearer token from ``web.token``; when the app is reachable from
other machines every endpoint does (the checks are in ``security``). Bodies over
``web.max_body_bytes`` are refused with 413 before they are read into memory.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select

from vtguardian.clock import iso_z, utcnow
from vtguardian.config import Settings
from vtguardian.intel.alerts import alert_payload
from vtguardian.intel.cache_use import CacheUse
from vtguardian.intel.enrich import Enricher
from vtguardian.intel.flow import VIRUSTOTAL, Flow
from vtguardian.iocs import Classifier
from vtguardian.store import queue
from vtguardian.store.answers import cached_verdicts, count_outcome
from vtguardian.store.engine import run_in_transaction
from vtguardian.store.entities import find_ioc_ids, find_or_create_iocs
from vtguardian.store.recent import recent_with_ioc
from vtguardian.store.schema import actions, alerts, iocs, verdicts
from vtguardian.web.security import Guard

LEVELS = ("malicious", "suspicious", "harmless", "unknown", "pending")


class LookupRequest(BaseModel):
    values: list[Annotated[str, Field(max_length=4096)]] = Field(min_length=1, max_length=1000)


def _iso(value: Any) -> Any:
    """Times as UTC with their ``Z``, the one form every JSON answer uses."""
    if isinstance(value, datetime):
        return iso_z(value)
    return value.isoformat() if isinstance(value, date) else value


def row_payload(row: Any) -> dict[str, Any]:
    """A database row as a JSON object, for the API and the page alike."""
    return {k: _iso(v) for k, v in row._mapping.items()}


def add_api_routes(app: FastAPI, settings: Settings, engine: Engine, write: Guard) -> None:
    """The REST API on ``app`` itself, not an included router, so that its routes sit in
    the app's one route table with the app's token check (see ``security``)."""
    classifier = Classifier.from_settings(settings)
    cache_use = CacheUse(engine, VIRUSTOTAL)
    app.router.on_shutdown.append(cache_use.flush)

    @app.get("/api/v1/iocs")
    def list_iocs(
        verdict: Annotated[
            str | None, Query(pattern="^(malicious|suspicious|harmless|unknown)$")
        ] = None,
        ioc_type: Annotated[
            str | None, Query(alias="type", pattern="^(domain|ip|url|file)$")
        ] = None,
        q: Annotated[str | None, Query(max_length=255)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> dict[str, Any]:
        query = select(
            iocs.c.type,
            iocs.c.value,
            iocs.c.last_seen,
            verdicts.c.verdict,
            verdicts.c.ratio,
            verdicts.c.malicious,
            verdicts.c.total,
            verdicts.c.checked_at,
        ).outerjoin(verdicts, verdicts.c.ioc_id == iocs.c.id)
        if verdict:
            query = query.where(verdicts.c.verdict == verdict)
        if ioc_type:
            query = query.where(iocs.c.type == ioc_type)
        if q:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(iocs.c.value.like(f"%{escaped}%", escape="\\"))
        query = query.order_by(iocs.c.last_seen.desc(), iocs.c.id).limit(limit).offset(offset)
        with engine.connect() as connection:
            rows = connection.execute(query).all()
        return {
            "items": [row_payload(row) for row in rows],
            "limit": limit,
            "offset": offset,
        }

    @app.post("/api/v1/lookup", dependencies=[Depends(write)])
    def lookup(body: LookupRequest) -> dict[str, Any]:
        """The cached answer, or a place in the queue: this never waits on the quota."""
        now = utcnow()
        results: list[dict[str, Any]] = []
        wanted: dict[tuple[str, str], Any] = {}
        classified = [classifier.classify(value) for value in body.values]
        for item in classified:
            if item.eligible and item.type is not None and item.value is not None:
                wanted[(item.type.value, item.value)] = (item.registered_domain, now, now)

        def answers(connection: Any) -> tuple[dict[tuple[str, str], int], dict[int, Any]]:
            ids = find_ioc_ids(connection, wanted)
            return ids, cached_verdicts(connection, ids.values(), now)

        def work(connection: Any) -> tuple[dict[tuple[str, str], int], dict[int, Any]]:
            ids = find_or_create_iocs(connection, wanted)
            fresh = cached_verdicts(connection, ids.values(), now)
            missing = [i for i in ids.values() if i not in fresh]
            requests = [queue.QueueRequest(i, queue.TIER_ALERT, reason="api") for i in missing]
            queue.enqueue(connection, requests, now)
            if missing:
                count_outcome(connection, VIRUSTOTAL, "cache_miss", now, count=len(missing))
            return ids, fresh

        # All known and cached: a read only, which on SQLite never waits for an ingest.
        with engine.connect() as connection:
            ids, fresh = answers(connection)
        if len(fresh) < len(wanted):
            ids, fresh = run_in_transaction(engine, work)
        # Written by a background thread, so that an answer never waits for a write.
        cache_use.note(ids[key] for key in wanted if ids[key] in fresh)
        for item in classified:
            entry: dict[str, Any] = {
                "input": item.input,
                "type": item.type.value if item.type else None,
                "value": item.value,
                "eligible": item.eligible,
            }
            if not item.eligible:
                entry.update(status="rejected", reason=item.reason)
            else:
                cached = fresh.get(ids[(item.type.value, item.value)])  # type: ignore[union-attr]
                if cached is None:
                    entry.update(status="queued", verdict="pending")
                else:
                    entry.update(
                        status="cache",
                        verdict=cached.verdict,
                        ratio=cached.ratio,
                        malicious=cached.malicious,
                        total=cached.total,
                        engines=cached.engines,
                        last_analysis_date=_iso(cached.analysis_date),
                    )
            results.append(entry)
        return {"results": results}

    @app.post("/api/v1/enrich", dependencies=[Depends(write)])
    async def enrich(request: Request) -> Response:
        """JSON (one event or a list) or NDJSON events in; the same, enriched, out."""
        body = await request.body()
        enricher = Enricher(engine, classifier, Flow(settings, classifier), cache_use=cache_use)
        if "ndjson" in request.headers.get("content-type", ""):
            lines = list(enricher.enrich_lines(body.splitlines()))
            return Response(b"".join(lines), media_type="application/x-ndjson")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise HTTPException(
                400, "body is not JSON (send application/x-ndjson for NDJSON)"
            ) from None
        single = isinstance(document, dict)
        events = [document] if single else document
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise HTTPException(400, "send an event object or a list of event objects")
        enriched = list(enricher.enrich(events))
        return Response(
            orjson.dumps(enriched[0] if single else enriched), media_type="application/json"
        )

    @app.get("/api/v1/alerts")
    def list_alerts(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        return {"items": [alert_payload(row) for row in recent_with_ioc(engine, alerts, limit)]}

    @app.get("/api/v1/actions")
    def list_actions(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        rows = recent_with_ioc(engine, actions, limit)
        return {"items": [row_payload(row) for row in rows]}
