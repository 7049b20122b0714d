"""AlienVault OTX, optional: pulses that mention an indicator.

A pulse is a community report; several of them about one indicator are strong
evidence, one is a hint. At least ``min_pulses`` decides *malicious* and ends
the flow before VirusTotal; fewer is recorded as a *suspicious* answer and the
flow goes on. OTX failing never stops a lookup: the flow just asks the next provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from yarl import URL

from vtguardian.iocs import IocType, hash_kind

_SECTIONS = {IocType.DOMAIN: "domain", IocType.URL: "url", IocType.FILE: "file"}


class OtxUnavailable(Exception):
    """OTX could not answer this time (or refused the key); the flow moves on."""


@dataclass(frozen=True)
class OtxAnswer:
    pulses: int
    names: list[str]


def section(kind: IocType, value: str) -> str:
    if kind is IocType.IP:
        return "IPv6" if ":" in value else "IPv4"
    if kind is IocType.FILE:
        hash_kind(value)  # validates the length
    return _SECTIONS[kind]


class OtxClient:
    def __init__(self, api_key: str, host: str, timeout: float = 15.0) -> None:
        self._headers = {"X-OTX-API-KEY": api_key}
        self._host = host.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"OtxClient(host={self._host!r})"

    def indicator_url(self, kind: IocType, value: str) -> URL:
        """The request for one indicator: the whole value is one path segment.

        A URL from traffic holds ``/``, ``?``, ``#``, ``%`` and ``..``: sent as they
        are, a crafted one steered the request (and the user's OTX key) to another
        endpoint. Every one of them is percent-encoded, dots too, and the URL is
        handed over as encoded so that nothing normalises it on the way.
        """
        segment = quote(value, safe="").replace(".", "%2E")
        return URL(
            f"{self._host}/api/v1/indicators/{section(kind, value)}/{segment}/general",
            encoded=True,
        )

    async def fetch(self, kind: IocType, value: str) -> OtxAnswer | None:
        url = self.indicator_url(kind, value)
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout, headers=self._headers) as session,
                session.get(url) as response,
            ):
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise OtxUnavailable(f"OTX answered HTTP {response.status}")
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OtxUnavailable(f"OTX unreachable: {type(exc).__name__}") from None
        info = document.get("pulse_info") if isinstance(document, dict) else None
        if not isinstance(info, dict):
            raise OtxUnavailable("OTX answered with an unexpected shape")
        pulses = info.get("pulses") or []
        names = [str(p.get("name")) for p in pulses if isinstance(p, dict) and p.get("name")]
        return OtxAnswer(pulses=int(info.get("count") or len(pulses)), names=names[:10])
