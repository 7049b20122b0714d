"""VirusTotal through the official client, every outcome mapped to what we do next.

=========================================  ==========================================
what happened                              outcome
=========================================  ==========================================
200 with an object                         :class:`VtAnswer` (found)
404 ``NotFoundError``                      :class:`VtAnswer` (not found -> unknown)
401 ``WrongCredentialsError`` and kin      :class:`KeyRejected`: stop, tell the user
429 ``QuotaExceededError``                 :class:`QuotaRefused`: pause every worker
5xx, timeout, dropped, truncated, odd      :class:`TryLater`: retry with backoff
400 ``InvalidArgumentError``               :class:`Unanswerable`: record, never retry
=========================================  ==========================================

The API key lives only inside the vt-py client; no message built here contains it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import vt

from vtguardian import __version__
from vtguardian.clock import provider_date
from vtguardian.errors import UserError
from vtguardian.iocs import IocType

GUI = "https://www.virustotal.com/gui"
_PATHS = {
    IocType.DOMAIN: ("/domains/{}", "domain"),
    IocType.IP: ("/ip_addresses/{}", "ip-address"),
    IocType.URL: ("/urls/{}", "url"),
    IocType.FILE: ("/files/{}", "file"),
}
_AUTH_CODES = {"WrongCredentialsError", "AuthenticationRequiredError", "ForbiddenError"}
_QUOTA_CODES = {"QuotaExceededError", "TooManyRequestsError"}
_PERMANENT_CODES = {"InvalidArgumentError", "BadRequestError", "UnsupportedContentError"}


class KeyRejected(UserError):
    """VirusTotal refused the key: nothing will work until the user fixes it."""

    exit_code = 2


class QuotaRefused(Exception):
    """429: the key is over a budget (ours, or shared with another tool)."""


class TryLater(Exception):
    """A transient failure: the same request may well succeed later."""


class Unanswerable(Exception):
    """VirusTotal will never answer this value (malformed for it): record and move on."""


@dataclass
class VtAnswer:
    found: bool
    stats: dict[str, int] | None = None
    analysis_date: datetime | None = None
    malicious_engines: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    reputation: int | None = None
    popularity_rank: int | None = None
    permalink: str | None = None
    raw: dict[str, Any] | None = None


def api_path(kind: IocType, value: str) -> str:
    """The object's path: its id as one path segment, whatever the value holds.

    Normalised domains, addresses and hashes hold nothing to escape and a URL's id
    is unpadded base64url, but the id is percent-encoded anyway, so no value can
    add a segment, a query or a fragment to a request (or a ``{}`` to vt-py's path
    template). A dot is the one character that encoding cannot guard (the HTTP
    client decodes ``%2E``), so an id of dots alone is refused.
    """
    template, _ = _PATHS[kind]
    identifier = vt.url_id(value) if kind is IocType.URL else value
    if not identifier.strip("."):
        raise ValueError(f"not an object id: {identifier!r}")
    return template.format(quote(identifier, safe=""))


def permalink(kind: IocType, object_id: str) -> str:
    return f"{GUI}/{_PATHS[kind][1]}/{object_id}"


def parse_object(kind: IocType, document: Any) -> VtAnswer:
    """Pull what we store out of an API v3 object; a wrong shape is a transient fault."""
    try:
        return _parse_object(kind, document)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise TryLater("VirusTotal answered with an unexpected shape") from None


def _parse_object(kind: IocType, document: Any) -> VtAnswer:
    data = document["data"]
    attributes = data["attributes"]
    stats = {str(k): int(v) for k, v in attributes["last_analysis_stats"].items()}
    object_id = str(data["id"])
    results = attributes.get("last_analysis_results") or {}
    engines = sorted(
        str(name)
        for name, result in results.items()
        if isinstance(result, dict) and result.get("category") == "malicious"
    )
    labels: list[str] = []
    categories = attributes.get("categories")
    if isinstance(categories, dict):
        labels.extend(str(v) for v in categories.values())
    for key in ("tags", "threat_names"):
        values = attributes.get(key)
        if isinstance(values, list):
            labels.extend(str(v) for v in values)
    ranks = attributes.get("popularity_ranks")
    rank_values = [
        int(item["rank"])
        for item in (ranks.values() if isinstance(ranks, dict) else [])
        if isinstance(item, dict) and isinstance(item.get("rank"), int)
    ]
    date = attributes.get("last_analysis_date")
    reputation = attributes.get("reputation")
    return VtAnswer(
        found=True,
        stats=stats,
        analysis_date=provider_date(date),
        malicious_engines=engines,
        labels=sorted(set(labels)),
        reputation=reputation if isinstance(reputation, int) else None,
        popularity_rank=min(rank_values) if rank_values else None,
        permalink=permalink(kind, object_id),
        raw=document,
    )


class VirusTotalClient:
    """One vt-py client per worker; use as an async context manager."""

    def __init__(self, api_key: str, host: str, timeout: float = 30.0) -> None:
        if not api_key:
            raise KeyRejected(
                "no VirusTotal API key: set VT_API_KEY or virustotal.api_key in vtguardian.toml"
            )
        self._api_key = api_key
        self._host = host.rstrip("/")
        self._timeout = timeout
        self._client: vt.Client | None = None

    def __repr__(self) -> str:  # never show the key, even in a debugger or a log
        return f"VirusTotalClient(host={self._host!r})"

    async def __aenter__(self) -> VirusTotalClient:
        # force_close: aiohttp silently re-sends a request whose reused connection
        # dropped; a second send would be a request our quota never counted.
        connector = aiohttp.TCPConnector(force_close=True, limit=4)
        self._client = vt.Client(
            self._api_key,
            agent=f"vtguardian/{__version__}",
            host=self._host,
            timeout=int(max(1, self._timeout)),
            connector=connector,
        )
        # aiohttp 3.10+ also re-sends a GET once when a fresh connection drops
        # (ServerDisconnectedError); that second send would pass the quota uncounted.
        # aiohttp has no public switch; its own test client turns it off the same way.
        session = self._client._get_session()
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._client is not None:
            await self._client.close_async()
            self._client = None

    def session(self) -> vt.Client:
        """The open vt-py client, for the calls of this module beyond :meth:`fetch`."""
        assert self._client is not None, "use 'async with VirusTotalClient(...)'"
        return self._client

    async def fetch(self, kind: IocType, value: str) -> VtAnswer:
        """One request; raises one of this module's exceptions for anything but an answer."""
        assert self._client is not None, "use 'async with VirusTotalClient(...)'"
        try:
            path = api_path(kind, value)
        except ValueError as exc:
            raise Unanswerable(str(exc)) from None
        try:
            document = await asyncio.wait_for(
                self._client.get_json_async(path), timeout=self._timeout + 5
            )
        except vt.APIError as exc:
            return self._api_error(exc)
        except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError, ValueError) as exc:
            raise TryLater(f"{type(exc).__name__}: {_safe(str(exc))}") from None
        return parse_object(kind, document)

    def _api_error(self, exc: vt.APIError) -> VtAnswer:
        code = str(exc.code)
        if code == "NotFoundError":
            return VtAnswer(found=False)
        if code in _AUTH_CODES:
            raise KeyRejected(
                f"VirusTotal rejected the API key ({code}): check VT_API_KEY or virustotal.api_key"
            ) from None
        if code in _QUOTA_CODES:
            raise QuotaRefused(code) from None
        if code in _PERMANENT_CODES:
            raise Unanswerable(f"{code}: {_safe(str(exc.message))}") from None
        raise TryLater(f"{code}: {_safe(str(exc.message))}") from None


