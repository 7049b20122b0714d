"""The Event Explorer and the Flows page in a real headless Chromium, driven over the
DevTools protocol as a user clicks: the demo's C2 alert shows its flagged field and
engines and ``is_malicious: true``; a provider disabled on the Flows page leaves the
next event to the next provider."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from helpers import served, settings_for
from test_page_lookup import Page, browser
from vtguardian.clock import utcnow
from vtguardian.config import settings_from_values
from vtguardian.demo import DEMO_JOB, run_demo
from vtguardian.store import migrate
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_iocs, find_ioc_ids
from vtguardian.store.schema import verdicts
from vtguardian.web.app import create_app

TOKEN = "jobs-page-token-for-tests"
C2 = "malware-c2.example.net"
LISTED = "evil-feed.example.net"
HOSTILE = " <img src=x onerror=alert(1)>"
TAB = "document.getElementById('event-tab')"


async def _click(page: Page, selector: str) -> None:
    target = orjson.dumps(selector).decode()
    assert await page.evaluate(f"document.querySelector({target}) !== null"), selector
    await page.evaluate(f"document.querySelector({target}).click()")


async def _expand(page: Page, text: str) -> str:
    """Click the event row whose text holds ``text``; the Overview's text once shown."""
    needle = orjson.dumps(text).decode()
    row = (f"[...document.querySelectorAll('tr.job-event')]"
           f".find(r => r.innerText.includes({needle}))")  # fmt: skip
    await page.wait_for(f"!!{row}", f"an event with {text!r}")
    await page.evaluate(f"{row}.click()")
    return await page.wait_for(
        f"{TAB} && {TAB}.dataset.tab === 'overview' && {TAB}.innerText", "the Overview tab"
    )


def test_the_explorer_shows_the_demos_c2_alert_flagged(tmp_path):
    result = run_demo(tmp_path / "demo")
    engine = make_engine(f"sqlite:///{result.database}")
    with engine.connect() as c:
        ioc_id = find_ioc_ids(c, [("domain", C2)])[("domain", C2)]
        engines = c.execute(select(verdicts.c.engines).where(verdicts.c.ioc_id == ioc_id)).scalar()
    assert engines, "the emulator's engines that flag the C2 domain"
    settings = settings_from_values(database={"url": f"sqlite:///{result.database}"})
    app = create_app(settings, engine)

    async def scenario(base: str) -> dict[str, Any]:
        async with browser(f"{base}/#explorer", str(tmp_path / "profile")) as page:
            await page.wait_for("document.body.dataset.explorer === 'yes'", "the Explorer")
            seen = {"job": await page.evaluate("document.getElementById('job-pick').value")}
            seen["overview"] = await _expand(page, "C2 beacon")
            await _click(page, "button.tab[data-tab=structured]")
            seen["structured"] = await page.wait_for(
                f"{TAB}.dataset.tab === 'structured' && {TAB}.innerText", "the Structured tab"
            )
            await _click(page, "button.tab[data-tab=raw]")
            seen["raw"] = await page.wait_for(
                f"{TAB}.dataset.tab === 'raw' && {TAB}.innerText", "the Raw tab"
            )
            # The IoC's value opens its detail, as the dashboard's tables do.
            await _click(page, "button.tab[data-tab=overview]")
            await _click(page, "#event-tab a.ioc")
            seen["detail"] = await page.wait_for(
                "document.getElementById('detail').innerText.includes('engines that flagged')"
                " && document.getElementById('detail').innerText",
                "the IoC's detail",
            )
            seen["console"] = page.console
            return seen

    with served(app) as base:
        seen = asyncio.run(scenario(base))
    engine.dispose()
    assert seen["job"] == DEMO_JOB
    overview = seen["overview"]
    assert f"tls.sni: {C2}" in overview and "malicious" in overview, overview
    assert "decided by: virustotal" in overview
    flagged = overview.split(f"tls.sni: {C2}", 1)[1]
    assert all(name in flagged for name in engines), (engines, overview)
    assert "command and control" in flagged  # the threat context
    assert "vtguardian.is_malicious: true" in seen["structured"], seen["structured"]
    assert f'"{C2}"' in seen["structured"]  # threat.enrichments[].matched.atomic
    assert '"ET MALWARE Possible C2 beacon (demo)"' in seen["raw"]
    assert C2 in seen["detail"] and "verdict: malicious" in seen["detail"]
    problems = [m for m in seen["console"] if "Content Security Policy" in m or "Uncaught" in m]
    assert problems == [], problems


