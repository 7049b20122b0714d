"""DNS bypass alerts and DNS-over-HTTPS devices (issue 27), on both engines.

A Pi-hole log (the local DNS) and a Suricata eve.json (the connections) are
ingested as a user would; verdicts are stored as a lookup stores them; the alert
goes to a real local webhook.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import text

from resolution_helpers import C2, C2_ADDRESS, HARMLESS, resolution_log, store_verdict
from sources_helpers import ingest
from test_alerts_hunt import Receiver
from vtguardian.clock import as_naive_utc, utcnow
from vtguardian.intel.alerts import deliver_pending
from vtguardian.intel.bypass import DohResolvers, detect_bypasses
from vtguardian.iocs import Classifier
from vtguardian.testing.server import BackgroundServer
from vtguardian.verdict import Policy


def _tls(moment: datetime, client: str, server: str, sni: str) -> bytes:
    event = {
        "timestamp": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000"),
        "event_type": "tls",
        "src_ip": client,
        "src_port": 50000,
        "dest_ip": server,
        "dest_port": 443,
        "proto": "TCP",
        "tls": {"sni": sni},
    }
    return orjson.dumps(event) + b"\n"


def _household(engine, tmp_path) -> datetime:
    """The local DNS gives 192.168.1.20 the C2 address a minute ago; then:
    .20 connects to it 30 s later (resolved: fine), .30 connects to it having never
    asked the local DNS (a bypass), .30 reaches a CDN address a harmless name shares
    (no alert), and .20 comes back to the C2 address two hours on (a bypass: its
    answer is older than the window). .20 also talks to Cloudflare's DoH server;
    .30, which Pi-hole does not serve, to Google's."""
    now = utcnow().replace(tzinfo=UTC)
    ingest(engine, "pihole-log", resolution_log(tmp_path))
    eve = tmp_path / "eve.json"
    eve.write_bytes(
        _tls(now - timedelta(seconds=30), "192.168.1.20", C2_ADDRESS, C2)
        + _tls(now - timedelta(seconds=20), "192.168.1.30", C2_ADDRESS, C2)
        + _tls(now - timedelta(seconds=10), "192.168.1.30", "151.101.1.1", "x.cdn.net")
        + _tls(now - timedelta(seconds=5), "192.168.1.20", "1.1.1.1", "cloudflare-dns.com")
        + _tls(now - timedelta(seconds=5), "192.168.1.30", "8.8.8.8", "dns.google")
        + _tls(now + timedelta(hours=2), "192.168.1.20", C2_ADDRESS, C2)
    )
    ingest(engine, "suricata", eve)
    store_verdict(engine, "domain", C2, "malicious", utcnow())
    store_verdict(engine, "domain", "phish.bad-example.org", "suspicious", utcnow())
    store_verdict(engine, "domain", HARMLESS, "harmless", utcnow())
    return now


def _detect(engine, now):
    return detect_bypasses(
        engine, Classifier(), Policy(), as_naive_utc(now) + timedelta(hours=3), 60
    )


def test_a_connection_without_a_local_answer_alerts_once_naming_device_address_domain(
    engine, db_url, tmp_path
):
    now = _household(engine, tmp_path)
    first = _detect(engine, now)
    assert first.alerts == 2
    assert _detect(engine, now).alerts == 0  # found again: no second alert
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.ip, b.address, b.domain FROM dns_bypasses b "
                "JOIN clients c ON c.id = b.client_id WHERE b.kind = 'dns-bypass' "
                "ORDER BY c.ip"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("192.168.1.20", C2_ADDRESS, C2),
        ("192.168.1.30", C2_ADDRESS, C2),
    ]

    receiver = Receiver()
    with BackgroundServer(receiver.app) as hook:
        later = as_naive_utc(now) + timedelta(hours=3)  # when _detect ran
        delivered = asyncio.run(deliver_pending(engine, f"{hook.url}/hook", now=later))
    assert delivered.delivered == 2
    named = sorted(
        (p["verdict"], p["ioc"]["value"], p["clients"][0]["ip"], p["clients"][0]["address"])
        for p in receiver.received
    )
    assert named == [
        ("dns-bypass", C2, "192.168.1.20", C2_ADDRESS),
        ("dns-bypass", C2, "192.168.1.30", C2_ADDRESS),
    ]


