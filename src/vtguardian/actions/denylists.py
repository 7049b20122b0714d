"""Pi-hole's exact deny list, reached either way Pi-hole offers.

``GravityDenyList`` writes ``gravity.db`` directly (Pi-hole v5 and v6 on the same
host; a reload command makes FTL pick the change up). ``ApiDenyList`` talks to
Pi-hole v6's REST API (``/api/auth``, ``/api/domains/deny/exact``), which works
from another host and applies changes at once. Both list entries with their
comment, so the sync can tell vtguardian's entries from the user's own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import httpx

from vtguardian.config import PiholeSettings
from vtguardian.errors import InvalidInput, UserError

DENY_EXACT = 1  # domainlist.type in gravity.db


class DenyList(Protocol):
    def entries(self) -> dict[str, str | None]:
        """Every exact deny entry and its comment."""

    def apply(self, add: dict[str, str], remove: list[str]) -> None:
        """Add ``domain -> comment`` entries and remove domains, as one change."""

    def close(self) -> None: ...


class GravityDenyList:
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise InvalidInput(f"Pi-hole database {path} does not exist (pihole.gravity_db)")
        self.connection = sqlite3.connect(path, timeout=30)
        self.connection.execute("PRAGMA foreign_keys = ON")

    def entries(self) -> dict[str, str | None]:
        rows = self.connection.execute(
            "SELECT domain, comment FROM domainlist WHERE type = ?", (DENY_EXACT,)
        )
        return dict(rows)

    def apply(self, add: dict[str, str], remove: list[str]) -> None:
        with self.connection:  # one transaction: Pi-hole never sees half a change
            for domain, comment in add.items():
                self.connection.execute(
                    "INSERT INTO domainlist (type, domain, enabled, comment) VALUES (?, ?, 1, ?)",
                    (DENY_EXACT, domain, comment),
                )
            for domain in remove:
                self.connection.execute(
                    "DELETE FROM domainlist WHERE type = ? AND domain = ?", (DENY_EXACT, domain)
                )

    def close(self) -> None:
        self.connection.close()


class ApiDenyList:
    """One API session per sync, closed again: Pi-hole has few API seats."""

    def __init__(self, url: str, password: str, timeout: float = 15.0) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        try:
            response = self.client.post("/api/auth", json={"password": password})
        except httpx.HTTPError as exc:
            self.client.close()
            raise UserError(f"cannot reach the Pi-hole API at {url}: {exc}") from None
        session = _json(response).get("session") or {}
        if response.status_code != 200 or not session.get("valid"):
            self.client.close()
            reason = session.get("message") or _reason(response)
            raise UserError(f"the Pi-hole API at {url} refused the login: {reason}")
        self.client.headers["X-FTL-SID"] = session["sid"]

    def entries(self) -> dict[str, str | None]:
        response = self._call("GET", "/api/domains/deny/exact")
        return {item["domain"]: item.get("comment") for item in _json(response)["domains"]}

    def apply(self, add: dict[str, str], remove: list[str]) -> None:
        for domain, comment in add.items():
            body = {"domain": domain, "comment": comment, "groups": [0], "enabled": True}
            self._call("POST", "/api/domains/deny/exact", json=body)
        for domain in remove:
            self._call("DELETE", f"/api/domains/deny/exact/{quote(domain, safe='')}", missing=True)

    def close(self) -> None:
        try:
            self.client.delete("/api/auth")  # free the seat
        except httpx.HTTPError:
            pass
        finally:
            self.client.close()

    def _call(self, method: str, path: str, missing: bool = False, **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UserError(f"Pi-hole API {method} {path}: {exc}") from None
        if response.status_code >= 400 and not (missing and response.status_code == 404):
            raise UserError(f"Pi-hole API {method} {path}: {_reason(response)}")
        return response


def _json(response: httpx.Response) -> dict:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _reason(response: httpx.Response) -> str:
    error = _json(response).get("error") or {}
    text = " ".join(str(p) for p in (error.get("message"), error.get("hint")) if p)
    return f"HTTP {response.status_code}" + (f" {text}" if text else "")


def open_deny_list(config: PiholeSettings) -> DenyList:
    """The REST API when ``pihole.api_url`` is set, else ``gravity.db``."""
    if config.api_url:
        if config.api_password is None:
            raise InvalidInput("pihole.api_url is set but pihole.api_password is not")
        return ApiDenyList(config.api_url, config.api_password.get_secret_value())
    return GravityDenyList(config.gravity_db)
