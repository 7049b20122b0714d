"""The flow of providers: real feed files, the OTX and VirusTotal emulators over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from sqlalchemy import text

from helpers import run_cli, settings_for
from vtguardian.clock import utcnow
from vtguardian.intel.feeds import Feeds
from vtguardian.intel.lookup import LookupService
from vtguardian.iocs import IocType
from vtguardian.store import queue
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.testing.otx_emulator import OTX_KEY, OtxEmulator, OtxServer

URLHAUS = """\
################################################################
# abuse.ch URLhaus Database Dump (CSV - recent URLs)           #
# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter
################################################################
"3312345","2026-11-20 10:01:02","http://198.51.100.23/bins/mozi.m","online","2026-11-20 10:01:02","malware_download","elf,Mozi","https://urlhaus.abuse.ch/url/3312345/","lrz_urlhaus"
"3312346","2026-11-20 10:05:09","https://dropper.example.net/invoice.zip","online","2026-11-20 10:05:09","malware_download","zip","https://urlhaus.abuse.ch/url/3312346/","abuse_ch"
"""
HOSTS = """\
# malware hosts
0.0.0.0 listed-c2.example.com
0.0.0.0 trusted-but-listed.example.org  # a false positive in the feed
"""
IPS = "# bad addresses\n185.220.101.66\n45.95.147.0/24\n"


async def _fast(seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.05))


@pytest.fixture
def feed_files(tmp_path):
    paths = []
    for name, content in (("urlhaus.csv", URLHAUS), ("hosts.txt", HOSTS), ("ips.txt", IPS)):
        path = tmp_path / name
        path.write_text(content)
        paths.append(str(path))
    return paths


def _queue(engine, items):
    now = utcnow()
    with write_transaction(engine) as connection:
        ids = ensure_iocs(connection, {item: (None, now, now) for item in items})
        queue.enqueue(connection, [queue.QueueRequest(i, queue.TIER_NEW) for i in ids.values()])


def _decisions(engine):
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT i.value, v.decided_by, v.verdict FROM verdicts v "
                "JOIN iocs i ON i.id = v.ioc_id"
            )
        ).all()
    return {value: f"{by}:{verdict}" for value, by, verdict in rows}


def _run(engine, db_url, vt, **sections):
    service = LookupService(settings_for(db_url, vt.url, **sections), engine, sleep=_fast)
    return asyncio.run(service.run_worker(once=True))


def test_feed_parsing(feed_files):
    feeds = Feeds(feed_files)
    assert feeds.lookup(IocType.URL, "http://198.51.100.23/bins/mozi.m") == "urlhaus.csv"
    assert feeds.lookup(IocType.URL, "https://dropper.example.net/invoice.zip") == "urlhaus.csv"
    assert feeds.lookup(IocType.DOMAIN, "listed-c2.example.com") == "hosts.txt"
    assert feeds.lookup(IocType.DOMAIN, "sub.listed-c2.example.com") is None  # exact only
    assert feeds.lookup(IocType.IP, "185.220.101.66") == "ips.txt"
    assert feeds.lookup(IocType.IP, "45.95.147.200") == "ips.txt"
    assert feeds.lookup(IocType.IP, "8.8.8.8") is None


def test_feeds_reload_when_the_file_changes(feed_files):
    feeds = Feeds(feed_files, check_every=0)
    assert feeds.lookup(IocType.DOMAIN, "new-threat.example.com") is None
    time.sleep(0.01)
    with open(feed_files[1], "a") as handle:
        handle.write("0.0.0.0 new-threat.example.com\n")
    os.utime(feed_files[1], None)
    assert feeds.lookup(IocType.DOMAIN, "new-threat.example.com") == "hosts.txt"


def test_a_feed_hit_ends_the_flow_without_virustotal(engine, db_url, vt_emulator, feed_files):
    _queue(engine, [("domain", "listed-c2.example.com"), ("ip", "185.220.101.66"),
                    ("domain", "www.google.com")])  # fmt: skip
    report = _run(engine, db_url, vt_emulator, feeds={"files": feed_files})
    assert report.decided_locally == 2 and report.requests == 1
    assert vt_emulator.emulator.looked_up() == [("domain", "www.google.com")]
    decisions = _decisions(engine)
    assert decisions["listed-c2.example.com"] == "feeds:malicious"
    assert decisions["185.220.101.66"] == "feeds:malicious"
    assert decisions["www.google.com"] == "virustotal:harmless"


def test_disabling_a_provider_removes_it_from_the_flow(engine, db_url, vt_emulator, feed_files):
    _queue(engine, [("domain", "listed-c2.example.com")])
    flow = [{"provider": "feeds", "enabled": False}, {"provider": "virustotal"}]
    _run(engine, db_url, vt_emulator, feeds={"files": feed_files}, flow=flow)
    assert vt_emulator.emulator.looked_up() == [("domain", "listed-c2.example.com")]
    assert _decisions(engine)["listed-c2.example.com"].startswith("virustotal:")


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["allowlist", "feeds", "virustotal"], "allowlist:harmless"),
        (["feeds", "allowlist", "virustotal"], "feeds:malicious"),
    ],
)
def test_order_decides_who_decides(engine, db_url, vt_emulator, feed_files, order, expected):
    _queue(engine, [("domain", "trusted-but-listed.example.org")])
    _run(
        engine,
        db_url,
        vt_emulator,
        feeds={"files": feed_files},
        allowlist={"domains": ["example.org"]},
        flow=[{"provider": name} for name in order],
    )
    assert _decisions(engine)["trusted-but-listed.example.org"] == expected
    assert vt_emulator.emulator.looked_up() == []


def test_otx_decides_with_enough_pulses_and_defers_otherwise(engine, db_url, vt_emulator):
    otx = OtxEmulator(pulses={"known-bad.example.com": 5, "maybe-bad.example.com": 1})
    with OtxServer(otx) as server:
        _queue(engine, [("domain", "known-bad.example.com"), ("domain", "maybe-bad.example.com")])
        flow = [{"provider": "otx"}, {"provider": "virustotal"}]
        _run(engine, db_url, vt_emulator, otx={"api_key": OTX_KEY, "host": server.url}, flow=flow)
    decisions = _decisions(engine)
    assert decisions["known-bad.example.com"] == "otx:malicious"
    assert decisions["maybe-bad.example.com"].startswith("virustotal:")
    assert vt_emulator.emulator.looked_up() == [("domain", "maybe-bad.example.com")]
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT r.provider, r.verdict, r.decided FROM reports r JOIN iocs i "
                "ON i.id = r.ioc_id WHERE i.value = 'maybe-bad.example.com' ORDER BY r.id"
            )
        ).all()
        providers = connection.execute(
            text("SELECT providers FROM verdicts v JOIN iocs i ON i.id = v.ioc_id "
                 "WHERE i.value = 'maybe-bad.example.com'")
        ).scalar()  # fmt: skip
    assert [(r.provider, r.verdict, bool(r.decided)) for r in rows] == [
        ("otx", "suspicious", False),
        ("virustotal", "harmless", True),
    ]
    if isinstance(providers, str):  # MariaDB's JSON is text
        providers = json.loads(providers)
    assert providers == ["otx", "virustotal"]


def test_otx_failing_never_stops_a_lookup(engine, db_url, vt_emulator, tmp_path):
    otx = OtxEmulator()
    otx.fail = True
    with OtxServer(otx) as server:
        _queue(engine, [("domain", "www.google.com")])
        flow = [{"provider": "otx"}, {"provider": "virustotal"}]
        _run(engine, db_url, vt_emulator, otx={"api_key": OTX_KEY, "host": server.url}, flow=flow)
    assert _decisions(engine)["www.google.com"] == "virustotal:harmless"
    env = {"VTGUARDIAN_DATABASE__URL": db_url}
    steps = json.loads(run_cli("flow", "show", "--json", env=env).stdout)
    by_name = {step["provider"]: step for step in steps}
    assert by_name["otx"]["error"] == 1
    assert by_name["virustotal"]["decision"] == 1


def test_flow_show_counts_answers_and_decisions(engine, db_url, vt_emulator, feed_files):
    _queue(engine, [("domain", "listed-c2.example.com"), ("domain", "www.google.com")])
    _run(engine, db_url, vt_emulator, feeds={"files": feed_files})
    result = run_cli("flow", "show", "--json", env={"VTGUARDIAN_DATABASE__URL": db_url})
    steps = json.loads(result.stdout)
    assert [s["provider"] for s in steps] == ["allowlist", "feeds", "otx", "virustotal"]
    by_name = {s["provider"]: s for s in steps}
    assert (by_name["feeds"]["answer"], by_name["feeds"]["decision"]) == (1, 1)
    assert (by_name["virustotal"]["answer"], by_name["virustotal"]["decision"]) == (1, 1)
    assert by_name["otx"]["enabled"] is False
    table = run_cli("flow", "show", env={"VTGUARDIAN_DATABASE__URL": db_url})
    assert "feeds" in table.stdout and table.returncode == 0


def test_otx_enabled_without_a_key_is_a_config_error(tmp_path):
    path = tmp_path / "vtguardian.toml"
    path.write_text('[[flow]]\nprovider = "otx"\n[[flow]]\nprovider = "virustotal"\n')
    env = {"VTGUARDIAN_DATABASE__URL": f"sqlite:///{tmp_path / 'x.db'}", "VT_API_KEY": "k"}
    result = run_cli("--config", str(path), "lookup", "example.com", env=env)
    assert result.returncode == 2 and "otx.api_key" in result.stderr
