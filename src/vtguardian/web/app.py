"""The built-in page and its JSON API (FastAPI), on SQLite or MariaDB.

Nothing here comes from the internet: the page's script library, plotly.js, is
served from the plotly package, and the API's Swagger UI from fastapi-offline.
Who may ask for what is decided in ``security``, for every route at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, select
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from vtguardian.actions.feeds import FEEDS, blocklist
from vtguardian.clock import utcnow
from vtguardian.config import Settings
from vtguardian.dashboards.macros import TimeRange
from vtguardian.intel.ioc_intel import ioc_intel
from vtguardian.intel.lookup import budget_from
from vtguardian.iocs import Classifier
from vtguardian.quota import QuotaScheduler
from vtguardian.store.engine import make_engine
from vtguardian.store.entities import find_ioc_ids
from vtguardian.store.resolutions import pivots
from vtguardian.store.schema import actions, clients, reports, sightings, verdicts
from vtguardian.web.api import add_api_routes, row_payload
from vtguardian.web.jobs_api import add_job_routes
from vtguardian.web.jobs_metrics import render_job_metrics
from vtguardian.web.metrics import render_metrics
from vtguardian.web.panel_data import panel_data
from vtguardian.web.security import (
    PAGE_PATH,
    SecurityHeaders,
    allowed_hosts,
    policy_with_inline_scripts,
    session_redirect,
    token_check,
)

RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
TYPES = ["domain", "ip", "url", "file"]
RESOLUTION_WINDOW = timedelta(days=30)  # how far back an IoC's detail pivots
OPENAPI_PATH = "/openapi.json"
_NOT_KNOWN = {
    "detail": "never seen on this network",
    "ioc": {
        "input": "New-Domain.Example.com.",
        "type": "domain",
        "value": "new-domain.example.com",
        "registered_domain": "example.com",
        "eligible": True,
        "reason": None,
    },
}
#: The answers for a value that is no indicator (400) or one never seen (404): the
#: reason, and the value as classified (type, normalised value, eligible, why not).
IOC_DETAIL_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Not an indicator; `ioc.reason` says why."},
    404: {
        "description": "Never seen on this network; `ioc` is the value as classified.",
        "content": {"application/json": {"example": _NOT_KNOWN}},
    },
}


def plotly_path() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _swagger_ui_path() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _here() -> Path:
    return Path(__file__).parent


JAVASCRIPT = "application/javascript"
#: The files the page and the API docs load, by name: a fixed set, so no path from a
#: request ever reaches the filesystem.
ASSETS: dict[str, tuple[str, Callable[[], Path]]] = {
    "plotly.min.js": (JAVASCRIPT, plotly_path),
    "page.js": (JAVASCRIPT, lambda: _here() / "page.js"),
    "page.css": ("text/css", lambda: _here() / "page.css"),
    "jobs.js": (JAVASCRIPT, lambda: _here() / "jobs.js"),
    "jobs.css": ("text/css", lambda: _here() / "jobs.css"),
    "swagger-ui-bundle.js": (JAVASCRIPT, lambda: _swagger_ui_path() / "swagger-ui-bundle.js"),
    "swagger-ui.css": ("text/css", lambda: _swagger_ui_path() / "swagger-ui.css"),
    "favicon.png": ("image/png", lambda: _swagger_ui_path() / "favicon.png"),
}


def _interval(seconds: int) -> str:
    return "5m" if seconds <= 3600 else "1h" if seconds <= 3 * 86400 else "6h"


def create_app(settings: Settings, engine: Engine | None = None, public: bool = False) -> FastAPI:
    """The page, the API, the feeds and /metrics; ``public`` when reachable from other hosts.

    The token check is a dependency of the app itself, so every route, present or
    added later, has it; the Host check and the security headers wrap every answer.
    """
    engine = engine or make_engine(settings.database.url)
    read, write = token_check(settings, public)
    app = FastAPI(
        title="vtguardian",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the token like everything else
        dependencies=[Depends(read)],
    )
    # The last added runs first: headers on every answer, then the Host check.
    app.add_middleware(BodyLimit, limit=settings.web.max_body_bytes)
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings.web), www_redirect=False
    )
    app.add_middleware(SecurityHeaders)
    add_api_routes(app, settings, engine, write)
    add_job_routes(app, settings, engine, write)
    _add_page_routes(app, settings)
    _add_docs_routes(app)
    quota = QuotaScheduler(engine, budget_from(settings))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body = render_metrics(engine, quota, settings.retention) + render_job_metrics(
            engine, settings
        )
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    classifier = Classifier.from_settings(settings)

    @app.get("/feeds/{name}", response_class=PlainTextResponse)
    def feed(name: str) -> PlainTextResponse:
        """Blocklists for Pi-hole, AdGuard Home, Unbound/BIND (RPZ), pfBlockerNG, Suricata."""
        if name not in FEEDS:  # a fixed set of names: no path ever reaches the filesystem
            raise HTTPException(status_code=404, detail=f"no feed {name!r}; try {', '.join(FEEDS)}")
        media_type, render_feed = FEEDS[name]
        return PlainTextResponse(render_feed(blocklist(engine, classifier)), media_type=media_type)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Whether the database answers; open without the token, for health checks."""
        with engine.connect() as connection:
            connection.execute(select(1))
        return {"status": "ok"}

    @app.get("/api/v1/filters")
    def filters() -> dict[str, Any]:
        with engine.connect() as connection:
            ips = connection.execute(
                select(clients.c.ip, clients.c.name)
                .where(clients.c.ip != "")
                .order_by(clients.c.ip)
            ).all()
        return {"ioc_types": TYPES, "clients": [{"ip": ip, "name": name} for ip, name in ips]}

    @app.get("/api/v1/panels")
    def panels_endpoint(
        range_: Annotated[str, Query(alias="range", pattern="^(1h|24h|7d|30d)$")] = "7d",
        threshold: Annotated[float, Query(ge=0, le=1)] = 0.03,
        ioc_type: Annotated[list[str] | None, Query()] = None,
        client: Annotated[list[str] | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        seconds = RANGES[range_]
        end = int(time.time()) + 60
        window = TimeRange(end - seconds, end, _interval(seconds))
        chosen_types = [t for t in (ioc_type or TYPES) if t in TYPES]
        with engine.connect() as connection:
            known = list(connection.execute(select(clients.c.ip)).scalars())
        # Only clients the database knows reach the SQL: anything else matches nothing.
        allowed = set(known)
        chosen_clients = [c for c in client if c in allowed] if client else known
        variables = {
            "threshold": repr(float(threshold)),
            "ioc_type": chosen_types,
            "client": chosen_clients,
        }
        return {
            "range": range_,
            "from": window.start,
            "to": window.end,
            "panels": panel_data(engine, window, variables, settings.virustotal.per_day),
        }

    @app.get("/api/v1/iocs/{value:path}", responses=IOC_DETAIL_RESPONSES)
    def ioc_detail(value: str) -> Any:
        """One IoC, normalised and classified as ``vtguardian ioc`` does. A read only: a
        value never seen is not stored, queued or asked about (that is a lookup)."""
        result = classifier.classify(value)
        classified = result.as_dict()
        if result.type is None or result.value is None:
            return JSONResponse(
                {"detail": f"not an indicator: {result.reason}", "ioc": classified}, 400
            )
        key = (result.type.value, result.value)
        with engine.connect() as connection:
            ioc_id = find_ioc_ids(connection, [key]).get(key)
            if ioc_id is None:
                return JSONResponse(
                    {"detail": "never seen on this network", "ioc": classified}, 404
                )
            verdict = connection.execute(
                select(verdicts).where(verdicts.c.ioc_id == ioc_id)
            ).first()
            history = connection.execute(
                select(
                    reports.c.provider,
                    reports.c.fetched_at,
                    reports.c.verdict,
                    reports.c.ratio,
                    reports.c.malicious,
                    reports.c.total,
                    reports.c.engines,
                    reports.c.decided,
                    reports.c.permalink,
                )
                .where(reports.c.ioc_id == ioc_id)
                .order_by(reports.c.id.desc())
                .limit(50)
            ).all()
            seen_by = connection.execute(
                select(clients.c.ip, clients.c.name, sightings.c.hits, sightings.c.hour)
                .join(clients, clients.c.id == sightings.c.client_id)
                .where(sightings.c.ioc_id == ioc_id)
                .order_by(sightings.c.hour.desc())
                .limit(200)
            ).all()
            done = connection.execute(
                select(actions).where(actions.c.ioc_id == ioc_id).order_by(actions.c.id.desc())
            ).all()
            resolved = pivots(connection, key[0], ioc_id, utcnow() - RESOLUTION_WINDOW)
            intel = ioc_intel(connection, ioc_id, settings)
        return {
            "type": key[0],
            "value": key[1],
            "eligible": result.eligible,
            "reason": result.reason,
            "verdict": row_payload(verdict) if verdict else None,
            "reports": [row_payload(row) for row in history],
            "clients": [row_payload(row) for row in seen_by],
            "actions": [row_payload(row) for row in done],
            "resolutions": resolved,
            **intel,  # threat context, related IoCs, last analysis status
        }

    return app


def _add_page_routes(app: FastAPI, settings: Settings) -> None:
    """The page, and the files it and the docs load."""
    page = resources.files("vtguardian.web").joinpath("page.html").read_text()

    @app.get(PAGE_PATH, response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request, token: str | None = None) -> Response:
        """Opened as ``/?token=...`` off loopback: the cookie, and back to ``/``."""
        if token is not None:
            return session_redirect(request, token, settings)
        return HTMLResponse(page)

    @app.get("/static/{asset}", include_in_schema=False)
    def static_file(asset: str) -> FileResponse:
        if asset not in ASSETS:
            raise HTTPException(status_code=404, detail=f"no file {asset!r}")
        media_type, path = ASSETS[asset]
        return FileResponse(path(), media_type=media_type)


def _add_docs_routes(app: FastAPI) -> None:
    """The OpenAPI document and Swagger UI, both from the app itself: they work offline,
    and Swagger UI's one inline script is allowed by its hash alone."""

    @app.get(OPENAPI_PATH, include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    docs = get_swagger_ui_html(
        openapi_url=OPENAPI_PATH,
        title="vtguardian API",
        swagger_js_url="/static/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui.css",
        swagger_favicon_url="/static/favicon.png",
        oauth2_redirect_url=None,
    ).body.decode()
    policy = policy_with_inline_scripts(docs)

    @app.get("/api/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(docs, headers={"Content-Security-Policy": policy})


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for request bodies over the limit, counted as they arrive (chunked too)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = JSONResponse({"detail": "request body too large"}, status_code=413)
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_large(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await too_large(scope, receive, send)