def _safe(text: str, limit: int = 160) -> str:
    """Short, single-line error text for rows and logs."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- analyses and relationships (README, "Fresh analyses") ----------------------------


@dataclass(frozen=True)
class AnalysisState:
    """``GET /analyses/{id}``: ``queued``, ``in-progress`` or ``completed``
    (https://docs.virustotal.com/reference/analyses-object)."""

    status: str
    date: datetime | None = None
    stats: dict[str, int] | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"


#: What each relationship lists (https://docs.virustotal.com/reference/domains-relationships).
RELATIONSHIPS: dict[IocType, tuple[str, ...]] = {
    IocType.DOMAIN: ("resolutions",),
    IocType.IP: ("resolutions",),
    IocType.URL: ("last_serving_ip_address",),
    IocType.FILE: ("contacted_domains", "contacted_ips"),
}
_RELATED_KINDS = {"domain": IocType.DOMAIN, "ip_address": IocType.IP}


async def _answer(client: VirusTotalClient, request: Any) -> Any:
    """Await one vt-py call, mapping its failures as :meth:`VirusTotalClient.fetch` does;
    a 404 here is :class:`Unanswerable` (nothing to analyse or relate)."""
    try:
        return await asyncio.wait_for(request, timeout=client._timeout + 5)
    except vt.APIError as exc:
        if str(exc.code) == "NotFoundError":
            raise Unanswerable("NotFoundError: VirusTotal has no such object") from None
        client._api_error(exc)
    except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError, ValueError) as exc:
        raise TryLater(f"{type(exc).__name__}: {_safe(str(exc))}") from None
    raise TryLater("no answer")  # pragma: no cover - _api_error always raises here


