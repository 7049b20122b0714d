"""The Grafana dashboard: structure, freshness of the committed file, and every panel's
SQL run on MariaDB (macros expanded as Grafana does) against a fixture of known content."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, text, update

from vtguardian.clock import utcnow
from vtguardian.dashboards.dialect import render
from vtguardian.dashboards.grafana import dashboard
from vtguardian.dashboards.macros import TimeRange, expand, used_variables
from vtguardian.dashboards.panels import panels
from vtguardian.intel.alerts import create_alert
from vtguardian.store import migrate
from vtguardian.store.answers import ReportRow, count_outcome, record_answer
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs
from vtguardian.store.schema import (
    actions,
    analysis_requests,
    ids_alerts,
    lookup_queue,
    quota_usage,
    verdicts,
)
from vtguardian.store.sightings import add_sightings, hour_bucket
from vtguardian.store.threats import ThreatContext, record_context

COMMITTED = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "virus_total.json"


def test_committed_dashboard_is_up_to_date():
    generated = json.loads(json.dumps(dashboard()))
    assert json.loads(COMMITTED.read_text()) == generated, (
        "run: vtguardian dashboard export --out deploy/grafana/virus_total.json"
    )


def test_dashboard_structure():
    model = dashboard()
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in model["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
    defined = {v["name"] for v in model["templating"]["list"]}
    assert defined == {"datasource", "threshold", "ioc_type", "client"}
    for panel in model["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "mysql", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert used_variables(target["rawSql"]) <= defined
    assert model["__inputs"][0]["pluginId"] == "mysql"
    assert "uid" not in json.dumps(model["__inputs"])
    assert model["refresh"] == "1m" and model["time"] == {"from": "now-7d", "to": "now"}
    assert 36 <= model["schemaVersion"] <= 41
    titles = {p["title"] for p in model["panels"] if p["type"] == "row"}
    assert titles == {
        "Overview",
        "Domain & IP reputation",
        "Scan statistics",
        "Last analysis status",
        "Attack vectors",
        "Correlation",
        "Threat hunting",
    }


@pytest.fixture
def fixture_db(mariadb_url):
    """A week of a small network with known content (all times UTC)."""
    engine = make_engine(mariadb_url)
    migrate.upgrade(engine)
    now = utcnow()
    t0 = hour_bucket(now - timedelta(days=1))
    with write_transaction(engine) as c:
        ioc = ensure_iocs(
            c,
            {
                ("domain", "evil.example.com"): ("example.com", t0, t0),
                ("domain", "sus.example.com"): ("example.com", t0, t0),
                ("domain", "good.example.com"): ("example.com", t0, t0),
                ("ip", "185.220.101.66"): (None, t0, t0),
                ("file", "a" * 64): (None, t0, t0),
                ("domain", "queued.example.com"): ("example.com", t0, t0),
            },
        )
        client = ensure_clients(
            c, {"192.168.1.10": ("laptop", t0, t0), "192.168.1.11": (None, t0, t0)}
        )
        a, b = client["192.168.1.10"], client["192.168.1.11"]
        evil, sus, good = (ioc[("domain", f"{n}.example.com")] for n in ("evil", "sus", "good"))
        ip, file_ = ioc[("ip", "185.220.101.66")], ioc[("file", "a" * 64)]
        add_sightings(
            c,
            {
                (evil, a, "pihole", t0): (3, 1, t0 + timedelta(minutes=5)),
                (good, a, "pihole", t0): (5, 0, t0 + timedelta(minutes=9)),
                (evil, b, "pihole", t0 + timedelta(hours=1)): (1, 0, t0 + timedelta(hours=1)),
                (sus, b, "suricata", t0): (2, 0, t0),
                (ip, b, "suricata", t0): (1, 0, t0),
                (file_, a, "suricata", t0): (1, 0, t0),
            },
        )
        answers = {
            evil: ReportRow("virustotal", "found", "malicious", ratio=14 / 86, total=86,
                            stats={"malicious": 14}, labels=["command and control"],
                            analysis_date=now - timedelta(hours=2)),
            ip: ReportRow("virustotal", "found", "malicious", ratio=7 / 88, total=88,
                          stats={"malicious": 7}, labels=["botnet"],
                          analysis_date=now - timedelta(days=3)),
            file_: ReportRow("virustotal", "found", "malicious", ratio=60 / 68, total=68,
                             stats={"malicious": 60}, labels=["eicar"],
                             analysis_date=now - timedelta(days=40)),
            sus: ReportRow("virustotal", "found", "suspicious", ratio=1 / 88, total=88,
                           stats={"malicious": 1}, labels=["pua"],
                           analysis_date=now - timedelta(days=10)),
            good: ReportRow("virustotal", "found", "harmless", ratio=0.0, total=88,
                            stats={"malicious": 0}, analysis_date=now - timedelta(hours=5)),
        }  # fmt: skip
        contexts = {
            evil: ThreatContext(threat_categories=["command-and-control"],
                                site_categories=["news"]),
            ip: ThreatContext(threat_categories=["command-and-control"]),
            file_: ThreatContext(threat_categories=["malware"], families=["EICAR-Test-File"],
                                 threat_label="trojan.eicar"),
            sus: ThreatContext(threat_categories=["pua"], site_categories=["shopping"]),
            good: ThreatContext(site_categories=["search engines"]),
        }  # fmt: skip
        for ioc_id, report in answers.items():
            recorded = record_answer(c, ioc_id, report, timedelta(days=1), now - timedelta(hours=1))
            record_context(c, ioc_id, recorded.report_id, contexts[ioc_id], now)
            if report.verdict in ("malicious", "suspicious"):
                create_alert(c, ioc_id, None, recorded.history_id, now - timedelta(hours=1))
        c.execute(
            insert(ids_alerts),
            [
                {"ts": t0, "source": "suricata", "signature_id": 1, "signature": "ET C2 beacon",
                 "severity": 1, "ioc_id": evil, "client_id": a},
                {"ts": t0 + timedelta(minutes=30), "source": "suricata", "signature_id": 1,
                 "signature": "ET C2 beacon", "severity": 1, "ioc_id": evil, "client_id": a},
                {"ts": t0, "source": "suricata", "signature_id": 2, "signature": "ET INFO curl",
                 "severity": 3, "ioc_id": good, "client_id": a},
            ],
        )  # fmt: skip
        c.execute(
            insert(actions).values(ioc_id=evil, target="pihole", action="block",
                                   reason="malicious 14/86", created_at=now - timedelta(hours=1),
                                   active=True, dry_run=False)
        )  # fmt: skip
        c.execute(
            insert(quota_usage).values(provider="virustotal", window="day",
                                       window_start=now.replace(hour=0, minute=0, second=0,
                                                                microsecond=0), used=7)
        )  # fmt: skip
        c.execute(
            insert(lookup_queue).values(ioc_id=ioc[("domain", "queued.example.com")], tier=2,
                                        clients=1, hits=1, reason="new", enqueued_at=now,
                                        not_before=now, attempts=0)
        )  # fmt: skip
        for outcome, count in (("found", 5), ("not_found", 1), ("cache_hit", 3), ("cache_miss", 1)):
            count_outcome(c, "virustotal", outcome, t0, count)
    yield engine
    engine.dispose()


ALL = {"ioc_type": ["domain", "ip", "url", "file"], "client": ["192.168.1.10", "192.168.1.11"]}


def _run(engine, key, variables=None, query=0):
    panel = next(p for p in panels() if p.key == key)
    now = utcnow()
    window = TimeRange(int((now - timedelta(days=7)).timestamp()), int(now.timestamp()) + 3600)
    sql = expand(
        render(panel.queries[query], "mysql"),
        window,
        {"threshold": "0.03", **ALL, **(variables or {})},
    )
    with engine.connect() as connection:
        connection.execute(text("SET time_zone = '+00:00'"))  # as Grafana's MySQL source does
        return [tuple(row) for row in connection.execute(text(sql))]


def test_every_panel_query_runs_on_mariadb(fixture_db):
    for panel in panels():
        for n in range(len(panel.queries)):
            _run(fixture_db, panel.key, query=n)  # raises on any SQL error


def test_overview_numbers(fixture_db):
    value = lambda key, **v: _run(fixture_db, key, v)[0][0]  # noqa: E731
    assert value("iocs_observed") == 5
    assert value("iocs_observed", ioc_type=["domain"]) == 3
    assert value("iocs_checked") == 5
    assert value("malicious") == 3
    assert value("malicious", ioc_type=["domain", "ip"]) == 2
    assert value("suspicious") == 1
    assert value("requests_today") == 7
    assert float(value("cache_hit_rate")) == 0.75
    assert value("queue_length") == 1
    assert value("active_blocks") == 1


def test_reputation_and_top_ratio(fixture_db):
    rows = {r[0]: r for r in _run(fixture_db, "reputation")}
    assert set(rows) == {"evil.example.com", "sus.example.com", "good.example.com",
                         "185.220.101.66"}  # fmt: skip
    evil = rows["evil.example.com"]
    # ioc, type, verdict, ratio, threshold, malicious, engines, clients, hits, last_seen
    assert evil[2] == "malicious" and evil[4] == "above" and (evil[5], evil[6]) == (14, 86)
    assert (evil[7], int(evil[8])) == (2, 4)
    assert rows["sus.example.com"][4] == "below" and rows["good.example.com"][4] == "below"
    stricter = {r[0]: r[4] for r in _run(fixture_db, "reputation", {"threshold": "0.5"})}
    assert stricter["evil.example.com"] == "below"
    top = _run(fixture_db, "top_ratio")
    assert [t[0] for t in top] == ["evil.example.com", "185.220.101.66", "sus.example.com"]


def test_scan_statistics_and_freshness(fixture_db):
    series = _run(fixture_db, "requests_by_outcome")
    totals = {}
    for _time, metric, value in series:
        totals[metric] = totals.get(metric, 0) + int(value)
    assert totals == {"found": 5, "not_found": 1, "cache_hit": 3}
    assert dict(_run(fixture_db, "freshness")) == {
        "< 1 day": 2, "1-7 days": 1, "7-30 days": 1, "> 30 days": 1,
    }  # fmt: skip
    status = {r[0]: (r[4], r[7]) for r in _run(fixture_db, "last_analysis")}
    assert status["evil.example.com"] == (2, "fresh")
    assert status["a" * 64][0] >= 40 * 24


def test_last_analysis_status_shows_both_ages_and_the_reanalysis(fixture_db):
    rows = {r[0]: r for r in _run(fixture_db, "last_analysis")}
    # The file's analysis is 40 days old: stale, though our cached copy is fresh.
    assert rows["a" * 64][7:9] == ("stale", "fresh")
    assert rows["evil.example.com"][7:9] == ("fresh", "fresh")
    now = utcnow()
    with write_transaction(fixture_db) as c:
        file_id = c.execute(text("SELECT id FROM iocs WHERE type = 'file'")).scalar()
        c.execute(
            insert(analysis_requests).values(
                ioc_id=file_id, kind="reanalyse", status="requested", polls=0, created_at=now
            )
        )
    assert _run(fixture_db, "last_analysis")[0][7] == "re-analysis requested"
    with write_transaction(fixture_db) as c:
        c.execute(update(analysis_requests).values(status="done"))
        c.execute(update(verdicts).where(verdicts.c.ioc_id == file_id).values(analysis_date=now))
    rows = {r[0]: r for r in _run(fixture_db, "last_analysis")}
    assert rows["a" * 64][7] == "re-analysed"


def test_attack_vectors(fixture_db):
    by_type = {}
    for _time, kind, value in _run(fixture_db, "vectors_by_type"):
        by_type[kind] = by_type.get(kind, 0) + int(value)
    assert by_type == {"domain": 3, "ip": 1, "file": 1}  # evil seen in two hours
    labels = dict(_run(fixture_db, "vectors_by_label"))
    assert labels == {"command-and-control": 2, "malware": 1, "pua": 1}  # no site category
    by_category = {}
    for _time, category, value in _run(fixture_db, "vectors_by_category"):
        by_category[category] = by_category.get(category, 0) + int(value)
    assert by_category == {"command-and-control": 3, "malware": 1, "pua": 1}
    families = {
        (kind, name): int(n) for kind, name, n, _last in _run(fixture_db, "threat_families")
    }
    assert families == {("family", "EICAR-Test-File"): 1, ("label", "trojan.eicar"): 1}


def test_attack_vectors_count_the_verdict_each_ioc_had_then(fixture_db):
    """A verdict changed now leaves yesterday's flagged sightings as they were, and a
    flip to malicious today does not make yesterday's clean sightings malicious."""
    with write_transaction(fixture_db) as c:
        evil, good = (
            c.execute(text("SELECT id FROM iocs WHERE value = :v"), {"v": v}).scalar()
            for v in ("evil.example.com", "good.example.com")
        )
        now = utcnow()
        clean = ReportRow(
            "virustotal", "found", "harmless", ratio=0.0, total=86, stats={"malicious": 0}
        )
        bad = ReportRow("virustotal", "found", "malicious", ratio=0.2, total=86,
                        stats={"malicious": 17})  # fmt: skip
        record_answer(c, evil, clean, timedelta(days=1), now)
        recorded = record_answer(c, good, bad, timedelta(days=1), now)
        record_context(
            c, good, recorded.report_id, ThreatContext(threat_categories=["phishing"]), now
        )
        laptop = c.execute(text("SELECT id FROM clients WHERE ip = '192.168.1.10'")).scalar()
        add_sightings(c, {(good, laptop, "pihole", hour_bucket(now)): (1, 0, now)})
    by_type = {}
    for _time, kind, value in _run(fixture_db, "vectors_by_type"):
        by_type[kind] = by_type.get(kind, 0) + int(value)
    # evil still counts in its two hours of yesterday; good only in the hour it was bad.
    assert by_type == {"domain": 4, "ip": 1, "file": 1}
    labels = dict(_run(fixture_db, "vectors_by_label"))
    assert labels == {"command-and-control": 2, "malware": 1, "pua": 1, "phishing": 1}


