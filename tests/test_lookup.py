"""VirusTotal lookups end to end: vt-py over real HTTP to the emulator, real databases."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from helpers import lookup_outcomes, run_cli, settings_for
from sources_helpers import ingest
from vtguardian.clock import as_naive_utc, utcnow
from vtguardian.dashboards.macros import TimeRange
from vtguardian.dashboards.panels import panels
from vtguardian.intel.lookup import LookupService
from vtguardian.store import migrate, queue
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.store.queue import TIER_NEW, QueueRequest
from vtguardian.store.schema import lookup_queue, lookup_stats, reports, verdicts
from vtguardian.testing.vt_emulator import DEFAULT_KEY
from vtguardian.web.app import create_app
from vtguardian.web.panel_data import run_panel

# A shortened "minute" so pauses after a 429 (one minute, escalating) last half a second.
FAST_MINUTE = {"minute_seconds": 0.5, "safety_seconds": 0.05}


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.05))


def _queue_domains(engine, names, tier=TIER_NEW):
    now = utcnow()
    with write_transaction(engine) as connection:
        ids = ensure_iocs(connection, {("domain", n): (None, now, now) for n in names})
        queue.enqueue(connection, [QueueRequest(i, tier) for i in ids.values()], now)
    return ids


def _service(engine, db_url, vt_url, **sections):
    return LookupService(settings_for(db_url, vt_url, **sections), engine, sleep=_no_sleep)


def test_worker_answers_each_queued_ioc_once_and_stores_it(engine, db_url, vt_emulator):
    names = ["malware-c2.example.net", "www.google.com", "brand-new-domain.example.com"] + [
        f"site{n}.example.com" for n in range(12)
    ]
    _queue_domains(engine, names)
    report = asyncio.run(_service(engine, db_url, vt_emulator.url).run_worker(once=True))
    assert report.requests == len(names)
    assert Counter(vt_emulator.emulator.answered()) == Counter(("domain", n) for n in names)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(lookup_queue)).scalar() == 0
        levels = dict(
            connection.execute(
                text("SELECT i.value, v.verdict FROM verdicts v JOIN iocs i ON i.id = v.ioc_id")
            ).all()
        )
        found = connection.execute(
            select(func.sum(lookup_stats.c.count)).where(lookup_stats.c.outcome == "found")
        ).scalar()
    assert levels["malware-c2.example.net"] == "malicious"
    assert levels["www.google.com"] == "harmless"
    assert levels["brand-new-domain.example.com"] == "unknown"
    assert len(levels) == len(names)
    assert int(found) == report.found


def test_cache_lifetime_depends_on_the_verdict(engine, db_url, vt_emulator):
    _queue_domains(
        engine,
        ["brand-new-domain.example.com", "malware-c2.example.net", "www.google.com",
         "grayware.example.com"],
    )  # fmt: skip
    service = _service(engine, db_url, vt_emulator.url, cache={"unknown_ttl_days": 0.5})
    asyncio.run(service.run_worker(once=True))
    with engine.connect() as connection:
        rows = connection.execute(
            select(verdicts.c.verdict, verdicts.c.checked_at, verdicts.c.expires_at)
        ).all()
    ttl = {verdict: expires - checked for verdict, checked, expires in rows}
    assert ttl["unknown"] == timedelta(days=0.5)
    assert ttl["malicious"] == timedelta(days=1)  # bad verdicts are re-checked sooner
    assert ttl["suspicious"] == timedelta(days=2)
    assert ttl["harmless"] == timedelta(days=7)


def test_cached_ioc_costs_zero_requests_then_expires(engine, db_url, vt_emulator):
    service = _service(engine, db_url, vt_emulator.url)
    first = asyncio.run(service.lookup_values(["malware-c2.example.net"]))
    assert first[0].source == "virustotal" and first[0].verdict == "malicious"
    assert first[0].malicious == 14 and first[0].total == 86
    calls = len(vt_emulator.emulator.calls())
    again = asyncio.run(service.lookup_values(["Malware-C2.example.net."]))
    assert again[0].source == "cache" and again[0].verdict == "malicious"
    assert len(vt_emulator.emulator.calls()) == calls
    # After the TTL the answer is not served: it is asked again.
    with write_transaction(engine) as connection:
        connection.execute(update(verdicts).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = asyncio.run(service.lookup_values(["malware-c2.example.net"]))
    assert expired[0].source == "virustotal"
    assert len(vt_emulator.emulator.calls()) == calls + 1


def test_a_cached_lookup_is_not_a_sighting_and_counts_every_hit(engine, db_url, vt_emulator):
    """Looking a value up must not make it "seen" in traffic (which would also make it
    due for a re-check); each cache hit still counts for the statistics and the LRU."""
    _queue_domains(engine, ["looked-up.example.com"])
    service = _service(engine, db_url, vt_emulator.url)
    asyncio.run(service.run_worker(once=True))
    seen = (utcnow() - timedelta(days=3)).replace(microsecond=0)
    with write_transaction(engine) as connection:
        connection.execute(text("UPDATE iocs SET last_seen = :seen"), {"seen": seen})
        connection.execute(update(verdicts).values(last_used_at=seen))
    calls = len(vt_emulator.emulator.calls())
    names = ["looked-up.example.com", "LOOKED-UP.example.com.", "looked-up.example.com"]
    answers = asyncio.run(service.lookup_values(names))
    assert [a.source for a in answers] == ["cache"] * 3
    assert len(vt_emulator.emulator.calls()) == calls
    with engine.connect() as connection:
        last_seen = connection.execute(text("SELECT last_seen FROM iocs")).scalar_one()
        last_used = connection.execute(select(verdicts.c.last_used_at)).scalar_one()
        hits = connection.execute(
            select(func.sum(lookup_stats.c.count)).where(lookup_stats.c.outcome == "cache_hit")
        ).scalar()
    assert as_naive_utc(last_seen) == seen
    assert as_naive_utc(last_used) > seen
    assert int(hits) == 3


def test_expired_answers_of_iocs_still_seen_are_requeued(engine, db_url, vt_emulator):
    ids = _queue_domains(engine, ["still-seen.example.com", "gone.example.com"])
    service = _service(engine, db_url, vt_emulator.url)
    asyncio.run(service.run_worker(once=True))
    past = utcnow() - timedelta(days=8)
    with write_transaction(engine) as connection:
        connection.execute(update(verdicts).values(expires_at=past, checked_at=past))
        connection.execute(
            text("UPDATE iocs SET last_seen = :now WHERE value = 'still-seen.example.com'"),
            {"now": utcnow()},
        )
        connection.execute(
            text("UPDATE iocs SET last_seen = :past WHERE value = 'gone.example.com'"),
            {"past": past - timedelta(days=1)},
        )
    with write_transaction(engine) as connection:
        assert queue.requeue_stale(connection) == 1
        queued = connection.execute(select(lookup_queue.c.ioc_id, lookup_queue.c.tier)).all()
    assert queued == [(ids[("domain", "still-seen.example.com")], queue.TIER_RECHECK)]


def _hit_rate(engine) -> float | None:
    """The "Cache hit rate" panel's SQL over the last day, as the page runs it."""
    panel = next(p for p in panels() if p.key == "cache_hit_rate")
    now = int(time.time())
    (result,) = run_panel(engine, panel, TimeRange(now - 86400, now + 3600, "1h"), {})
    value = result["rows"][0][0]
    return None if value is None else float(value)


