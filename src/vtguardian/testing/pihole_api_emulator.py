"""A local stand-in for the part of Pi-hole v6's REST API that blocking uses.

``POST /api/auth`` with ``{"password"}`` answers a session (``sid``, ``csrf``,
``validity``) or 401; ``DELETE /api/auth`` ends it. With ``X-FTL-SID``:
``GET /api/domains/deny/exact``, ``POST /api/domains/deny/exact`` with
``{"domain", "comment", "groups", "enabled"}`` (201, or 400 ``database_error``
for a duplicate) and ``DELETE /api/domains/deny/exact/{domain}`` (204, or 404).
Shapes and error bodies follow FTL's API specification (domains.yaml, auth.yaml).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from vtguardian.testing.server import BackgroundServer, json_response

PIHOLE_PASSWORD = "pihole-emulator-password"


def _error(status: int, key: str, message: str, hint: str | None = None) -> web.Response:
    return json_response(
        status, {"error": {"key": key, "message": message, "hint": hint}, "took": 0.0001}
    )


class PiholeApiEmulator:
    def __init__(self, password: str = PIHOLE_PASSWORD, max_sessions: int = 16) -> None:
        self.password = password
        self.max_sessions = max_sessions
        self.sessions: set[str] = set()
        self.denied: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._next_id = 1

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_post("/api/auth", self._login)
        application.router.add_delete("/api/auth", self._logout)
        application.router.add_get("/api/domains/deny/exact", self._list)
        application.router.add_post("/api/domains/deny/exact", self._add)
        application.router.add_delete("/api/domains/deny/exact/{domain}", self._delete)
        return application

    def _authorised(self, request: web.Request) -> bool:
        sid = request.headers.get("X-FTL-SID") or request.query.get("sid")
        return sid in self.sessions

    async def _login(self, request: web.Request) -> web.Response:
        self.calls.append(("POST", "/api/auth"))
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "bad_request", "Invalid JSON in request body")
        if not isinstance(body, dict) or body.get("password") != self.password:
            session = {"valid": False, "totp": False, "sid": None, "validity": -1,
                       "message": "password incorrect"}  # fmt: skip
            return json_response(401, {"session": session, "took": 0.0001})
        if len(self.sessions) >= self.max_sessions:
            return _error(429, "api_seats_exceeded", "API seats exceeded")
        sid = secrets.token_urlsafe(16)
        self.sessions.add(sid)
        session = {"valid": True, "totp": False, "sid": sid, "csrf": secrets.token_urlsafe(16),
                   "validity": 1800, "message": "app-password correct"}  # fmt: skip
        return json_response(200, {"session": session, "took": 0.0001})

    async def _logout(self, request: web.Request) -> web.Response:
        self.calls.append(("DELETE", "/api/auth"))
        sid = request.headers.get("X-FTL-SID")
        if sid not in self.sessions:
            return _error(401, "unauthorized", "Unauthorized")
        self.sessions.discard(sid)
        return web.Response(status=204)

    async def _list(self, request: web.Request) -> web.Response:
        self.calls.append(("GET", "/api/domains/deny/exact"))
        if not self._authorised(request):
            return _error(401, "unauthorized", "Unauthorized")
        return json_response(200, {"domains": list(self.denied.values()), "took": 0.0001})

    async def _add(self, request: web.Request) -> web.Response:
        self.calls.append(("POST", "/api/domains/deny/exact"))
        if not self._authorised(request):
            return _error(401, "unauthorized", "Unauthorized")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "bad_request", "Invalid JSON in request body")
        domain = body.get("domain") if isinstance(body, dict) else None
        if not isinstance(domain, str) or not domain:
            return _error(400, "bad_request", 'No "domain" string in body data')
        if domain in self.denied:
            hint = "UNIQUE constraint failed: domainlist.domain, domainlist.type"
            return _error(400, "database_error", "Could not add to gravity database", hint)
        now = int(time.time())
        entry = {"domain": domain, "unicode": domain, "type": "deny", "kind": "exact",
                 "comment": body.get("comment"), "groups": body.get("groups") or [0],
                 "enabled": bool(body.get("enabled", True)), "id": self._next_id,
                 "date_added": now, "date_modified": now}  # fmt: skip
        self._next_id += 1
        self.denied[domain] = entry
        processed = {"success": [{"item": domain}], "errors": []}
        return json_response(201, {"domains": [entry], "processed": processed, "took": 0.0001})

    async def _delete(self, request: web.Request) -> web.Response:
        self.calls.append(("DELETE", "/api/domains/deny/exact"))
        if not self._authorised(request):
            return _error(401, "unauthorized", "Unauthorized")
        domain = request.match_info["domain"]
        if self.denied.pop(domain, None) is None:
            return _error(404, "not_found", "Item not found")
        return web.Response(status=204)


class PiholeApiServer(BackgroundServer):
    def __init__(self, emulator: PiholeApiEmulator, port: int = 0) -> None:
        super().__init__(emulator.app, port)
        self.emulator = emulator
