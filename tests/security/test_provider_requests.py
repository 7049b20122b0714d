"""A value from traffic can only ever be the object a provider request asks about
(issue #24, point 4).

URL IoCs went unescaped into OTX's ``/api/v1/indicators/url/{value}/general``:
with ``..`` segments a URL from traffic made vtguardian request another endpoint
(``/api/v1/users/me``) with the user's OTX key, and another borrowed a different
indicator's pulses. Every provider request is checked here over real HTTP
against the emulators, which record the raw path each request arrived with.
"""

from __future__ import annotations

import asyncio

import pytest

from vtguardian.intel.otx import OtxClient
from vtguardian.intel.virustotal import Unanswerable, VirusTotalClient
from vtguardian.iocs import IocType
from vtguardian.testing.otx_emulator import OTX_KEY, OtxEmulator, OtxServer
from vtguardian.testing.vt_emulator import DEFAULT_KEY

HOSTILE_URLS = [
    "http://evil.example/../../../../users/me?",
    "http://evil.example/../../../../users/me#",
    "http://evil.example/../../../indicators/domain/known-bad.example.com",
    "http://evil.example/a?b=1&c=%2F..%2F#frag",
    "http://evil.example/%2e%2e/%2e%2e/%2e%2e/%2e%2e/users/me",
    "http://evil.example/..",
    "https://evil.example/{0}/{}/%s",
]


def test_otx_asks_about_exactly_the_url_and_nothing_else():
    otx = OtxEmulator(pulses={"known-bad.example.com": 5})
    with OtxServer(otx) as server:
        client = OtxClient(OTX_KEY, server.url)

        async def ask_all():
            return [await client.fetch(IocType.URL, url) for url in HOSTILE_URLS]

        answers = asyncio.run(ask_all())
    assert otx.stray == []  # no request went anywhere else, with the key or without
    assert otx.calls == [("url", url) for url in HOSTILE_URLS]
    assert [answer.pulses for answer in answers] == [0] * len(HOSTILE_URLS)  # none borrowed


@pytest.mark.parametrize("value", ["../users/me", "a/b?c#d", "x%2F..%2Fy", "../../urls/x"])
def test_a_virustotal_object_id_is_one_path_segment(vt_emulator, value):
    """Such values never pass normalisation; if one did, VirusTotal would still be asked
    about it, as one id, and answer that it is not a domain."""

    async def ask():
        async with VirusTotalClient(DEFAULT_KEY, vt_emulator.url) as client:
            await client.fetch(IocType.DOMAIN, value)

    with pytest.raises(Unanswerable, match="not a valid domain") as raised:
        asyncio.run(ask())
    assert value in str(raised.value)


def test_an_id_of_dots_is_refused_before_any_request(vt_emulator):
    async def ask():
        async with VirusTotalClient(DEFAULT_KEY, vt_emulator.url) as client:
            await client.fetch(IocType.FILE, "..")

    vt_emulator.emulator.reset()
    with pytest.raises(Unanswerable):
        asyncio.run(ask())
    assert vt_emulator.emulator.calls() == []