def test_worker_requests_count_as_cache_misses_once_each(engine, db_url, vt_emulator):
    """After a worker drained the queue the "Cache hit rate" panel has a value (after the
    demo it showed "-"): a VirusTotal request for an IoC without a fresh answer, new or
    a re-check of an expired one, is a miss; one the API counted when it queued the IoC
    is not counted again when the worker asks."""
    ids = _queue_domains(engine, ["a.example.com", "b.example.com", "c.example.com"])
    service = _service(engine, db_url, vt_emulator.url)
    asyncio.run(service.run_worker(once=True))
    assert lookup_outcomes(engine).get("cache_miss") == 3
    assert _hit_rate(engine) == 0.0  # no hit yet, but a rate: not "-"
    # Looked up through the API: not cached, so queued and counted as a miss right then.
    settings = settings_for(db_url, vt_emulator.url, web={"token": "t0ken"})
    with TestClient(create_app(settings, engine), base_url="http://127.0.0.1") as client:
        queued = client.post(
            "/api/v1/lookup",
            json={"values": ["malware-c2.example.net"]},
            headers={"Authorization": "Bearer t0ken"},
        ).json()
    assert queued["results"][0]["status"] == "queued"
    asyncio.run(service.run_worker(once=True))
    # a.example.com's answer expired while the network still talks to it: a re-check.
    past = utcnow() - timedelta(days=8)
    with write_transaction(engine) as connection:
        connection.execute(
            update(verdicts)
            .where(verdicts.c.ioc_id == ids[("domain", "a.example.com")])
            .values(expires_at=past, checked_at=past)
        )
        assert queue.requeue_stale(connection) == 1
    asyncio.run(service.run_worker(once=True))
    names = ["b.example.com", "B.example.com.", "malware-c2.example.net"]
    assert [r.source for r in asyncio.run(service.lookup_values(names))] == ["cache"] * 3
    assert len(vt_emulator.emulator.calls()) == 5
    outcomes = lookup_outcomes(engine)
    assert (outcomes["cache_hit"], outcomes["cache_miss"]) == (3, 3 + 1 + 1)
    assert _hit_rate(engine) == pytest.approx(3 / 8)