def test_correlation(fixture_db):
    volume = _run(fixture_db, "pihole_volume")
    allowed = sum(int(r[1]) for r in volume)
    blocked = sum(int(r[2]) for r in volume)
    malicious = sum(int(r[3]) for r in volume)
    assert (allowed, blocked, malicious) == (8, 1, 4)
    assert sum(int(r[1]) for r in _run(fixture_db, "ids_vs_confirmed")) == 3
    assert sum(int(r[1]) for r in _run(fixture_db, "ids_vs_confirmed", query=1)) == 3
    table = {(r[0], r[1]): (r[2], r[3]) for r in _run(fixture_db, "signature_verdict")}
    assert table == {("ET C2 beacon", "malicious"): (2, 1), ("ET INFO curl", "harmless"): (1, 1)}


def test_threat_hunting(fixture_db):
    exposed = {r[0]: (r[1], r[2]) for r in _run(fixture_db, "exposed_clients")}
    assert exposed == {"192.168.1.10": ("laptop", 2), "192.168.1.11": (None, 3)}
    only_b = _run(fixture_db, "exposed_clients", {"client": ["192.168.1.11"]})
    assert [r[0] for r in only_b] == ["192.168.1.11"]
    assert {r[1] for r in _run(fixture_db, "recent_alerts")} == {
        "evil.example.com", "sus.example.com", "185.220.101.66", "a" * 64,
    }  # fmt: skip
    (block,) = _run(fixture_db, "recent_blocks")
    assert block[1:4] == ("evil.example.com", "pihole", "block")


