"""The page's IoC detail shows the passive DNS pivots (issue 27), in real headless
Chromium: a domain's addresses here and its neighbours, an address's domains."""

from __future__ import annotations

import asyncio

import pytest

from helpers import served, settings_for
from resolution_helpers import C2, C2_ADDRESS, HARMLESS, SHARED_BAD, resolution_log, store_verdict
from sources_helpers import ingest
from test_page_lookup import _look_up, browser
from vtguardian.clock import utcnow
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine
from vtguardian.web.app import create_app


@pytest.mark.browser  # Chromium through test_page_lookup's helper
def test_the_ioc_detail_shows_addresses_neighbours_and_domains(tmp_path):
    url = f"sqlite:///{tmp_path / 'pivots.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    ingest(engine, "pihole-log", resolution_log(tmp_path))
    store_verdict(engine, "domain", HARMLESS, "harmless", utcnow())
    app = create_app(settings_for(url, "http://127.0.0.1:9"), engine)

    async def scenario(base: str) -> dict[str, str]:
        async with browser(f"{base}/", str(tmp_path / "profile")) as page:
            await page.wait_for("document.body.dataset.loaded === 'yes'", "the page to load")
            return {
                "c2": await _look_up(page, C2, "Resolved here to"),
                "shared": await _look_up(page, SHARED_BAD, "Other domains on those addresses"),
                "address": await _look_up(page, "151.101.1.1", "Domains that resolved to it"),
            }

    with served(app) as base:
        seen = asyncio.run(scenario(base))
    engine.dispose()
    assert C2_ADDRESS in seen["c2"] and "192.168.1.20" in seen["c2"], seen["c2"]
    assert HARMLESS in seen["shared"] and "harmless" in seen["shared"], seen["shared"]
    assert SHARED_BAD in seen["address"] and HARMLESS in seen["address"], seen["address"]
