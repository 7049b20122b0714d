"""Collectors on real samples of every format; expected counts derived here, independently."""

from __future__ import annotations

import contextlib
import csv
import ipaddress
import json
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from datetime import datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from sources_helpers import TEST_DATA, ingest, stored_hits
from vtguardian.clock import as_naive_utc
from vtguardian.sources.base import ParseError
from vtguardian.sources.batch import Batch
from vtguardian.sources.registry import parser_factory
from vtguardian.sources.suricata import SuricataParser
from vtguardian.store.queue import TIER_ALERT

LOCAL_SUFFIXES = (".local", ".lan", ".arpa", ".internal", ".home")


def _public_ip(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return address.is_global and not address.is_multicast


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _public_name(value: str) -> bool:
    return "." in value and not value.lower().endswith(LOCAL_SUFFIXES)


def _zeek_tsv_rows(path):
    fields = None
    with open(path) as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif not line.startswith("#"):
                yield dict(zip(fields, line.split("\t"), strict=True))


def _expected_zeek_dns(rows) -> Counter:
    expected = Counter()
    for row in rows:
        query = row["query"]
        if query not in ("-", None) and _public_name(query):
            expected[("domain", query.lower())] += 1
        answers = row["answers"]
        for answer in [] if answers in ("-", None) else answers.split(","):
            if _public_ip(answer):
                expected[("ip", ipaddress.ip_address(answer).compressed)] += 1
    return expected


def test_zeek_dns_tsv(engine):
    path = TEST_DATA / "zeek/zed-sample-dns.log.tsv"
    totals = ingest(engine, "zeek", path)
    expected = _expected_zeek_dns(_zeek_tsv_rows(path))
    assert stored_hits(engine) == expected
    # CNAME targets among the answers are stored too (as resolutions' ends), unsighted.
    targets = {
        answer.lower()
        for row in _zeek_tsv_rows(path)
        if row["qtype_name"] in ("A", "AAAA") and row["answers"] not in ("-", None)
        for answer in row["answers"].split(",")
        if not _is_ip(answer) and " " not in answer and _public_name(answer)
    } - {value for _kind, value in expected}
    assert totals.new_iocs == len(expected) + len(targets)
    assert totals.hits == sum(expected.values())
    assert totals.events == 300 and totals.errors == 0


def test_zeek_dns_json_matches_the_same_traffic_in_tsv(engine):
    path = TEST_DATA / "zeek/zed-sample-dns.json"
    rows = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        rows.append({"query": record.get("query"), "answers": ",".join(record.get("answers", []))})
    ingest(engine, "zeek", path)
    assert stored_hits(engine) == _expected_zeek_dns(rows)


def test_zeek_files_and_http_baselines(engine, tmp_path):
    files = TEST_DATA / "zeek/zeek-baseline-scripts.base.files.x509.files_files.log"
    expected = Counter(("file", row["sha256"]) for row in _zeek_tsv_rows(files))
    ingest(engine, "zeek", files)
    # The baseline masks its timestamp (ts:XXXXXXXXXX.XXXXXX, not JSON): give it a real one.
    baseline = TEST_DATA / "zeek/zeek-baseline-json-javascript.http-uri-sha256_http.log"
    http = tmp_path / "http.log"
    http.write_text(baseline.read_text().replace("XXXXXXXXXX.XXXXXX", "1362692526.869344"))
    ingest(engine, "zeek", http)
    expected[("domain", "bro.org")] += 1
    expected[("url", "http://bro.org/download/CHANGES.bro-aux.txt")] += 1
    assert stored_hits(engine) == expected


def test_zeek_conn_and_masked_timestamps(engine):
    path = TEST_DATA / "zeek/zeek-baseline-opt.basic_conn.log"
    rows = list(_zeek_tsv_rows(path))
    expected = Counter(
        ("ip", ipaddress.ip_address(r["id.resp_h"]).compressed)
        for r in rows
        if _public_ip(r["id.resp_h"])
    )
    totals = ingest(engine, "zeek", path)
    assert stored_hits(engine) == expected
    assert totals.errors == 0  # XXXXXXXXXX.XXXXXX timestamps are dated at read time


SURICATA_CTU = {
    ("ip", "78.40.125.4"): 1,  # alert: the remote side of the IRC connection
    ("domain", "irc.freenode.net"): 1,  # dns query
    ("file", "2e4c462b3424afcc04f43429d5f001e4ef9a28143bfeefb9af2254b4df3a7c1a"): 1,
    ("domain", "cr-tools.clients.google.com"): 1,
    (
        "url",
        "http://cr-tools.clients.google.com/service/check2?appid=%7B430FD4D0-B729-4F61-AA34-"
        "91526481799D%7D&appversion=1.3.21.65&applang=&machine=0&version=1.3.21.65"
        "&osversion=5.1&servicepack=Service%20Pack%202",
    ): 1,
}


def test_suricata_ctu13_sample(engine):
    totals = ingest(engine, "suricata", TEST_DATA / "suricata/tenzir-ctu13-eve-sample.json")
    assert stored_hits(engine) == Counter(SURICATA_CTU)
    assert totals.events == 5 and totals.errors == 0
    with engine.connect() as connection:
        alert = connection.execute(
            text(
                "SELECT a.signature_id, a.severity, a.category, i.value, c.ip FROM ids_alerts a "
                "JOIN iocs i ON i.id = a.ioc_id JOIN clients c ON c.id = a.client_id"
            )
        ).one()
        tiers = dict(
            connection.execute(
                text("SELECT i.value, q.tier FROM lookup_queue q JOIN iocs i ON i.id = q.ioc_id")
            ).all()
        )
    assert alert == (2017318, 2, "Potentially Bad Traffic", "78.40.125.4", "147.32.84.165")
    assert tiers["78.40.125.4"] == TIER_ALERT
    assert tiers["irc.freenode.net"] < TIER_ALERT


def test_suricata_flows_only_when_enabled(engine):
    path = TEST_DATA / "suricata/tenzir-ctu13-eve-sample.json"
    ingest(engine, "suricata", path, flows=True)
    # The one flow goes to 147.32.84.255, a public address in that capture.
    assert stored_hits(engine)[("ip", "147.32.84.255")] == 1


def test_suricata_fileinfo_without_hashes_gives_no_iocs(engine):
    totals = ingest(
        engine, "suricata", TEST_DATA / "suricata/output-eve-fileinfo.expected.eve.json"
    )
    assert totals.events == 1 and totals.new_iocs == 0 and totals.errors == 0


def _eve(event_type: str, **fields) -> bytes:
    base = {
        "timestamp": "2024-05-01T10:15:00.123456+0000",
        "event_type": event_type,
        "proto": "UDP",
    }
    return orjson.dumps({**base, **fields}) + b"\n"


def test_suricata_dns_v1_v2_v3(engine, tmp_path):
    """Events shaped like suricata-verify's dns tests (v3 request/response, v2 grouped, v1).

    Up to Suricata 7 an answer is logged in the flow's direction (the client is
    ``src_ip``); Suricata 8's responses have the responder as ``src_ip``. No port
    says which side is the resolver here, so only the format version can."""
    path = tmp_path / "eve.json"
    client = {"src_ip": "10.16.1.11", "dest_ip": "10.16.1.1"}
    answer = {"src_ip": "10.16.1.1", "dest_ip": "10.16.1.11"}
    path.write_bytes(
        _eve("dns", **client, dns={"version": 3, "type": "request", "id": 36146,
             "queries": [{"rrname": "www.suricata-ids.org", "rrtype": "A"}]})
        + _eve("dns", **answer, dns={"version": 3, "type": "response", "id": 36146,
               "queries": [{"rrname": "www.suricata-ids.org", "rrtype": "A"}],
               "answers": [{"rrname": "www.suricata-ids.org", "rrtype": "CNAME",
                            "rdata": "suricata-ids.org"},
                           {"rrname": "suricata-ids.org", "rrtype": "A", "rdata": "192.0.78.24"},
                           {"rrname": "suricata-ids.org", "rrtype": "A", "rdata": "192.0.78.25"}],
               "grouped": {"A": ["192.0.78.24", "192.0.78.25"], "CNAME": ["suricata-ids.org"]}})
        + _eve("dns", **client, dns={"version": 2, "type": "answer", "rrname": "google.com",
               "rrtype": "AAAA", "grouped": {"AAAA": ["2a00:1450:4009:81f::200e"]}})
        + _eve("dns", **client, dns={"type": "query", "rrname": "google.com", "rrtype": "AAAA"})
        + _eve("dns", **client, dns={"type": "answer", "rrname": "oisf.net", "rrtype": "A",
               "rdata": "104.21.1.1"})
        + _eve("dns", **client, dns={"version": 2, "type": "answer", "rrname": "oisf.net",
               "rcode": "NXDOMAIN", "authorities": [{"rrname": "oisf.net", "rrtype": "SOA"}]})
        # v2 with one address (the commonest answer), twice; an empty one; A and AAAA; two A
        + 2 * _eve("dns", **client, dns={"version": 2, "type": "answer", "rrname": "one.example",
                   "rrtype": "A", "grouped": {"A": ["93.184.216.7"]}})
        + _eve("dns", **client, dns={"version": 2, "type": "answer", "rrname": "none.example",
               "rrtype": "A", "grouped": {"A": [""]}})
        + _eve("dns", **client, dns={"version": 2, "type": "answer", "rrname": "both.example",
               "rrtype": "A", "grouped": {"A": ["93.184.216.8"], "AAAA": ["2606:4700::8"]}})
        + _eve("dns", **client, dns={"version": 2, "type": "answer", "rrname": "two.example",
               "rrtype": "A", "grouped": {"A": ["93.184.216.9", "93.184.216.10"]}})
    )  # fmt: skip
    totals = ingest(engine, "suricata", path)
    assert stored_hits(engine) == Counter(
        {
            ("domain", "www.suricata-ids.org"): 1,
            ("ip", "192.0.78.24"): 1,
            ("ip", "192.0.78.25"): 1,
            ("ip", "2a00:1450:4009:81f::200e"): 1,
            ("domain", "google.com"): 1,
            ("ip", "104.21.1.1"): 1,
            ("ip", "93.184.216.7"): 2,
            ("ip", "93.184.216.8"): 1,
            ("ip", "2606:4700::8"): 1,
            ("ip", "93.184.216.9"): 1,
            ("ip", "93.184.216.10"): 1,
        }
    )
    assert totals.events == 11
    with engine.connect() as connection:
        clients = connection.execute(text("SELECT DISTINCT ip FROM clients")).scalars().all()
    assert clients == ["10.16.1.11"]


def test_suricata_tls_and_alert_with_dns_name(engine, tmp_path):
    path = tmp_path / "eve.json"
    path.write_bytes(
        _eve("tls", src_ip="192.168.1.20", dest_ip="93.184.216.34", tls={"sni": "Example.COM"})
        + _eve(
            "alert",
            src_ip="192.168.1.20",
            dest_ip="10.0.0.53",
            alert={
                "signature_id": 2027863,
                "signature": "ET INFO Observed DNS Query to .cc TLD",
                "category": "Potentially Bad Traffic",
                "severity": 2,
            },
            dns={"query": [{"rrname": "evil-c2.cc", "rrtype": "A"}]},
        )
    )
    ingest(engine, "suricata", path)
    assert stored_hits(engine) == Counter(
        {("domain", "example.com"): 1, ("domain", "evil-c2.cc"): 1}
    )
    with engine.connect() as connection:
        tier = connection.execute(
            text("SELECT q.tier FROM lookup_queue q JOIN iocs i ON i.id = q.ioc_id "
                 "WHERE i.value = 'evil-c2.cc'")
        ).scalar()  # fmt: skip
    assert tier == TIER_ALERT


def test_suricata_stamps_across_zones_and_out_of_order(engine, tmp_path):
    """Stamps are grouped by their text up to the hour; the stored hour and last
    sighting must still be the real UTC ones, and a broken stamp is its own bad line."""
    path = tmp_path / "eve.json"
    query = {"src_ip": "192.168.1.20", "dest_ip": "192.168.1.1"}
    dns = {"type": "query", "rrname": "zones.example.org", "rrtype": "A"}
    lines = [
        ("2024-05-01T13:50:00.000000+0200", True),  # 11:50Z
        ("2024-05-01T13:05:00.000000+0200", True),  # 11:05Z, earlier, read later
        ("2024-05-01T11:20:00.999999+0000", True),  # 11:20Z, same UTC hour, other zone
        ("2024-05-01T07:55:30.000000-0400", True),  # 11:55:30Z
        ("2024-05-01T17:26:00.250000+0530", True),  # 11:56:00.25Z, half-hour zone, the last
        ("2024-05-01T13:7x:00.000000+0200", False),  # broken minutes
        ("2024-05-01T13:70:00.000000+0200", False),  # minute out of range
        ("2024-13-01T13:10:00.000000+0200", False),  # month 13
    ]
    body = b"".join(_eve("dns", timestamp=stamp, **query, dns=dns) for stamp, _ok in lines)
    path.write_bytes(body)
    totals = ingest(engine, "suricata", path)
    assert (totals.events, totals.errors) == (5, 3)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT s.hour, s.hits, s.last_seen FROM sightings s")).all()
        span = connection.execute(text("SELECT first_seen, last_seen FROM iocs")).one()
        errors = (
            connection.execute(text("SELECT position FROM ingest_errors ORDER BY position"))
            .scalars()
            .all()
        )
    assert [(as_naive_utc(h), n, as_naive_utc(last)) for h, n, last in rows] == [
        (datetime(2024, 5, 1, 11), 5, datetime(2024, 5, 1, 11, 56, 0, 250000))
    ]
    assert [as_naive_utc(moment) for moment in span] == [
        datetime(2024, 5, 1, 11, 5),
        datetime(2024, 5, 1, 11, 56, 0, 250000),
    ]
    starts = [m.start() for m in re.finditer(rb"^", body, re.M)][: len(lines)]
    assert errors == [start for start, (_s, ok) in zip(starts, lines, strict=True) if not ok]


PIHOLE_LOG = """\
Dec 31 23:59:58 dnsmasq[612]: query[A] example.com from 192.168.1.10
Dec 31 23:59:58 dnsmasq[612]: forwarded example.com to 127.0.0.1#5335
Dec 31 23:59:58 dnsmasq[612]: reply example.com is 93.184.216.34
Dec 31 23:59:59 dnsmasq[612]: query[AAAA] ads.tracker.example.net from 192.168.1.11
Dec 31 23:59:59 dnsmasq[612]: gravity blocked ads.tracker.example.net is ::
Jan  1 00:00:01 dnsmasq[612]: query[A] printer.local from 192.168.1.10
Jan  1 00:00:01 dnsmasq[612]: config printer.local is 192.168.1.50
Jan  1 00:00:02 dnsmasq[612]: 17 192.168.1.12/41234 query[A] cdn.example.org from 192.168.1.12
Jan  1 00:00:02 dnsmasq[612]: 17 192.168.1.12/41234 cached cdn.example.org is 198.51.100.7
Jan  1 00:00:02 dnsmasq[612]: 17 192.168.1.12/41234 cached cdn.example.org is 151.101.1.1
Jan  1 00:00:03 dnsmasq[612]: query[A] phish.example.com from 192.168.1.13
Jan  1 00:00:03 dnsmasq[612]: regex blocked phish.example.com is 0.0.0.0
Jan  1 00:00:04 dnsmasq[612]: query[A] deny.example.com from 192.168.1.13
Jan  1 00:00:04 dnsmasq[612]: exactly denied deny.example.com is 0.0.0.0
Jan  1 00:00:05 dnsmasq[612]: query[A] use-application-dns.net from 192.168.1.14
Jan  1 00:00:05 dnsmasq[612]: special domain use-application-dns.net is NXDOMAIN
Jan  1 00:00:06 dnsmasq[612]: query[A] www.example.com from 192.168.1.10
Jan  1 00:00:06 dnsmasq[612]: reply www.example.com is <CNAME>
Jan  1 00:00:06 dnsmasq[612]: reply example.com is 93.184.216.34
"""


def test_pihole_log_joins_clients_and_marks_blocks(engine, tmp_path):
    path = tmp_path / "pihole.log"
    path.write_text(PIHOLE_LOG)
    january = datetime(2027, 1, 1, 0, 5).timestamp()
    os.utime(path, (january, january))
    totals = ingest(engine, "pihole-log", path)
    assert stored_hits(engine) == Counter(
        {
            ("domain", "example.com"): 1,
            ("ip", "93.184.216.34"): 2,
            ("domain", "ads.tracker.example.net"): 1,
            ("domain", "cdn.example.org"): 1,
            ("ip", "151.101.1.1"): 1,
            ("domain", "phish.example.com"): 1,
            ("domain", "deny.example.com"): 1,
            ("domain", "use-application-dns.net"): 1,
            ("domain", "www.example.com"): 1,
        }
    )
    assert totals.skipped_private == 2  # printer.local, and 198.51.100.7 (documentation range)
    with engine.connect() as connection:
        blocked = dict(
            connection.execute(
                text("SELECT i.value, SUM(s.blocked) FROM sightings s "
                     "JOIN iocs i ON i.id = s.ioc_id "
                     "GROUP BY i.value")
            ).all()
        )  # fmt: skip
        cdn_client = connection.execute(
            text("SELECT c.ip FROM sightings s JOIN iocs i ON i.id = s.ioc_id "
                 "JOIN clients c ON c.id = s.client_id WHERE i.value = '151.101.1.1'")
        ).scalar()  # fmt: skip
        years = connection.execute(text("SELECT DISTINCT hour FROM sightings ORDER BY hour")).all()
    assert {k for k, v in blocked.items() if int(v)} == {
        "ads.tracker.example.net",
        "phish.example.com",
        "deny.example.com",
        "use-application-dns.net",
    }
    assert cdn_client == "192.168.1.12"
    local_years = {
        datetime.fromtimestamp(time.mktime(_naive(h[0]).timetuple())).year for h in years
    }
    assert len(years) == 2 and local_years <= {2026, 2027}


def _naive(value):
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _ftl_db(path, schema_variant: str):
    statements = (TEST_DATA / "pihole/pihole-FTL.db.schema.sql").read_text().split(";\n")
    connection = sqlite3.connect(path)
    views = 0
    for statement in statements:
        body = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
        if not body.strip() or body.strip().startswith("CREATE TABLE queries"):
            continue
        if body.strip().startswith("CREATE VIEW queries"):
            views += 1
            if (schema_variant == "v6") != (views == 1):
                continue
        connection.execute(body)
    connection.executemany(
        "INSERT INTO domain_by_id VALUES (?, ?)",
        [(1, "example.com"), (2, "ads.example.net"), (3, "nas.lan")],
    )
    connection.executemany(
        "INSERT INTO client_by_id VALUES (?, ?, ?)",
        [(1, "192.168.1.10", "laptop"), (2, "192.168.1.11", "")],
    )
    connection.commit()
    return connection  # fmt: skip


@pytest.mark.parametrize("variant", ["v6", "v5"])
def test_pihole_ftl_database_incremental(engine, tmp_path, variant):
    path = tmp_path / "pihole-FTL.db"
    ftl = _ftl_db(path, variant)
    rows = [  # id, timestamp, type, domain id, client id, status
        (1, 1_700_000_000, 1, 1, 1, 2),  # example.com by the laptop, forwarded
        (2, 1_700_000_010, 1, 2, 2, 1),  # ads.example.net, gravity blocked
        (3, 1_700_000_020, 1, 1, 2, 3),  # example.com, from cache
        (4, 1_700_000_030, 1, 3, 1, 2),  # nas.lan: local, never stored
    ]
    insert = (
        "INSERT INTO query_storage (id, timestamp, type, status, domain, client) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    ftl.executemany(insert, [(i, t, ty, st, d, c) for i, t, ty, d, c, st in rows])
    ftl.commit()
    totals = ingest(engine, "pihole-ftl", path)
    assert stored_hits(engine) == Counter(
        {("domain", "example.com"): 2, ("domain", "ads.example.net"): 1}
    )
    assert totals.skipped_private == 1
    ftl.execute(insert, (5, 1_700_000_040, 1, 5, 2, 1))  # exact deny, new row
    ftl.commit()
    ingest(engine, "pihole-ftl", path)
    assert stored_hits(engine)[("domain", "ads.example.net")] == 2
    with engine.connect() as connection:
        blocked = connection.execute(text("SELECT SUM(blocked) FROM sightings")).scalar()
        name = connection.execute(
            text("SELECT name FROM clients WHERE ip = '192.168.1.10'")
        ).scalar()
    assert int(blocked) == 2 and name == "laptop"


def test_pihole_ftl_legacy_table_layout(engine, tmp_path):
    path = tmp_path / "pihole-FTL.db"
    connection = sqlite3.connect(path)
    connection.executescript((TEST_DATA / "pihole/FTL-test-pihole-FTL.db.v9.sql").read_text())
    connection.executemany(
        "INSERT INTO queries (id, timestamp, type, status, domain, client, forward) "
        "VALUES (?, ?, 1, ?, ?, ?, NULL)",
        [
            (1, 1_600_000_000, 2, "example.com", "127.0.0.4"),
            (2, 1_600_000_001, 1, "ads.example.net", "10.0.0.5"),
        ],
    )  # fmt: skip
    connection.commit()
    ingest(engine, "pihole-ftl", path)
    assert stored_hits(engine) == Counter(
        {("domain", "example.com"): 1, ("domain", "ads.example.net"): 1}
    )


def test_ecs_events_with_chosen_fields(engine, tmp_path):
    path = tmp_path / "events.ndjson"
    events = [
        {"@timestamp": "2024-05-01T10:00:00Z", "source": {"ip": "192.168.1.5"},
         "dns": {"question": {"name": "Login.Example-Bank.com"}},
         "url": {"full": "https://login.example-bank.com/verify?id=1"}},
        {"@timestamp": "2024-05-01T10:01:00Z", "source.ip": "192.168.1.6",
         "destination": {"ip": "8.8.4.4"}, "dns.question.name": "printer.local"},
        {"@timestamp": "2024-05-01T10:02:00Z", "source": {"ip": "192.168.1.6"},
         "file": {"hash": {"sha256": "A" * 64}}},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    fields = ["source.ip", "dns.question.name", "url.full", "destination.ip", "file.hash.sha256"]
    totals = ingest(engine, "ecs", path, fields=fields)
    assert stored_hits(engine) == Counter(
        {
            ("domain", "login.example-bank.com"): 1,
            ("url", "https://login.example-bank.com/verify?id=1"): 1,
            ("ip", "8.8.4.4"): 1,
            ("file", "a" * 64): 1,
        }
    )
    assert totals.skipped_private == 4  # three private source.ip values and printer.local


def test_ecs_value_named_by_two_fields_is_one_sighting(engine, tmp_path):
    """destination.domain and url.domain of one event usually hold the same name."""
    path = tmp_path / "events.ndjson"
    event = {
        "@timestamp": "2024-05-01T10:00:00Z",
        "source": {"ip": "192.168.1.5"},
        "destination": {"domain": "cdn.example.org"},
        "url": {"domain": "cdn.example.org", "full": "https://cdn.example.org/a.js"},
    }
    path.write_text(json.dumps(event) + "\n")
    ingest(engine, "ecs", path)
    assert stored_hits(engine) == Counter(
        {("domain", "cdn.example.org"): 1, ("url", "https://cdn.example.org/a.js"): 1}
    )


def test_plain_list(engine, tmp_path):
    path = tmp_path / "iocs.txt"
    path.write_text(
        "# pasted from a report\nevil[.]example[.]com\n185.220.101.66\n\n10.0.0.1\nnot a value\n"
    )
    totals = ingest(engine, "plain", path)
    assert stored_hits(engine) == Counter(
        {("domain", "evil.example.com"): 1, ("ip", "185.220.101.66"): 1}
    )
    assert (totals.skipped_private, totals.invalid) == (1, 1)


def test_csv_module_agrees_with_zeek_tsv_field_count():
    """Guards the independent TSV reader used above against a malformed sample."""
    path = TEST_DATA / "zeek/zed-sample-dns.log.tsv"
    with open(path) as handle:
        rows = [r for r in csv.reader(handle, delimiter="\t") if r and not r[0].startswith("#")]
    assert len(rows) == 300 and {len(r) for r in rows} == {24}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["suricata", "zeek", "ecs", "plain", "dnsmasq"]))
def test_parsers_only_ever_raise_parse_errors(data, source):
    """Random bytes are a recorded bad line, never a crash of the collector."""
    parser = parser_factory(source)("x.log")
    batch = Batch(parser.source)
    for line in data.split(b"\n"):
        with contextlib.suppress(ParseError):
            parser.feed(line, batch)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["timestamp", "event_type", "src_ip", "dest_ip", "dns", "tls", "http",
                         "alert", "fileinfo", "flow"]),
        st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                     | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8),
    ),
    st.sampled_from(["dns", "tls", "http", "alert", "fileinfo", "flow"]),
)  # fmt: skip
def test_suricata_wrong_types_are_parse_errors(event, event_type):
    event["event_type"] = event_type
    event.setdefault("timestamp", "2024-05-01T10:15:00.123456+0000")
    parser = SuricataParser(flows=True)
    with contextlib.suppress(ParseError):
        parser.feed(orjson.dumps(event), Batch("suricata"))


def test_pihole_ftl_waits_for_a_locked_database(engine, tmp_path):
    path = tmp_path / "pihole-FTL.db"
    ftl = _ftl_db(path, "v6")
    ftl.execute(
        "INSERT INTO query_storage (id, timestamp, type, status, domain, client) "
        "VALUES (1, 1700000000, 1, 2, 1, 1)"
    )
    ftl.commit()
    ftl.execute("BEGIN EXCLUSIVE")  # Pi-hole in the middle of writing
    done = threading.Event()
    result = {}

    def run():
        result["totals"] = ingest(engine, "pihole-ftl", path)
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    assert not done.wait(0.8)  # waiting, not failing
    ftl.rollback()
    worker.join(timeout=30)
    assert result["totals"].hits == 1
