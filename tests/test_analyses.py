"""Fresh analyses, URL submissions and relationships: vt-py over HTTP to the emulator,
real databases (README, "Fresh analyses")."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, text, update

from helpers import settings_for
from test_alerts_hunt import Receiver
from vtguardian.clock import utcnow
from vtguardian.intel.lookup import LookupService
from vtguardian.store import queue
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs
from vtguardian.store.schema import analysis_requests, iocs, lookup_stats, related_iocs
from vtguardian.store.sightings import add_sightings, hour_bucket
from vtguardian.testing.server import BackgroundServer

FAST = {"poll_seconds": 0.05}


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.05))


def _queue(engine, items, tier=queue.TIER_NEW, seen=None):
    now = utcnow()
    seen = seen or now
    with write_transaction(engine) as connection:
        ids = ensure_iocs(connection, {item: (None, seen, seen) for item in items})
        queue.enqueue(connection, [queue.QueueRequest(i, tier) for i in ids.values()], now)
    return ids


def _service(engine, db_url, vt_url, **virustotal):
    settings = settings_for(db_url, vt_url, virustotal={**FAST, **virustotal})
    return LookupService(settings, engine, sleep=_no_sleep)


def _verdict(connection, value):
    return connection.execute(
        text("SELECT v.verdict FROM verdicts v JOIN iocs i ON i.id = v.ioc_id WHERE i.value = :v"),
        {"v": value},
    ).scalar()


def test_a_stale_report_is_reanalysed_polled_and_its_new_verdict_stored(
    engine, db_url, vt_emulator
):
    vt_emulator.emulator.configure({"analysis": {"polls_to_complete": 3}})
    _queue(engine, [("domain", "one-engine-fp.example.com"), ("domain", "www.google.com")])
    service = _service(engine, db_url, vt_emulator.url)
    report = asyncio.run(service.run_worker(once=True))
    calls = [(c.method, c.path) for c in vt_emulator.emulator.calls()]
    posts = [p for m, p in calls if m == "POST"]
    polls = [p for m, p in calls if p.startswith("/api/v3/analyses/")]
    # Only the stale one: www.google.com's analysis is recent.
    assert posts == ["/api/v3/domains/one-engine-fp.example.com/analyse"]
    assert len(polls) == 3  # queued, in-progress, completed
    gets = [p for m, p in calls if p == "/api/v3/domains/one-engine-fp.example.com"]
    assert len(gets) == 2  # the stale report, then the re-analysed object
    assert report.requests == len(calls)
    with engine.connect() as connection:
        assert _verdict(connection, "one-engine-fp.example.com") == "harmless"
        row = connection.execute(select(analysis_requests)).one()
        history = connection.execute(
            text(
                "SELECT h.old_verdict, h.new_verdict FROM verdict_history h "
                "JOIN iocs i ON i.id = h.ioc_id WHERE i.value = 'one-engine-fp.example.com' "
                "ORDER BY h.id"
            )
        ).all()
        counted = dict(
            connection.execute(
                select(lookup_stats.c.outcome, lookup_stats.c.count).where(
                    lookup_stats.c.outcome.in_(["reanalysis", "poll"])
                )
            ).all()
        )
    assert (row.kind, row.status, row.old_verdict, row.new_verdict, row.polls) == (
        "reanalyse",
        "done",
        "suspicious",
        "harmless",
        3,
    )
    assert [tuple(h) for h in history] == [(None, "suspicious"), ("suspicious", "harmless")]
    assert counted == {"reanalysis": 1, "poll": 3}


def test_reanalyses_keep_to_their_daily_cap_and_skip_iocs_nobody_contacts(
    engine, db_url, vt_emulator
):
    names = [f"old{n}.example.org" for n in range(4)]
    vt_emulator.emulator.configure(
        {"seeds": [{"type": "domain", "value": n, "harmless": 60, "undetected": 20,
                    "analysed_days_ago": 90} for n in [*names, "gone.example.org"]]}
    )  # fmt: skip
    _queue(engine, [("domain", n) for n in names])
    long_ago = utcnow() - timedelta(days=60)
    _queue(engine, [("domain", "gone.example.org")], seen=long_ago)
    service = _service(engine, db_url, vt_emulator.url, reanalyses_per_day=2)
    asyncio.run(service.run_worker(once=True))
    posts = [c.path for c in vt_emulator.emulator.calls() if c.method == "POST"]
    assert len(posts) == 2
    assert not any("gone.example.org" in p for p in posts)
    with engine.connect() as connection:
        done = connection.execute(
            select(analysis_requests.c.status).where(analysis_requests.c.kind == "reanalyse")
        ).scalars()
        assert sorted(done) == ["done", "done"]
    # The cap is counted in the database: another worker (or a restart) has none left.
    later = [f"later{n}.example.org" for n in range(2)]
    vt_emulator.emulator.configure(
        {"seeds": [{"type": "domain", "value": n, "harmless": 60, "undetected": 20,
                    "analysed_days_ago": 90} for n in later]}
    )  # fmt: skip
    _queue(engine, [("domain", n) for n in later])
    other = _service(engine, db_url, vt_emulator.url, reanalyses_per_day=2)
    other.worker = "another-host:1"
    asyncio.run(other.run_worker(once=True))
    assert len([c for c in vt_emulator.emulator.calls() if c.method == "POST"]) == 2


def test_an_alert_is_claimed_before_waiting_reanalyses(engine, db_url, vt_emulator):
    names = [f"stale{n}.example.org" for n in range(3)]
    vt_emulator.emulator.configure(
        {"seeds": [{"type": "domain", "value": n, "harmless": 60, "undetected": 20,
                    "analysed_days_ago": 90} for n in names]}
    )  # fmt: skip
    _queue(engine, [("domain", n) for n in names])
    service = _service(engine, db_url, vt_emulator.url)
    asyncio.run(service.run_worker(max_requests=3))  # three answers: three re-analyses due
    with engine.connect() as connection:
        waiting = connection.execute(select(queue.lookup_queue.c.reason)).scalars().all()
    assert sorted(waiting) == ["reanalyse"] * 3
    _queue(engine, [("domain", "malware-c2.example.net")], tier=queue.TIER_ALERT)
    before = len(vt_emulator.emulator.calls())
    asyncio.run(service.run_worker(max_requests=1))
    assert vt_emulator.emulator.calls()[before].path == "/api/v3/domains/malware-c2.example.net"


def test_unknown_urls_are_submitted_only_when_allowed(engine, db_url, vt_emulator):
    url = "http://dl.example-files.net/setup.exe"
    with_query = "http://dl.example-files.net/setup.exe?session=abc"
    vt_emulator.emulator.configure(
        {"seeds": [{"type": "url", "value": with_query, "unknown": True}]}
    )
    _queue(engine, [("url", url), ("url", with_query)])
    asyncio.run(_service(engine, db_url, vt_emulator.url).run_worker(once=True))
    assert not [c for c in vt_emulator.emulator.calls() if c.method == "POST"]  # off by default

    with write_transaction(engine) as connection:
        connection.execute(update(queue.verdicts).values(expires_at=utcnow()))
        connection.execute(update(iocs).values(last_seen=utcnow() + timedelta(seconds=1)))
        queue.requeue_stale(connection, utcnow() + timedelta(seconds=2))
    service = _service(engine, db_url, vt_emulator.url, submit_unknown_urls=True)
    asyncio.run(service.run_worker(once=True))
    posts = [c for c in vt_emulator.emulator.calls() if c.method == "POST"]
    assert [(c.path, c.value) for c in posts] == [("/api/v3/urls", url)]
    with engine.connect() as connection:
        assert _verdict(connection, url) == "malicious"  # what the submission found
        assert _verdict(connection, with_query) == "unknown"
        kinds = connection.execute(select(analysis_requests.c.kind)).scalars().all()
    assert kinds == ["submit"]


def test_relationships_link_two_contacted_iocs_within_the_budget(engine, db_url, vt_emulator):
    _queue(engine, [("domain", "malware-c2.example.net"), ("ip", "185.220.101.66")])
    _queue(engine, [("domain", "phish-login.example.org")])
    service = _service(engine, db_url, vt_emulator.url, relationship_requests_per_day=1)
    asyncio.run(service.run_worker(once=True))
    related = [c.path for c in vt_emulator.emulator.calls() if c.path.endswith("/resolutions")]
    assert len(related) == 1  # the budget of one request a day: the second malicious waits
    with engine.connect() as connection:
        pairs = connection.execute(
            text(
                "SELECT a.value, b.value, r.relation FROM related_iocs r "
                "JOIN iocs a ON a.id = r.ioc_id JOIN iocs b ON b.id = r.related_id"
            )
        ).all()
        assert connection.execute(select(related_iocs)).first() is not None
    assert pairs and {relation for _, _, relation in pairs} == {"resolutions"}
    assert len({name for name, _, _ in pairs}) == 1  # one IoC's resolutions: one request
    assert {pairs[0][0], pairs[0][1]} & {"malware-c2.example.net", "phish-login.example.org"}


def test_the_alert_names_the_threat_and_a_related_ioc_the_network_contacted(
    engine, db_url, vt_emulator
):
    now = utcnow()
    hour = hour_bucket(now)
    with write_transaction(engine) as connection:
        ids = ensure_iocs(
            connection,
            {
                ("domain", "malware-c2.example.net"): (None, now, now),
                ("ip", "185.220.101.66"): (None, now, now),
            },
        )
        laptop = ensure_clients(connection, {"192.168.1.13": ("tablet", now, now)})
        add_sightings(
            connection,
            {(i, laptop["192.168.1.13"], "suricata", hour): (1, 0, now) for i in ids.values()},
        )
        queue.enqueue(connection, [queue.QueueRequest(i, queue.TIER_NEW) for i in ids.values()])
    receiver = Receiver()
    with BackgroundServer(receiver.app) as hook:
        settings = settings_for(
            db_url,
            vt_emulator.url,
            virustotal={**FAST, "relationship_requests_per_day": 5},
            alerts={"webhook_url": f"{hook.url}/hook"},
        )
        asyncio.run(LookupService(settings, engine, sleep=_no_sleep).run_worker(once=True))
    by_value = {alert["ioc"]["value"]: alert for alert in receiver.received}
    c2 = by_value["malware-c2.example.net"]
    assert c2["threat"]["threat_categories"][0] == "command-and-control"
    assert c2["related_contacted"] == [
        {"type": "ip", "value": "185.220.101.66", "relation": "resolutions"}
    ]
    assert "related_contacted" in by_value["185.220.101.66"]  # either way round


def test_a_related_ioc_the_network_contacted_is_looked_up_next(engine, db_url, vt_emulator):
    now = utcnow()
    hour = hour_bucket(now)
    with write_transaction(engine) as connection:
        ids = ensure_iocs(
            connection,
            {
                ("domain", "malware-c2.example.net"): (None, now, now),
                ("ip", "185.220.101.66"): (None, now, now),  # seen, never queued
            },
        )
        device = ensure_clients(connection, {"192.168.1.13": ("tablet", now, now)})
        add_sightings(
            connection,
            {(i, device["192.168.1.13"], "suricata", hour): (1, 0, now) for i in ids.values()},
        )
        c2 = ids[("domain", "malware-c2.example.net")]
        queue.enqueue(connection, [queue.QueueRequest(c2, queue.TIER_NEW)])
    stale = [f"stale{n}.example.org" for n in range(3)]
    vt_emulator.emulator.configure(
        {"analysis": {"polls_to_complete": 3},
         "seeds": [{"type": "domain", "value": n, "harmless": 60, "undetected": 20,
                    "analysed_days_ago": 90} for n in stale]}
    )  # fmt: skip
    _queue(engine, [("domain", n) for n in stale])
    service = _service(engine, db_url, vt_emulator.url, relationship_requests_per_day=5)
    asyncio.run(service.run_worker(once=True))
    paths = [c.path for c in vt_emulator.emulator.calls()]
    relate = paths.index("/api/v3/domains/malware-c2.example.net/resolutions")
    # Alert priority: ahead of the re-analysis steps still waiting behind it.
    assert paths[relate + 1] == "/api/v3/ip_addresses/185.220.101.66"
    assert any(p.startswith("/api/v3/analyses/") for p in paths[relate + 2 :])
    with engine.connect() as connection:
        assert _verdict(connection, "185.220.101.66") == "malicious"