def test_an_ingest_queues_only_what_has_no_fresh_answer(engine, db_url, vt_emulator, tmp_path):
    ids = _queue_domains(engine, ["fresh.example.com", "stale.example.com"])
    asyncio.run(_service(engine, db_url, vt_emulator.url).run_worker(once=True))
    with write_transaction(engine) as connection:
        connection.execute(
            update(verdicts)
            .where(verdicts.c.ioc_id == ids[("domain", "stale.example.com")])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    listing = tmp_path / "iocs.txt"
    listing.write_text("fresh.example.com\nstale.example.com\nunknown.example.com\n")
    ingest(engine, "plain", listing)
    with engine.connect() as connection:
        queued = connection.execute(
            select(lookup_queue.c.ioc_id, lookup_queue.c.tier, lookup_queue.c.reason)
        ).all()
        new_id = connection.execute(
            text("SELECT id FROM iocs WHERE value = 'unknown.example.com'")
        ).scalar()
    assert sorted(queued) == sorted(
        [
            (ids[("domain", "stale.example.com")], queue.TIER_RECHECK, "recheck"),
            (new_id, queue.TIER_NEW, "new"),
        ]
    )


def test_cache_evicts_least_recently_used_beyond_the_limit(engine, db_url, vt_emulator):
    service = _service(engine, db_url, vt_emulator.url, cache={"max_entries": 3})
    for name in ["a1.example.com", "a2.example.com", "a3.example.com"]:
        asyncio.run(service.lookup_values([name]))
    asyncio.run(service.lookup_values(["a1.example.com"]))  # a1 used again: a2 is now oldest
    asyncio.run(service.lookup_values(["a4.example.com"]))
    with engine.connect() as connection:
        live = connection.execute(
            text(
                "SELECT i.value FROM verdicts v JOIN iocs i ON i.id = v.ioc_id "
                "WHERE v.expires_at IS NOT NULL"
            )
        ).scalars()
        assert sorted(live) == ["a1.example.com", "a3.example.com", "a4.example.com"]
        assert connection.execute(select(func.count()).select_from(verdicts)).scalar() == 4


def test_private_and_local_values_never_reach_virustotal(engine, db_url, vt_emulator):
    service = _service(engine, db_url, vt_emulator.url)
    values = [
        "192.168.1.10",
        "10.1.2.3",
        "printer.local",
        "nas.home.arpa",
        "router",
        "fe80::1",
        "100.64.1.1",
        "1.168.192.in-addr.arpa",
        "http://192.168.1.1/admin",
        "8.8.8.8",
    ]
    results = asyncio.run(service.lookup_values(values))
    assert [r.eligible for r in results] == [False] * 9 + [True]
    assert vt_emulator.emulator.looked_up() == [("ip", "8.8.8.8")]


def test_faults_lose_nothing_and_repeat_no_success(engine, db_url, vt_emulator):
    names = [f"flaky{n}.example.com" for n in range(40)]
    _queue_domains(engine, names)
    vt_emulator.emulator.configure(
        {"faults": {"error_rate": 0.2, "drop_rate": 0.1, "burst_429": 3, "seed": 7}}
    )
    # An unlucky IoC can fail six times in a row: a short backoff keeps the test short.
    service = _service(
        engine, db_url, vt_emulator.url, virustotal=FAST_MINUTE, queue={"retry_base_seconds": 0.02}
    )
    report = asyncio.run(service.run_worker(once=True))
    answered = Counter(vt_emulator.emulator.answered())
    assert answered == Counter(("domain", n) for n in names)  # each exactly once
    outcomes = Counter(c.outcome for c in vt_emulator.emulator.calls())
    assert outcomes["transient"] > 0 and outcomes["dropped"] > 0 and outcomes["burst"] == 3
    assert report.quota_refusals == 3 and report.errors > 0
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(verdicts)).scalar() == 40
        assert connection.execute(select(func.count()).select_from(lookup_queue)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(reports)).scalar() == 40
    # One miss for each IoC, however often its request was retried.
    assert lookup_outcomes(engine)["cache_miss"] == 40


