"""Real logs' DNS answers as resolutions (tests/data/real/README.md, issue 27).

Each DNS log of the real corpus is ingested as a user would; every stored answer
address must lead back, through the stored CNAME links of the same device, to a
name that this device asked for, by the log's independent expectation (its
``domain`` sightings). Where a log's addresses come only from DNS answers, every
address sighting of the expectation must also be such a resolution, device by
device: no answer is lost and none is given to another device.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from helpers import TEST_DATA
from sources_helpers import ingest
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine

CORPUS = TEST_DATA / "real"
# Logs with DNS answers; the flag says whether their addresses come from answers only.
DNS_LOGS = {
    "pihole/pihole-v5-default.log": True,
    "pihole/pihole-v6-extralogging.log": True,
    "pihole/dnsmasq-2.90-plain-dnssec.log": True,
    "pihole/dnsmasq-2.90-extra-dnssec.log": True,
    "zeek/proxy-dns.log": True,
    "zeek/zed-dns.json": True,
    "suricata/eve-6.0-malware-traffic.json": False,
    "suricata/eve-3.2-debian-apt.json": False,
    "suricata/eve-8.0-assembled.json": False,
    "suricata/eve-7.0-assembled.json": False,
    "ecs/packetbeat.ndjson": False,
}


def _stored_links(log: Path, tmp_path: Path) -> tuple[list[tuple[str, str, str, str]], dict]:
    expectation = json.loads(log.with_name(log.name + ".expected.json").read_text())
    copy = tmp_path / log.name
    shutil.copy(log, copy)
    if expectation.get("mtime"):
        moment = datetime.fromisoformat(expectation["mtime"]).timestamp()
        os.utime(copy, (moment, moment))
    else:
        os.utime(copy, (0, 0))
    engine = make_engine(f"sqlite:///{tmp_path / 'corpus.db'}")
    migrate.upgrade(engine)
    ingest(engine, expectation["source"], copy, fields=expectation.get("fields") or ())
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT n.value, a.type, a.value, c.ip FROM resolutions r "
                "JOIN iocs n ON n.id = r.name_id JOIN iocs a ON a.id = r.answer_id "
                "JOIN clients c ON c.id = r.client_id"
            )
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows], expectation


def _asked_roots(links, device: str, address: str) -> set[str]:
    """Every name upstream of ``address`` in ``device``'s links: the chain's head and
    the CNAME targets between (a device may ask for a target itself)."""
    owners: dict[str, set[str]] = {}
    for name, _kind, answer, who in links:
        if who == device:
            owners.setdefault(answer, set()).add(name)
    seen: set[str] = set()
    todo = [address]
    while todo:
        for name in owners.get(todo.pop(), ()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


@pytest.mark.parametrize("relative", sorted(DNS_LOGS))
def test_every_answer_address_leads_to_the_name_its_device_asked(relative, tmp_path):
    links, expectation = _stored_links(CORPUS / relative, tmp_path)
    assert links, "a DNS log with answers stores resolutions"
    asked = {
        (key.split(" ", 1)[1], device)
        for key, devices in expectation["sightings"].items()
        if key.startswith("domain ")
        for device in devices
    }
    addresses = {(answer, device) for _n, kind, answer, device in links if kind == "ip"}
    orphans = [
        f"{address} for {device or '(no device)'}"
        for address, device in sorted(addresses)
        if not any((root, device) in asked for root in _asked_roots(links, device, address))
    ]
    assert not orphans, "answers not linked to a name their device asked:\n" + "\n".join(orphans)
    if DNS_LOGS[relative]:
        wanted = {
            (key.split(" ", 1)[1], device)
            for key, devices in expectation["sightings"].items()
            if key.startswith("ip ")
            for device in devices
        }
        assert sorted(wanted - addresses) == [], "answer addresses of the log not stored"
        assert sorted(addresses - wanted) == [], "stored for a device that was not given them"


def test_the_apple_chain_is_stored_for_its_device(tmp_path):
    """pihole-v5-default.log, lines 18-22 (read by hand): 192.168.1.42 asks for
    www.apple.com, a CNAME of www.apple.com.edgekey.net, a CNAME of
    e6858.dscx.akamaiedge.net, which has the address 23.216.149.134."""
    links, _ = _stored_links(CORPUS / "pihole/pihole-v5-default.log", tmp_path)
    mine = {(n, a) for n, _k, a, d in links if d == "192.168.1.42"}
    assert ("www.apple.com", "www.apple.com.edgekey.net") in mine
    assert ("www.apple.com.edgekey.net", "e6858.dscx.akamaiedge.net") in mine
    assert ("e6858.dscx.akamaiedge.net", "23.216.149.134") in mine
    assert "www.apple.com" in _asked_roots(links, "192.168.1.42", "23.216.149.134")