async def request_analysis(client: VirusTotalClient, kind: IocType, value: str) -> str:
    """``POST /{collection}/{id}/analyse``; the new analysis's id."""
    session = client.session()
    try:
        path = api_path(kind, value) + "/analyse"
    except ValueError as exc:
        raise Unanswerable(str(exc)) from None

    async def post() -> Any:
        response = await session.post_async(path)
        error = await session.get_error_async(response)
        if error is not None:
            raise error
        return await response.json_async()

    return _analysis_id(await _answer(client, post()))


async def submit_url(client: VirusTotalClient, url: str) -> str:
    """``POST /urls`` through vt-py's ``scan_url_async``; the analysis's id."""
    analysis = await _answer(client, client.session().scan_url_async(url))
    identifier = getattr(analysis, "id", None)
    if not isinstance(identifier, str) or not identifier:
        raise TryLater("VirusTotal answered with an unexpected shape")
    return identifier


async def get_analysis(client: VirusTotalClient, analysis_id: str) -> AnalysisState:
    """``GET /analyses/{id}`` (the id percent-encoded as one path segment)."""
    if not analysis_id.strip("."):
        raise Unanswerable(f"not an analysis id: {analysis_id!r}")
    path = "/analyses/" + quote(analysis_id, safe="")
    document = await _answer(client, client.session().get_json_async(path))
    try:
        attributes = document["data"]["attributes"]
        status = str(attributes["status"])
        stats = attributes.get("stats") or {}
        return AnalysisState(
            status=status,
            date=provider_date(attributes.get("date")),
            stats={str(k): int(v) for k, v in stats.items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise TryLater("VirusTotal answered with an unexpected shape") from None


async def related(
    client: VirusTotalClient, kind: IocType, value: str, relationship: str, limit: int = 10
) -> list[tuple[IocType, str]]:
    """One page (one request) of a relationship: the related domains and addresses.

    A resolution names both sides; the side that is not ``value`` is the related one.
    """
    try:
        path = f"{api_path(kind, value)}/{quote(relationship, safe='')}"
    except ValueError as exc:
        raise Unanswerable(str(exc)) from None
    params = {"limit": str(int(limit))}
    document = await _answer(client, client.session().get_json_async(path, params=params))
    found: list[tuple[IocType, str]] = []
    try:
        items = document["data"]
        items = items if isinstance(items, list) else [items] if items else []
        for item in items:
            if item.get("type") == "resolution":
                attributes = item.get("attributes") or {}
                if kind is IocType.DOMAIN:
                    found.append((IocType.IP, str(attributes["ip_address"])))
                else:
                    found.append((IocType.DOMAIN, str(attributes["host_name"])))
            elif item.get("type") in _RELATED_KINDS:
                found.append((_RELATED_KINDS[item["type"]], str(item["id"])))
    except (KeyError, TypeError, AttributeError):
        raise TryLater("VirusTotal answered with an unexpected shape") from None
    return found


def _analysis_id(document: Any) -> str:
    try:
        identifier = document["data"]["id"]
    except (KeyError, TypeError):
        raise TryLater("VirusTotal answered with an unexpected shape") from None
    if not isinstance(identifier, str) or not identifier:
        raise TryLater("VirusTotal answered with an unexpected shape")
    return identifier