# VTGUARDIAN_LONG_TESTS=1 runs this at the literal 20 requests per real minute (5 minutes);
# by default the emulator's and our "minute" are both 3 seconds, same logic, same budget.
MINUTE = "60" if os.environ.get("VTGUARDIAN_LONG_TESTS") else "3"


def test_three_worker_processes_share_the_quota_on_mariadb(mariadb_url, vt_emulator, tmp_path):
    engine = make_engine(mariadb_url)
    migrate.upgrade(engine)
    names = [f"shared{n}.example.com" for n in range(100)]
    _queue_domains(engine, names)
    vt_emulator.emulator.configure({"quota": {"per_minute": 20, "minute_seconds": float(MINUTE)}})
    env = {
        "VTGUARDIAN_DATABASE__URL": mariadb_url,
        "VTGUARDIAN_VIRUSTOTAL__HOST": vt_emulator.url,
        "VT_API_KEY": DEFAULT_KEY,
        "VTGUARDIAN_VIRUSTOTAL__PER_MINUTE": "20",
        "VTGUARDIAN_VIRUSTOTAL__MINUTE_SECONDS": MINUTE,
        "VTGUARDIAN_VIRUSTOTAL__SAFETY_SECONDS": "0.3",
        # One request per IoC is what is counted here (a malicious one's relationships
        # would add some; tests/test_analyses.py covers them).
        "VTGUARDIAN_VIRUSTOTAL__RELATIONSHIP_REQUESTS_PER_DAY": "0",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vtguardian", "worker", "--once"],
            env={**os.environ, **env},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=240 * int(MINUTE)) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    emulator = vt_emulator.emulator
    assert emulator.over_budget() == 0  # we never sent a request beyond the budget
    assert Counter(emulator.answered()) == Counter(("domain", n) for n in names)
    requests_per_worker = [int(out.split(" requests")[0].split()[-1]) for out, _ in outputs]
    assert sum(requests_per_worker) == 100 and min(requests_per_worker) > 0
    with engine.connect() as connection:
        stored = connection.execute(select(func.count(func.distinct(reports.c.ioc_id)))).scalar()
        report_rows = connection.execute(select(func.count()).select_from(reports)).scalar()
    assert stored == report_rows == 100
    engine.dispose()


