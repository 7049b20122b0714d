"""The demo shows intelligence beyond engine counts (issue: fresh analyses, threat
context, relationships): read back from its database and its panels, as the page runs them."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from vtguardian.clock import utcnow
from vtguardian.dashboards.macros import TimeRange
from vtguardian.dashboards.panels import panels
from vtguardian.demo import run_demo
from vtguardian.store.engine import make_engine
from vtguardian.testing.demo_dns import C2_ADDRESS
from vtguardian.web.panel_data import run_panel

VARIABLES = {"ioc_type": ["domain", "ip", "url", "file"], "client": [], "threshold": "0.03"}
SITE_CATEGORIES = {"news", "search engines", "shopping", "information technology", "media"}


def test_demo_reanalyses_stale_iocs_and_shows_threats_not_site_categories(tmp_path):
    result = run_demo(tmp_path / "demo")
    engine = make_engine(f"sqlite:///{result.database}")
    now = utcnow()
    window = TimeRange(int((now - timedelta(days=8)).timestamp()), int(now.timestamp()) + 3600)
    by_key = {p.key: p for p in panels()}
    table = run_panel(engine, by_key["last_analysis"], window, VARIABLES)[0]
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
    limit = now - timedelta(days=30)
    for row in rows:
        if row["last_analysis"] is None:  # unknown to VirusTotal: no analysis
            continue
        analysed = datetime.fromisoformat(row["last_analysis"]).replace(tzinfo=None)
        if analysed < limit:
            assert row["status"] != "fresh", row
    statuses = {row["ioc"]: row["status"] for row in rows}
    assert statuses["one-engine-fp.example.com"] == "re-analysed"
    labels: set[str] = set()
    for key, column in (("vectors_by_label", "label"), ("vectors_by_category", "metric")):
        data = run_panel(engine, by_key[key], window, VARIABLES)[0]
        labels |= {row[data["columns"].index(column)] for row in data["rows"]}
    assert {"command-and-control", "phishing", "malware"} <= labels
    assert not labels & SITE_CATEGORIES
    families = run_panel(engine, by_key["threat_families"], window, VARIABLES)[0]["rows"]
    assert any(row[1] == "EICAR-Test-File" for row in families)
    engine.dispose()

    with sqlite3.connect(result.database) as connection:
        verdict = dict(
            connection.execute(
                "SELECT i.value, v.verdict FROM verdicts v JOIN iocs i ON i.id = v.ioc_id"
            ).fetchall()
        )
        history = connection.execute(
            "SELECT h.new_verdict FROM verdict_history h JOIN iocs i ON i.id = h.ioc_id "
            "WHERE i.value = 'one-engine-fp.example.com' ORDER BY h.id"
        ).fetchall()
        requests = connection.execute(
            "SELECT i.value, r.kind, r.status FROM analysis_requests r "
            "JOIN iocs i ON i.id = r.ioc_id ORDER BY r.id"
        ).fetchall()
        related = connection.execute(
            "SELECT a.value, b.value FROM related_iocs r JOIN iocs a ON a.id = r.ioc_id "
            "JOIN iocs b ON b.id = r.related_id "
            "WHERE EXISTS (SELECT 1 FROM sightings s WHERE s.ioc_id = a.id) "
            "AND EXISTS (SELECT 1 FROM sightings s WHERE s.ioc_id = b.id)"
        ).fetchall()
        queued = connection.execute("SELECT COUNT(*) FROM lookup_queue").fetchone()[0]
    # The stale false positive: re-analysed into a new verdict, shown as the verdict.
    assert [h[0] for h in history] == ["suspicious", "harmless"]
    assert verdict["one-engine-fp.example.com"] == "harmless"
    assert ("one-engine-fp.example.com", "reanalyse", "done") in requests
    # The URL VirusTotal had never seen: submitted, analysed, decided.
    assert ("http://dl.example-files.net/setup.exe", "submit", "done") in requests
    assert verdict["http://dl.example-files.net/setup.exe"] == "malicious"
    # VirusTotal's resolutions of the C2 domain name the address it resolved to here.
    assert ("malware-c2.example.net", C2_ADDRESS) in related
    assert queued == 0
    assert result.intel is not None and not result.intel.stale_shown_fresh
