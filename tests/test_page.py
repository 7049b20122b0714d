"""The built-in page in a real headless Chromium: it loads, shows the numbers, escapes HTML."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from helpers import chromium, served, settings_for, stat_value
from vtguardian.clock import utcnow
from vtguardian.store import migrate
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs, ioc_digest
from vtguardian.store.schema import iocs
from vtguardian.store.sightings import add_sightings, hour_bucket
from vtguardian.web.app import create_app

HOSTILE = "<script>alert(1)</script>.example"


@pytest.fixture
def page_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'page.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = utcnow()
    t0 = hour_bucket(now - timedelta(hours=3))
    with write_transaction(engine) as c:
        ids = ensure_iocs(c, {("domain", f"bad{n}.example.com"): (None, t0, t0) for n in range(3)}
                          | {("domain", "fine.example.com"): (None, t0, t0)})  # fmt: skip
        client = ensure_clients(c, {"192.168.1.10": ("laptop", t0, t0)})["192.168.1.10"]
        # Hostile content that got into the database some other way must still render as text.
        hostile = c.execute(
            insert(iocs).values(digest=ioc_digest("domain", HOSTILE), type="domain", value=HOSTILE,
                                first_seen=t0, last_seen=t0)
        ).inserted_primary_key[0]  # fmt: skip
        add_sightings(c, {(i, client, "pihole", t0): (2, 0, t0) for i in [*ids.values(), hostile]})
        for (_kind, value), ioc_id in ids.items():
            bad = not value.startswith("fine")
            report = ReportRow(
                "virustotal",
                "found",
                "malicious" if bad else "harmless",
                ratio=0.2 if bad else 0.0,
                total=80,
                stats={"malicious": 16 if bad else 0},
                analysis_date=now - timedelta(days=2),
            )
            record_answer(c, ioc_id, report, timedelta(days=1), now)
    app = create_app(settings_for(url, "http://127.0.0.1:9"), engine)
    with served(app) as base:
        yield f"{base}/"
    engine.dispose()


def test_page_renders_every_panel_with_the_numbers_and_escapes_html(page_url, tmp_path):
    result = chromium(page_url, tmp_path, "--dump-dom")
    dom = result.stdout
    assert 'data-loaded="yes"' in dom, result.stderr[-2000:]
    console_errors = [
        line for line in result.stderr.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)
    ]  # fmt: skip
    assert console_errors == []
    from vtguardian.dashboards.panels import panels

    for panel in panels():
        assert f'data-key="{panel.key}"' in dom, panel.key
    assert stat_value(dom, "malicious") == "3"
    assert stat_value(dom, "iocs_observed") == "5"
    assert "bad0.example.com" in dom and "fine.example.com" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.example" in dom
    assert "<script>alert(1)</script>" not in dom


def test_page_screenshot(page_url, tmp_path):
    target = tmp_path / "page.png"
    result = chromium(page_url, tmp_path, f"--screenshot={target}")
    assert target.exists() and target.stat().st_size > 50_000, result.stderr[-2000:]
