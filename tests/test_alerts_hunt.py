"""Alerts on flips (delivered to a real local webhook) and retro-hunting."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import orjson
from aiohttp import web
from sqlalchemy import text, update

from helpers import run_cli, settings_for
from sources_helpers import ingest
from vtguardian.clock import utcnow
from vtguardian.intel.alerts import deliver_pending
from vtguardian.intel.lookup import LookupService
from vtguardian.store.engine import write_transaction
from vtguardian.store.schema import verdicts
from vtguardian.testing.server import BackgroundServer


class Receiver:
    """A webhook endpoint (think n8n or ntfy) that records what it is sent."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[dict] = []
        self.failures = failures

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_post("/hook", self._hook)
        return application

    async def _hook(self, request: web.Request) -> web.Response:
        if self.failures:
            self.failures -= 1
            return web.Response(status=503)
        self.received.append(await request.json())
        return web.Response(status=204)


def _eve(client: str, name: str, hour: int) -> bytes:
    event = {
        "timestamp": f"2026-11-20T{hour:02d}:10:00.000000+0000",
        "event_type": "dns",
        "src_ip": client,
        "dest_ip": "192.168.1.1",
        "dns": {"type": "query", "rrname": name, "rrtype": "A"},
    }
    return orjson.dumps(event) + b"\n"


async def _fast(seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.05))


def test_a_flip_to_malicious_alerts_once_with_the_right_clients(
    engine, db_url, vt_emulator, tmp_path
):
    log = tmp_path / "eve.json"
    log.write_bytes(
        _eve("192.168.1.20", "flip.example.com", 8)
        + _eve("192.168.1.21", "flip.example.com", 9)
        + _eve("192.168.1.21", "flip.example.com", 10)
        + _eve("192.168.1.22", "www.google.com", 9)
    )
    ingest(engine, "suricata", log)
    emulator = vt_emulator.emulator
    emulator.configure(
        {
            "seeds": [
                {"type": "domain", "value": "flip.example.com", "harmless": 70, "undetected": 18}
            ]
        }
    )
    receiver = Receiver()
    with BackgroundServer(receiver.app) as hook:
        settings = settings_for(db_url, vt_emulator.url, alerts={"webhook_url": f"{hook.url}/hook"})
        service = LookupService(settings, engine, sleep=_fast)
        asyncio.run(service.run_worker(once=True))
        assert receiver.received == []  # harmless: nothing to say
        emulator.configure(
            {"seeds": [{"type": "domain", "value": "flip.example.com", "malicious": 9,
                        "harmless": 60, "undetected": 18, "labels": ["malware"]}]}
        )  # fmt: skip
        past = utcnow() - timedelta(days=8)
        with write_transaction(engine) as connection:
            connection.execute(update(verdicts).values(expires_at=past, checked_at=past))
            connection.execute(text("UPDATE iocs SET last_seen = :now"), {"now": utcnow()})
        asyncio.run(service.run_worker(once=True))  # the re-check finds the flip
        asyncio.run(service.run_worker(once=True))  # a second pass: no duplicate
    assert len(receiver.received) == 1
    alert = receiver.received[0]
    assert alert["ioc"] == {"type": "domain", "value": "flip.example.com"}
    assert (alert["verdict"], alert["previous_verdict"]) == ("malicious", "harmless")
    assert [c["ip"] for c in alert["clients"]] == ["192.168.1.20", "192.168.1.21"]
    assert [c["hits"] for c in alert["clients"]] == [1, 2]
    assert len(alert["engines"]) == 9 and alert["ratio"] > 0.09
    assert alert["first_seen"] == "2026-11-20T08:10:00Z"  # the exact first sighting
    assert alert["last_seen"].startswith("2026-11-20T10:10")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT delivered_at, delivery_attempts FROM alerts")).all()
    assert len(rows) == 1 and rows[0].delivered_at is not None and rows[0].delivery_attempts == 1
    output = run_cli("alerts", "--json", env={"VTGUARDIAN_DATABASE__URL": db_url}).stdout
    listed = [json.loads(line) for line in output.splitlines()]
    assert [a["ioc"]["value"] for a in listed] == ["flip.example.com"]


def test_failed_deliveries_are_retried_with_backoff(engine, db_url, vt_emulator, tmp_path):
    log = tmp_path / "eve.json"
    log.write_bytes(_eve("192.168.1.30", "malware-c2.example.net", 9))
    ingest(engine, "suricata", log)
    receiver = Receiver(failures=2)
    with BackgroundServer(receiver.app) as hook:
        url = f"{hook.url}/hook"
        settings = settings_for(db_url, vt_emulator.url, alerts={"webhook_url": url})
        asyncio.run(LookupService(settings, engine, sleep=_fast).run_worker(once=True))
        assert receiver.received == []  # first attempt failed
        now = utcnow()
        assert asyncio.run(deliver_pending(engine, url, now=now)).delivered == 0  # backing off
        second = asyncio.run(
            deliver_pending(engine, url, now=now + timedelta(minutes=1, seconds=1))
        )
        assert (second.delivered, second.failed) == (0, 1)
        third = asyncio.run(deliver_pending(engine, url, now=now + timedelta(minutes=10)))
        assert third.delivered == 1
        assert (
            asyncio.run(deliver_pending(engine, url, now=now + timedelta(hours=5))).delivered == 0
        )
    assert [a["ioc"]["value"] for a in receiver.received] == ["malware-c2.example.net"]


def test_no_alert_for_iocs_nobody_contacted(engine, db_url, vt_emulator):
    service = LookupService(settings_for(db_url, vt_emulator.url), engine, sleep=_fast)
    asyncio.run(service.lookup_values(["malware-c2.example.net"]))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM alerts")).scalar() == 0


def test_hunt_finds_clients_of_a_domain_and_its_subdomains(engine, db_url, tmp_path):
    log = tmp_path / "eve.json"
    log.write_bytes(
        _eve("192.168.1.40", "evil.example.com", 8)
        + _eve("192.168.1.41", "cdn.evil.example.com", 9)
        + _eve("192.168.1.41", "cdn.evil.example.com", 11)
        + _eve("192.168.1.42", "notevil.example.com", 9)
        + _eve("192.168.1.43", "evil.example.com.other.net", 9)
    )
    ingest(engine, "suricata", log)
    env = {"VTGUARDIAN_DATABASE__URL": db_url}
    result = run_cli("hunt", "evil.example.com", "--days", "100000", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["client"], r["hits"]) for r in rows] == [("192.168.1.41", 2), ("192.168.1.40", 1)]
    assert rows[0]["first_seen"] == "2026-11-20T09:10:00Z"  # the exact first sighting
    assert rows[0]["last_seen"].startswith("2026-11-20T11:10")
    narrow = run_cli("hunt", "cdn.evil.example.com", "--days", "100000", "--json", env=env)
    assert [json.loads(x)["client"] for x in narrow.stdout.splitlines()] == ["192.168.1.41"]
    recent = run_cli("hunt", "evil.example.com", "--days", "1", env=env)
    assert "no device contacted" in recent.stdout
