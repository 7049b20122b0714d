"""A local stand-in for the AlienVault OTX endpoint vtguardian uses.

``GET /api/v1/indicators/{section}/{value}/general`` with ``X-OTX-API-KEY``;
answers ``{"indicator", "type", "pulse_info": {"count", "pulses": [...]}}``,
403 without a valid key, and logs every call. The value is one percent-encoded
path segment, matched on the raw path as sent; any other request is answered
404 and kept in ``stray``, so a test sees where a crafted value led a client.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from aiohttp import web

from vtguardian.testing.server import BackgroundServer, json_response

OTX_KEY = "otx-emulator-key"


class OtxEmulator:
    def __init__(self, pulses: dict[str, int] | None = None, key: str = OTX_KEY) -> None:
        self.pulses = dict(pulses or {})
        self.key = key
        self.calls: list[tuple[str, str]] = []
        self.stray: list[str] = []  # raw paths of requests for anything else
        self.fail = False

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", self._general)
        return application

    async def _general(self, request: web.Request) -> web.Response:
        raw = request.raw_path
        found = _INDICATOR.fullmatch(raw)
        if found is None or request.method != "GET":
            self.stray.append(raw)
            return json_response(404, {"detail": "Not found."})
        if request.headers.get("X-OTX-API-KEY") != self.key:
            return json_response(403, {"detail": "Authentication credentials were not provided."})
        section, value = unquote(found["section"]), unquote(found["value"])
        self.calls.append((section, value))
        if self.fail:
            return json_response(502, {"detail": "Bad gateway"})
        count = self.pulses.get(value, 0)
        pulses = [{"id": f"p{n}", "name": f"Campaign {n} ({value})"} for n in range(count)]
        return json_response(
            200,
            {"indicator": value, "type": section, "pulse_info": {"count": count, "pulses": pulses}},
        )


_INDICATOR = re.compile(r"/api/v1/indicators/(?P<section>[^/?#]+)/(?P<value>[^/?#]+)/general")


class OtxServer(BackgroundServer):
    """The OTX emulator on a free loopback port in a background thread."""

    def __init__(self, emulator: OtxEmulator) -> None:
        super().__init__(emulator.app)
        self.emulator = emulator