def test_hostile_variable_values_are_quoted(fixture_db):
    rows = _run(fixture_db, "iocs_observed", {"ioc_type": ["domain') OR ('1'='1"]})
    assert rows[0][0] == 0


def test_grant_readonly_creates_an_account_that_can_only_select(mariadb_url):
    import uuid

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from helpers import run_cli

    engine = make_engine(mariadb_url)
    migrate.upgrade(engine)
    user = f"grafana_{uuid.uuid4().hex[:8]}"
    env = {"VTGUARDIAN_DATABASE__URL": mariadb_url}
    result = run_cli(
        "db", "grant-readonly", "--user", user, "--password", "s3cret", "--host", "%", env=env
    )
    assert result.returncode == 0, result.stderr
    reader = make_engine(
        make_url(mariadb_url).set(username=user, password="s3cret").render_as_string(False)
    )
    try:
        with reader.connect() as connection:
            assert connection.execute(text("SELECT COUNT(*) FROM iocs")).scalar() == 0
            with pytest.raises((OperationalError, ProgrammingError)):
                connection.execute(
                    text(
                        "INSERT INTO clients (ip, first_seen, last_seen) VALUES ('x', NOW(), NOW())"
                    )
                )
            with pytest.raises((OperationalError, ProgrammingError)):
                connection.execute(text("DROP TABLE iocs"))
    finally:
        reader.dispose()
        with engine.begin() as connection:
            connection.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        engine.dispose()