def test_a_provider_disabled_on_the_flows_page_leaves_the_next_event_to_the_next(tmp_path):
    """A domain on a local feed that VirusTotal also knows: the feed decides, until it is
    disabled on the Flows page; the next event is then decided by VirusTotal."""
    feed = tmp_path / "feed.txt"
    feed.write_text(f"# a local blocklist\n{LISTED}\n")
    url = f"sqlite:///{tmp_path / 'flows.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = utcnow()
    with write_transaction(engine) as c:
        ioc_id = ensure_iocs(c, {("domain", LISTED): ("example.net", now, now)})[("domain", LISTED)]
        report = ReportRow("virustotal", "found", "malicious", ratio=0.2, total=80,
                           stats={"malicious": 16}, engines=["EngineA", "EngineB", "EngineC"],
                           analysis_date=now - timedelta(days=1))  # fmt: skip
        record_answer(c, ioc_id, report, timedelta(days=1), now)
    job = {
        "id": "edr",
        "title": "Events from the log shipper",
        "input": {"type": "http"},
        "flow": [{"provider": "allowlist"}, {"provider": "feeds"}, {"provider": "virustotal"}],
    }
    settings = settings_for(url, "http://127.0.0.1:9", web={"token": TOKEN},
                            feeds={"files": [str(feed)]}, jobs=[job])  # fmt: skip
    from vtguardian.jobs.runner import sync_config_jobs

    sync_config_jobs(engine, settings)
    app = create_app(settings, engine)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def send(base: str, n: int, extra: str = "") -> dict[str, Any]:
        event = {
            "@timestamp": "2026-12-05T06:00:00Z",
            "message": f"event {n}{extra}",
            "dns": {"question": {"name": LISTED}},
        }
        answer = httpx.post(f"{base}/api/v1/jobs/edr/events", json=event, headers=auth)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def scenario(base: str) -> dict[str, Any]:
        seen: dict[str, Any] = {"first": send(base, 1)}
        async with browser(f"{base}/#flows", str(tmp_path / "profile")) as page:
            await page.wait_for("document.body.dataset.flows === 'yes'", "the Flows page")
            seen["before"] = await page.evaluate("document.getElementById('jobs-view').innerText")
            await page.type_and_enter("#flow-token", TOKEN)
            await _click(page, "li.flow-step[data-provider=feeds] input[type=checkbox]")
            seen["saved"] = await page.wait_for(
                "document.getElementById('flow-message').innerText.startsWith('saved') && "
                "document.getElementById('flow-message').innerText",
                "the flow to be saved",
            )
            seen["second"] = send(base, 2)
            # Reordered: VirusTotal up, ahead of the (disabled) feeds; kept as saved.
            await page.wait_for("document.body.dataset.flows === 'yes'", "the Flows page")
            await _click(page, "li.flow-step[data-provider=virustotal] button.up")
            seen["reordered"] = await page.wait_for(
                "[...document.querySelectorAll('li.flow-step')].map(li => li.dataset.provider)"
                ".join(' ') === 'allowlist virustotal feeds' && 'yes'",
                "the new order",
            )
            seen["hostile"] = send(base, 3, HOSTILE)
            await page.evaluate("location.hash = '#explorer'")
            await page.wait_for("document.body.dataset.explorer === 'yes'", "the Explorer")
            seen["newest"] = await _expand(page, "event 2")
            seen["oldest"] = await _expand(page, "event 1")
            await _expand(page, "event 3")
            await _click(page, "button.tab[data-tab=raw]")
            seen["hostile_raw"] = await page.wait_for(
                f"{TAB}.dataset.tab === 'raw' && {TAB}.innerText", "the Raw tab"
            )
            seen["hostile_html"] = await page.evaluate(
                "document.getElementById('jobs-view').innerHTML"
            )
            seen["images"] = await page.evaluate("document.querySelectorAll('img').length")
            seen["console"] = page.console
        return seen

    with served(app) as base:
        seen = asyncio.run(scenario(base))
        stored = httpx.get(f"{base}/api/v1/jobs/edr").json()
    engine.dispose()
    assert seen["first"]["malicious"] == 1 and seen["second"]["malicious"] == 1
    assert "feeds" in seen["before"] and "virustotal" in seen["before"]
    assert "allowlist → virustotal" in seen["saved"], seen["saved"]
    assert f"dns.question.name: {LISTED}" in seen["oldest"]
    assert "decided by: feeds" in seen["oldest"], seen["oldest"]
    assert "decided by: virustotal" in seen["newest"], seen["newest"]
    assert "EngineA, EngineB, EngineC" in seen["newest"]
    # The change is kept in the database: the job's flow as the API reports it now.
    assert [(s["provider"], s["enabled"]) for s in stored["flow"]] == [
        ("allowlist", True), ("virustotal", True), ("feeds", False)
    ]  # fmt: skip
    assert HOSTILE.strip() in seen["hostile_raw"]  # shown literally, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in seen["hostile_html"]
    assert "<img" not in seen["hostile_html"] and seen["images"] == 0
    assert stored["flow_changed"] is True
    decisions = {s["provider"]: s["decisions"] for s in stored["flow"]}
    assert decisions["feeds"] == 1 and decisions["virustotal"] == 2
    problems = [m for m in seen["console"] if "Content Security Policy" in m or "Uncaught" in m]
    assert problems == [], problems
