"""Private addresses in disguise never reach a third party (issue #24, point 5).

An IPv6 transition form carries an IPv4 address: IPv4-compatible ``::c0a8:101``,
NAT64 ``64:ff9b::c0a8:101`` (RFC 6052), local-use NAT64 ``64:ff9b:1::/48``
(RFC 8215), 6to4 ``2002:c0a8:101::1`` and Teredo ``2001:0::/32``. Each of these
was sent to VirusTotal (the emulator's call log recorded them), and so were
192.0.0.0/24 and ``.onion`` names; ``own_networks`` could be bypassed the same way.
"""

from __future__ import annotations

import asyncio

import pytest

from helpers import settings_for
from sources_helpers import ingest
from vtguardian.intel.lookup import LookupService
from vtguardian.iocs import Classifier
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine

HIDDEN = [
    "::c0a8:101",  # IPv4-compatible 192.168.1.1
    "64:ff9b::c0a8:101",  # NAT64 of 192.168.1.1
    "64:ff9b::a00:7",  # NAT64 of 10.0.0.7
    "64:ff9b:1::808:808",  # local-use NAT64: never global, whatever it carries
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2002:a9fe:101::1",  # 6to4 of 169.254.1.1
    "2001:0:c0a8:101:0:f227:3f57:fefe",  # Teredo, server 192.168.1.1
    "2001:0:4136:e378:8000:63bf:3f57:fefe",  # Teredo, client 192.168.1.1
    "192.0.0.9",  # 192.0.0.0/24, IETF protocol assignments
    "192.0.0.170",
    "2002:cb00:7107::1",  # 6to4 of 203.0.113.7: the user's own network
    "64:ff9b::cb00:7107",  # NAT64 of 203.0.113.7
    "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
    "www.facebookcorewwwi.onion",
]
PUBLIC = ["8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "www.google.com"]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(own_networks=["203.0.113.7/32"])


@pytest.mark.parametrize("value", HIDDEN)
def test_disguised_private_values_are_not_eligible(classifier, value):
    result = classifier.classify(value)
    assert result.type is not None and not result.eligible, result


@pytest.mark.parametrize("value", PUBLIC)
def test_public_values_in_the_same_forms_stay_eligible(classifier, value):
    assert classifier.classify(value).eligible


@pytest.mark.parametrize("value", HIDDEN[:4])
def test_a_url_on_a_disguised_private_host_is_not_eligible(classifier, value):
    assert not classifier.classify(f"http://[{value}]/login").eligible


def test_none_of_them_reaches_virustotal(tmp_path, vt_emulator):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    listing = tmp_path / "iocs.txt"
    listing.write_text("".join(f"{value}\n" for value in HIDDEN + PUBLIC))
    settings = settings_for(url, vt_emulator.url, privacy={"own_networks": ["203.0.113.7/32"]})
    vt_emulator.emulator.reset()
    ingest(engine, "plain", listing, classifier=Classifier.from_settings(settings))
    asyncio.run(LookupService(settings, engine).run_worker(once=True))
    sent = {value for _kind, value in vt_emulator.emulator.looked_up()}
    engine.dispose()
    assert sent & set(HIDDEN) == set()
    assert set(PUBLIC) <= sent
