"""Who may ask the web app for what, and what every answer carries.

The API, the feeds and the page list every device on the network and everything it
contacted, so off loopback nothing but ``/healthz`` answers without ``web.token``.
Even on loopback, a page on another name that resolves to this machine (DNS
rebinding) must get nothing: only the Host names the server is configured for are
answered. Every answer forbids framing and sniffing, and its Content-Security-Policy
allows no inline script, because every value the page shows was written by someone
on the network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import MutableHeaders
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vtguardian.config import Settings, WebSettings

PAGE_PATH = "/"
SESSION_COOKIE = "vtguardian_session"
#: Answer without the token: health checks (Docker, systemd, a load balancer) carry
#: no secret, and ``{"status": "ok"}`` tells nothing about the network.
OPEN_PATHS = frozenset({"/healthz"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Scripts only from the app's own files. Plotly and Swagger UI set inline styles,
#: which cannot run code, hence ``'unsafe-inline'`` for styles alone.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
Guard = Callable[..., None]
BEARER = HTTPBearer(auto_error=False, description="web.token")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine, from the parsed address
    (``0:0:0:0:0:0:0:1``, ``::ffff:127.0.0.1``) and never its spelling: a name such as
    ``127.0.0.1.nip.io`` resolves wherever its owner likes, so it counts as public."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def host_pattern(name: str) -> str:
    """``name`` as a Host header spells it (IPv6 in brackets, canonical, lower case), so
    that ``0:0:0:0:0:0:0:1`` in the settings matches the ``[::1]`` a browser sends."""
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name.lower()
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def allowed_hosts(web: WebSettings) -> list[str]:
    """The Host names answered: the bind address, localhost and the loopback addresses
    (a rebinding attacker can use none of them), then ``web.allowed_hosts``."""
    names = [web.host, *LOOPBACK_NAMES, *web.allowed_hosts]
    return list(dict.fromkeys(host_pattern(name) for name in names))


def base_url(host: str, port: int) -> str:
    """The address to open for a bind address, IPv6 in brackets."""
    return f"http://{host_pattern(host)}:{port}/"


def session_value(token: str) -> str:
    """What the page's cookie holds: derived from the token, so that the cookie never
    carries the token itself and cannot be replayed as a bearer token for writes."""
    return hmac.new(token.encode(), b"vtguardian page session", hashlib.sha256).hexdigest()


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _unauthorized(also: str = "") -> HTTPException:
    return HTTPException(
        401,
        f"missing or wrong token: send Authorization: Bearer <web.token>{also}",
        {"WWW-Authenticate": "Bearer"},
    )


def token_check(settings: Settings, public: bool) -> tuple[Guard, Guard]:
    """The two guards: ``read``, on every route of the app, needs the token (header or
    the page's cookie) when public; ``write`` always needs the bearer header, which a
    cross-site form or script cannot send."""
    expected = settings.web.token.get_secret_value() if settings.web.token else None

    def bearer_ok(credentials: HTTPAuthorizationCredentials | None) -> bool:
        return (
            expected is not None
            and credentials is not None
            and same_secret(credentials.credentials, expected)
        )

    def read(request: Request, credentials: Bearer) -> None:
        if not public or request.url.path in OPEN_PATHS:
            return
        if expected is None:
            raise HTTPException(403, "off loopback nothing is served until web.token is set")
        cookie = request.cookies.get(SESSION_COOKIE)
        # The page's address is the one place a token may come in the URL: it is traded
        # for the cookie at once, and the browser sent back to the bare address.
        login = request.url.path == PAGE_PATH and same_secret(
            request.query_params.get("token"), expected
        )
        if not (bearer_ok(credentials) or same_secret(cookie, session_value(expected)) or login):
            raise _unauthorized(", or open the page once as /?token=<web.token>")

    def write(credentials: Bearer) -> None:
        if expected is None:
            raise HTTPException(403, "writes are disabled until web.token is set")
        if not bearer_ok(credentials):
            raise _unauthorized()

    return read, write


def session_redirect(request: Request, given: str, settings: Settings) -> RedirectResponse:
    """Back to the page without the token in the address; with the session cookie when
    ``given`` is the token (HttpOnly, SameSite=Strict, Secure over https)."""
    response = RedirectResponse(PAGE_PATH, status_code=303)
    expected = settings.web.token.get_secret_value() if settings.web.token else None
    if expected is not None and same_secret(given, expected):
        response.set_cookie(
            SESSION_COOKIE,
            session_value(expected),
            path=PAGE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def policy_with_inline_scripts(html: str) -> str:
    """The Content-Security-Policy for a page of a library's making that has inline
    scripts (Swagger UI's start-up call): those exact scripts, by hash, and no other."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", html, re.S)
    ]
    return "; ".join(
        " ".join([directive, *hashes]) if directive.startswith("script-src ") else directive
        for directive in CONTENT_SECURITY_POLICY
    )


class SecurityHeaders:
    """nosniff, no framing, no referrer, and the Content-Security-Policy on every answer
    (errors and refusals too); a route may set a stricter or hashed policy itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.policy = "; ".join(CONTENT_SECURITY_POLICY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                headers.setdefault("Content-Security-Policy", self.policy)
            await send(message)

        await self.app(scope, receive, send_with_headers)