def test_wrong_key_is_one_line_exit_2_and_never_leaks(tmp_path, vt_emulator):
    secret = "deadbeef" * 8
    db = tmp_path / "vt.db"
    env = {
        "VTGUARDIAN_DATABASE__URL": f"sqlite:///{db}",
        "VTGUARDIAN_VIRUSTOTAL__HOST": vt_emulator.url,
        "VT_API_KEY": secret,
    }
    result = run_cli("lookup", "example.com", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "rejected the API key" in lines[0]
    assert secret not in result.stdout + result.stderr
    assert secret.encode() not in db.read_bytes()
    for wal in tmp_path.glob("vt.db-*"):
        assert secret.encode() not in wal.read_bytes()
    worker = run_cli("worker", "--once", env=env)
    assert secret not in worker.stdout + worker.stderr


def test_missing_key_is_a_clear_error(tmp_path, vt_emulator):
    env = {"VTGUARDIAN_DATABASE__URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = run_cli("lookup", "example.com", env=env)
    assert result.returncode == 2
    assert "no VirusTotal API key" in result.stderr


def test_lookup_cli_json_and_quota_cli(tmp_path, vt_emulator):
    env = {
        "VTGUARDIAN_DATABASE__URL": f"sqlite:///{tmp_path / 'x.db'}",
        "VTGUARDIAN_VIRUSTOTAL__HOST": vt_emulator.url,
        "VT_API_KEY": DEFAULT_KEY,
    }
    result = run_cli("lookup", "--json", "malware-c2.example.net", "192.168.1.1", env=env)
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["verdict"] == "malicious" and first["source"] == "virustotal"
    assert first["malicious"] == 14 and len(first["engines"]) == 14
    assert first["last_analysis_date"].endswith("Z")
    assert second["eligible"] is False and second["verdict"] is None
    quota = json.loads(run_cli("quota", "--json", env=env).stdout)
    assert quota["windows"]["day"] == {"used": 1, "limit": 500, "remaining": 499}
    assert quota["queue"] == 0


@pytest.mark.parametrize(
    "kind_value",
    [
        ("url", "http://malware-c2.example.net/gate.php"),
        ("file", "44d88612fea8a8f36de82e1278abb02f"),
        ("ip", "185.220.101.66"),
    ],
)
def test_every_ioc_type_is_looked_up(engine, db_url, vt_emulator, kind_value):
    kind, value = kind_value
    service = _service(engine, db_url, vt_emulator.url)
    (result,) = asyncio.run(service.lookup_values([value]))
    assert result.type == kind and result.verdict == "malicious"
    with engine.connect() as connection:
        permalink = connection.execute(select(reports.c.permalink)).scalar()
    assert permalink.startswith("https://www.virustotal.com/gui/")


def test_a_direct_lookup_retries_then_hands_over_to_the_worker(engine, db_url, vt_emulator):
    """VirusTotal failing on every try: backed off, doubling, then queued at the top for
    the worker, which answers it once VirusTotal is back. Nothing is lost."""
    slept: list[float] = []

    async def clock(seconds: float) -> None:
        slept.append(seconds)

    service = _service(engine, db_url, vt_emulator.url)
    service._sleep = clock
    vt_emulator.emulator.configure({"faults": {"error_rate": 1.0}})
    failed = asyncio.run(service.lookup_values(["www.example.org"]))
    assert failed[0].verdict == "pending" and "queued for the worker" in (failed[0].error or "")
    assert len(vt_emulator.emulator.calls()) == 3  # DIRECT_RETRIES tries
    assert slept == [2.0, 4.0]  # between tries, doubling; none after the last
    with engine.connect() as connection:
        queued = connection.execute(select(lookup_queue.c.tier, lookup_queue.c.reason)).all()
    assert [tuple(row) for row in queued] == [(queue.TIER_ALERT, "cli")]
    vt_emulator.emulator.configure({"faults": {"error_rate": 0.0}})
    asyncio.run(service.run_worker(once=True))
    assert asyncio.run(service.lookup_values(["www.example.org"]))[0].source == "cache"
