"""Event enrichment with a warm cache, local providers, and queueing of the unknown."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import orjson
from sqlalchemy import text

from helpers import lookup_outcomes, run_cli, settings_for
from vtguardian.clock import as_naive_utc, utcnow
from vtguardian.intel.enrich import Enricher
from vtguardian.intel.flow import Flow
from vtguardian.intel.lookup import LookupService
from vtguardian.iocs import Classifier
from vtguardian.store.engine import write_transaction


def _warm(engine, db_url, vt_url, values):
    service = LookupService(settings_for(db_url, vt_url), engine)
    asyncio.run(service.lookup_values(values))


def test_enrich_cli_adds_ecs_enrichments_and_queues_unknown_once(
    engine, db_url, vt_emulator, tmp_path
):
    _warm(engine, db_url, vt_emulator.url, ["malware-c2.example.net", "www.google.com"])
    events = [
        {"@timestamp": "2026-11-20T10:00:00Z", "source": {"ip": "192.168.1.5"},
         "dns": {"question": {"name": "malware-c2.example.net"}}},
        {"@timestamp": "2026-11-20T10:00:01Z", "source": {"ip": "192.168.1.6"},
         "dns": {"question": {"name": "www.google.com"}}},
        {"@timestamp": "2026-11-20T10:00:02Z", "source": {"ip": "192.168.1.6"},
         "url": {"full": "https://never-seen.example.org/x"}},
        {"@timestamp": "2026-11-20T10:00:03Z", "source": {"ip": "192.168.1.7"},
         "url": {"full": "https://never-seen.example.org/x"}},
        {"@timestamp": "2026-11-20T10:00:04Z", "message": "no indicators here"},
    ]  # fmt: skip
    source = tmp_path / "in.ndjson"
    source.write_text("".join(json.dumps(e) + "\n" for e in events) + "not json\n")
    target = tmp_path / "out.ndjson"
    env = {"VTGUARDIAN_DATABASE__URL": db_url}
    result = run_cli("enrich", "--in", str(source), "--out", str(target), env=env)
    assert result.returncode == 0, result.stderr
    assert "1 lines that were not JSON objects skipped" in result.stderr
    out = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(out) == 5
    bad, good, unknown, unknown_again, empty = out
    (entry,) = bad["threat"]["enrichments"]
    assert entry["indicator"]["type"] == "domain-name"
    assert entry["indicator"]["url"]["domain"] == "malware-c2.example.net"
    assert entry["indicator"]["provider"] == "virustotal"
    assert entry["matched"] == {
        "atomic": "malware-c2.example.net",
        "field": "dns.question.name",
        "type": "indicator_match_rule",
        "occurred": entry["matched"]["occurred"],
    }
    assert entry["vtguardian"]["verdict"] == "malicious"
    assert entry["vtguardian"]["ratio"] > 0.1 and entry["vtguardian"]["last_analysis_date"]
    assert bad["vtguardian"] == {"is_malicious": True, "ioc": {"global": {"result": "malicious"}}}
    assert good["vtguardian"]["ioc"]["global"]["result"] == "harmless"
    assert good["threat"]["enrichments"][0]["vtguardian"]["verdict"] == "harmless"
    assert unknown["vtguardian"]["ioc"]["global"]["result"] == "pending"
    assert "threat" not in unknown and unknown_again["vtguardian"]["is_malicious"] is False
    assert empty["vtguardian"]["ioc"]["global"]["result"] == "unknown"
    with engine.connect() as connection:
        queued = (
            connection.execute(
                text("SELECT i.value FROM lookup_queue q JOIN iocs i ON i.id = q.ioc_id")
            )
            .scalars()
            .all()
        )
    assert queued == ["https://never-seen.example.org/x"]
    assert len(vt_emulator.emulator.calls()) == 2  # enrichment never asked VirusTotal


def test_enrich_cli_counts_cache_hits_and_misses_and_keeps_used_entries_fresh(
    engine, db_url, vt_emulator, tmp_path
):
    """The hit rate panel counts what enrichment answered from the cache, once per IoC
    a run, and eviction sees those entries as used."""
    _warm(engine, db_url, vt_emulator.url, ["malware-c2.example.net", "www.google.com"])
    long_ago = (utcnow() - timedelta(days=5)).replace(microsecond=0)
    with write_transaction(engine) as connection:
        connection.execute(text("DELETE FROM lookup_stats"))
        connection.execute(text("UPDATE verdicts SET last_used_at = :t"), {"t": long_ago})
    names = ["malware-c2.example.net", "www.google.com", "never-seen.example.org"] * 4
    source = tmp_path / "in.ndjson"
    source.write_text("".join(json.dumps({"dns": {"question": {"name": n}}}) + "\n" for n in names))
    env = {"VTGUARDIAN_DATABASE__URL": db_url}
    result = run_cli("enrich", "--in", str(source), "--out", str(tmp_path / "out"), env=env)
    assert result.returncode == 0, result.stderr
    with engine.connect() as connection:
        used = connection.execute(text("SELECT last_used_at FROM verdicts")).scalars().all()
    assert lookup_outcomes(engine) == {"cache_hit": 2, "cache_miss": 1}
    assert len(used) == 2 and all(as_naive_utc(stamp) > long_ago for stamp in used)


def test_feeds_enrich_without_a_lookup(engine, db_url, vt_emulator, tmp_path):
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("0.0.0.0 listed.example.com\n")
    settings = settings_for(db_url, vt_emulator.url, feeds={"files": [str(hosts)]})
    classifier = Classifier.from_settings(settings)
    enricher = Enricher(engine, classifier, Flow(settings, classifier), ["dns.question.name"])
    (event,) = enricher.enrich([{"dns": {"question": {"name": "listed.example.com"}}}])
    (entry,) = event["threat"]["enrichments"]
    assert entry["indicator"]["provider"] == "feeds"
    assert event["vtguardian"]["is_malicious"] is True
    assert enricher.stats.queued == 0


def test_100k_events_with_a_warm_cache(engine, db_url, vt_emulator):
    names = [f"host{n}.example.com" for n in range(50)]
    _warm(engine, db_url, vt_emulator.url, names)
    calls = len(vt_emulator.emulator.calls())
    classifier = Classifier()
    enricher = Enricher(engine, classifier, None, ["dns.question.name", "destination.ip"])
    events = (
        {"dns": {"question": {"name": names[n % 50]}}, "destination": {"ip": "10.0.0.1"}, "n": n}
        for n in range(100_000)
    )
    ndjson = b"".join(orjson.dumps(event) + b"\n" for event in enricher.enrich(events))
    lines = ndjson.splitlines()
    assert len(lines) == 100_000
    for n, line in enumerate(lines):
        event = orjson.loads(line)  # valid NDJSON, one event per line, in order
        assert event["n"] == n
        (entry,) = event["threat"]["enrichments"]  # 10.0.0.1 is private: never an IoC
        assert entry["matched"]["atomic"] == names[n % 50] == entry["indicator"]["url"]["domain"]
        assert event["vtguardian"]["ioc"]["global"]["result"] == entry["vtguardian"]["verdict"]
    assert enricher.stats.queued == 0 and len(vt_emulator.emulator.calls()) == calls


def test_ndjson_path_matches_the_object_path(engine, db_url, vt_emulator):
    _warm(engine, db_url, vt_emulator.url, ["malware-c2.example.net", "www.google.com"])
    events = [
        {"dns": {"question": {"name": "malware-c2.example.net"}}, "source": {"ip": "8.8.8.8"}},
        {"dns": {"question": {"name": "www.google.com"}}},
        {"dns.question.name": "www.google.com", "threat": {"framework": "MITRE ATT&CK"}},
        {},
        {"url": {"full": "https://unknown.example.org/"}, "vtguardian": {"note": "old"}},
    ]

    def strip(event):
        for entry in event.get("threat", {}).get("enrichments", []):
            entry["matched"].pop("occurred")
        return event

    fields = ["dns.question.name", "source.ip", "url.full"]
    objects = Enricher(engine, Classifier(), None, fields, queue_unknown=False)
    lines = Enricher(engine, Classifier(), None, fields, queue_unknown=False)
    expected = [strip(e) for e in objects.enrich([orjson.loads(orjson.dumps(e)) for e in events])]
    produced = b"".join(lines.enrich_lines(orjson.dumps(e) + b"\n" for e in events))
    got = [strip(orjson.loads(line)) for line in produced.splitlines()]
    assert got == expected
    assert got[2]["threat"]["framework"] == "MITRE ATT&CK"
    assert got[3] == {
        "vtguardian": {"is_malicious": False, "ioc": {"global": {"result": "unknown"}}}
    }
    assert (objects.stats.enriched, lines.stats.enriched) == (3, 3)
