"""Blocklist feeds as their consumers read them (hosts, RPZ, Suricata dataset), over HTTP."""

from __future__ import annotations

import base64
from datetime import timedelta

import dns.rdatatype
import dns.zone
import pytest
from fastapi.testclient import TestClient

from helpers import settings_for
from vtguardian.clock import utcnow
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.web.app import create_app

BLOCKED = ["c2.example.net", "phish.example.org"]


@pytest.fixture
def client(engine, db_url):
    now = utcnow()
    levels = {
        ("domain", "c2.example.net"): "malicious",
        ("domain", "phish.example.org"): "malicious",
        ("domain", "bank.example.com"): "malicious",  # allowlisted below: never listed
        ("domain", "grayware.example.com"): "suspicious",
        ("domain", "www.example.com"): "harmless",
        ("ip", "185.220.101.66"): "malicious",
        ("url", "http://c2.example.net/gate.php"): "malicious",
    }
    with write_transaction(engine) as connection:
        ids = ensure_iocs(connection, {key: (None, now, now) for key in levels})
        for key, level in levels.items():
            record_answer(
                connection,
                ids[key],
                ReportRow("virustotal", "found", level),
                timedelta(days=1),
                now,
            )
    settings = settings_for(
        db_url, "http://127.0.0.1:9", allowlist={"domains": ["bank.example.com"]}
    )
    # The app answers only its own Host names: 127.0.0.1, not TestClient's default.
    with TestClient(create_app(settings, engine), base_url="http://127.0.0.1") as test_client:
        yield test_client


def _entries(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith(("#", ";"))]


def test_hosts_and_domain_lists(client):
    hosts = client.get("/feeds/hosts.txt")
    assert hosts.status_code == 200 and hosts.headers["content-type"].startswith("text/plain")
    assert [line.split() for line in _entries(hosts.text)] == [["0.0.0.0", d] for d in BLOCKED]
    assert _entries(client.get("/feeds/domains.txt").text) == BLOCKED
    assert _entries(client.get("/feeds/ips.txt").text) == ["185.220.101.66"]


def test_rpz_zone_parses_and_blocks_names_and_subdomains(client):
    text = client.get("/feeds/rpz.zone").text
    zone = dns.zone.from_text(text, origin="rpz.vtguardian.local.", relativize=False)
    cnames = {
        str(name): str(rdata.target)
        for name, _ttl, rdata in zone.iterate_rdatas(dns.rdatatype.CNAME)
    }
    expected = {}
    for domain in BLOCKED:
        expected[f"{domain}.rpz.vtguardian.local."] = "."
        expected[f"*.{domain}.rpz.vtguardian.local."] = "."
    assert cnames == expected
    assert zone.get_rdataset("rpz.vtguardian.local.", "SOA") is not None


def test_suricata_dataset_and_rules(client):
    lines = _entries(client.get("/feeds/vtguardian-domains.lst").text)
    assert sorted(base64.b64decode(line).decode() for line in lines) == BLOCKED
    rules = client.get("/feeds/vtguardian.rules").text.splitlines()
    assert len(rules) == 2
    assert "dns.query; dataset:isset,vtguardian-domains,type string" in rules[0]
    assert "tls.sni; dataset:isset,vtguardian-domains" in rules[1]
    assert len({rule.split("sid:")[1].split(";")[0] for rule in rules}) == 2


@pytest.mark.parametrize(
    "name", ["..%2F..%2Fetc%2Fpasswd", "passwd", "hosts.txt.bak", "%2Fetc%2Fpasswd"]
)
def test_unknown_feed_names_are_404_and_never_touch_files(client, name):
    response = client.get(f"/feeds/{name}")
    assert response.status_code == 404
    assert "root:" not in response.text
