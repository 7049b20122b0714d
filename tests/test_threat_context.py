"""Threat context from the objects VirusTotal answers (fetched from the emulator through
vt-py over HTTP), stored in columns and shown in lookup --json and enrichments."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from helpers import run_cli, settings_for
from vtguardian.clock import utcnow
from vtguardian.intel.lookup import LookupService
from vtguardian.intel.threat_context import context_of, threat_category
from vtguardian.intel.virustotal import VirusTotalClient
from vtguardian.iocs import IocType
from vtguardian.store import queue
from vtguardian.store.answers import ReportRow
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.store.schema import verdicts
from vtguardian.testing.vt_emulator import DEFAULT_KEY
from vtguardian.web.app import create_app

EICAR = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


def _context(url: str, kind: IocType, value: str):
    async def fetch():
        async with VirusTotalClient(DEFAULT_KEY, url) as client:
            return await client.fetch(kind, value)

    answer = asyncio.run(fetch())
    return context_of(ReportRow("virustotal", "found", "malicious", raw=answer.raw))


@pytest.mark.parametrize(
    ("word", "threat"),
    [
        ("command and control", "command-and-control"),
        ("Phishing and Other Frauds", "phishing"),
        ("spyware and malware", "malware"),
        ("cryptomining", "cryptomining"),
        ("potentially unwanted software", "pua"),
        ("news", None),
        ("shopping", None),
        ("search engines and portals", None),
        ("cryptocurrency", None),  # a site about coins is not a miner
    ],
)
def test_vendor_words_map_to_the_threat_vocabulary_or_stay_site_categories(word, threat):
    assert threat_category(word) == threat


def test_a_files_family_label_rules_and_sandboxes(vt_emulator):
    context = _context(vt_emulator.url, IocType.FILE, EICAR)
    assert context.families[0] == "EICAR-Test-File"
    assert context.threat_label == "trojan.eicar-test-file"
    assert {rule["source"] for rule in context.rules} == {"yara", "sigma", "ids"}
    assert context.sandboxes[0]["category"] == "malicious"
    assert "malware" in context.threat_categories


def test_site_categories_are_kept_apart_from_threats(vt_emulator):
    google = _context(vt_emulator.url, IocType.DOMAIN, "www.google.com")
    assert google.threat_categories == [] and google.site_categories == ["search engines"]
    c2 = _context(vt_emulator.url, IocType.DOMAIN, "malware-c2.example.net")
    assert c2.threat_categories[0] == "command-and-control"
    assert "news" not in c2.threat_categories and c2.creation_date is not None


def test_an_addresses_network_owner_and_country(vt_emulator):
    context = _context(vt_emulator.url, IocType.IP, "185.220.101.66")
    assert isinstance(context.asn, int) and context.as_owner and len(context.country) == 2


def test_hostile_values_are_cut_short_and_odd_shapes_ignored():
    raw = {
        "data": {
            "attributes": {
                "categories": {"a": "phishing\x1b[2J" + "x" * 500, "b": 7, "c": ["news"]},
                "popular_threat_classification": {"popular_threat_name": "not a list"},
                "sandbox_verdicts": {"Zenbox": "malicious"},
                "crowdsourced_yara_results": [{"rule_name": None}, "rule"],
                "asn": "AS13335",
                "creation_date": 2**62,
                "country": "a" * 40,
            }
        }
    }
    context = context_of(ReportRow("virustotal", "found", "malicious", raw=raw))
    assert context.threat_categories == ["phishing"]
    assert context.families == [] and context.sandboxes == [] and context.rules == []
    assert context.asn is None and context.creation_date is None and len(context.country) == 8
    assert context_of(ReportRow("virustotal", "not_found", "unknown")) is None


def test_lookup_json_shows_the_context_and_a_young_domain(engine, db_url, vt_emulator, tmp_path):
    settings = settings_for(db_url, vt_emulator.url)
    service = LookupService(settings, engine)
    asyncio.run(service.lookup_values(["phish-login.example.org", "www.google.com"]))
    config = tmp_path / "vtguardian.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[virustotal]\napi_key = "{DEFAULT_KEY}"\n'
        f'host = "{vt_emulator.url}"\n'
    )
    result = run_cli(
        "--config", str(config), "lookup", "--json", "phish-login.example.org", "www.google.com"
    )
    assert result.returncode == 0, result.stderr
    answers = {(item := json.loads(line))["value"]: item for line in result.stdout.splitlines()}
    phish = answers["phish-login.example.org"]["context"]
    assert phish["threat_categories"] == ["phishing"] and phish["young"] is True
    google = answers["www.google.com"]["context"]
    assert google["young"] is False and "threat_categories" not in google


def test_the_ioc_detail_shows_threat_context_related_iocs_and_both_ages(
    engine, db_url, vt_emulator
):
    settings = settings_for(
        db_url, vt_emulator.url, virustotal={"relationship_requests_per_day": 5}
    )
    asyncio.run(LookupService(settings, engine).lookup_values(["malware-c2.example.net"]))
    now = utcnow()
    with write_transaction(engine) as connection:  # the worker's relationship step
        ids = ensure_iocs(connection, {("domain", "malware-c2.example.net"): (None, now, now)})
        queue.enqueue(connection, [queue.QueueRequest(i, queue.TIER_ALERT) for i in ids.values()])
        connection.execute(update(verdicts).values(expires_at=now))
    asyncio.run(LookupService(settings, engine).run_worker(once=True))
    with TestClient(create_app(settings, engine), base_url="http://127.0.0.1") as client:
        detail = client.get("/api/v1/iocs/malware-c2.example.net").json()
    assert detail["threat"]["threat_categories"][0] == "command-and-control"
    # The emulator's seeds: VirusTotal's resolutions of the C2 domain.
    assert sorted(detail["related"], key=lambda r: r["value"]) == [
        {"type": "ip", "value": "185.220.101.66", "relation": "resolutions"},
        {"type": "ip", "value": "91.215.85.17", "relation": "resolutions"},
    ]
    analysis = detail["analysis"]
    assert analysis["status"] == "fresh" and analysis["cache"] == "fresh"
    assert 0 < analysis["analysis_age_hours"] < 20 * 24 and analysis["cache_age_hours"] == 0