def test_devices_served_by_pihole_that_talk_to_a_doh_resolver_are_recorded(
    engine, db_url, tmp_path
):
    now = _household(engine, tmp_path)
    assert _detect(engine, now).doh == 2  # by address and by name, both from .20
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.ip, b.address, b.domain FROM dns_bypasses b "
                "JOIN clients c ON c.id = b.client_id WHERE b.kind = 'doh' ORDER BY b.address"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("192.168.1.20", "", "cloudflare-dns.com"),
        ("192.168.1.20", "1.1.1.1", "cloudflare-dns.com"),
    ]


def test_the_doh_list_can_be_replaced(tmp_path):
    mine = tmp_path / "doh.txt"
    mine.write_text("# mine\n192.0.2.53 doh.example.net\nresolver.example.org\n")
    resolvers = DohResolvers.read(mine)
    assert resolvers.addresses == {"192.0.2.53": "doh.example.net"}
    assert resolvers.names == {"doh.example.net", "resolver.example.org"}
    shipped = DohResolvers.read()
    assert shipped.addresses["8.8.8.8"] == "dns.google" and "dns.quad9.net" in shipped.names


def _panel(engine, key, now):
    from vtguardian.dashboards.macros import TimeRange
    from vtguardian.dashboards.panels import panels
    from vtguardian.web.panel_data import run_panel

    panel = next(p for p in panels() if p.key == key)
    start = int((now - timedelta(days=1)).timestamp())
    window = TimeRange(start, int((now + timedelta(hours=4)).timestamp()), "1h")
    clients = ["192.168.1.20", "192.168.1.21", "192.168.1.22", "192.168.1.23", "192.168.1.30"]
    (result,) = run_panel(
        engine, panel, window, {"threshold": "0.03", "ioc_type": ["domain"], "client": clients}
    )
    return [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]


def _devices(cell) -> list[str]:
    return sorted((cell or "").split(","))


def test_the_c2_infrastructure_and_dns_bypass_panels(engine, db_url, tmp_path):
    now = _household(engine, tmp_path)
    _detect(engine, now)
    rows = _panel(engine, "c2_infrastructure", now)
    by_pair = {(r["ioc"], r["address"]): r for r in rows}
    assert set(by_pair) == {
        (C2, C2_ADDRESS),  # through its CNAME; the private answer is not kept
        ("phish.bad-example.org", "151.101.1.1"),
        ("phish.bad-example.org", "151.101.2.2"),
    }
    c2 = by_pair[(C2, C2_ADDRESS)]
    assert c2["verdict"] == "malicious"
    assert _devices(c2["resolved_by"]) == ["192.168.1.20"]
    assert _devices(c2["connected_by"]) == ["192.168.1.20", "192.168.1.30"]
    assert _devices(by_pair[("phish.bad-example.org", "151.101.1.1")]["resolved_by"]) == [
        "192.168.1.21"
    ]

    bypass = _panel(engine, "dns_bypass", now)
    assert sorted((r["client"], r["kind"], r["address"], r["ioc"]) for r in bypass) == [
        ("192.168.1.20", "dns-bypass", C2_ADDRESS, C2),
        ("192.168.1.20", "doh", "", "cloudflare-dns.com"),
        ("192.168.1.20", "doh", "1.1.1.1", "cloudflare-dns.com"),
        ("192.168.1.30", "dns-bypass", C2_ADDRESS, C2),
    ]


def test_a_connection_waits_until_the_local_answer_could_have_been_read(engine, db_url, tmp_path):
    """The logs are followed side by side: a connection of the last minutes may have its
    local answer still on its way, so it is judged in a later round."""
    now = _household(engine, tmp_path)
    early = detect_bypasses(engine, Classifier(), Policy(), as_naive_utc(now), 60)
    assert early.alerts == 0  # the bypass 20 s before is not judged yet
    assert _detect(engine, now).alerts == 2
