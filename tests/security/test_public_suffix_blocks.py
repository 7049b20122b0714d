"""A verdict on a public suffix never blocks everything under it (issue #24, point 11).

``duckdns.org`` (a private registry's suffix) and ``co.uk`` are eligible IoCs: a
malicious verdict on one would have put ``duckdns.org CNAME .`` and
``*.duckdns.org CNAME .`` into the RPZ feed and ``duckdns.org`` into Pi-hole's deny
list, blocking every dynamic-DNS user. Verdicts come from real lookups here.
"""

from __future__ import annotations

import asyncio
import sqlite3

from helpers import gravity_db, run_cli, settings_for
from sources_helpers import ingest
from vtguardian.actions.feeds import blocklist, domains_txt, rpz_zone
from vtguardian.actions.pihole import sync_gravity
from vtguardian.intel.lookup import LookupService
from vtguardian.iocs import Classifier

SUFFIXES = ["duckdns.org", "co.uk", "github.io"]
UNDER = ["evil-c2.duckdns.org", "phish.co.uk", "malware.github.io"]


def test_feeds_and_pihole_never_block_a_public_suffix(engine, db_url, vt_emulator, tmp_path):
    listing = tmp_path / "iocs.txt"
    listing.write_text("".join(f"{name}\n" for name in SUFFIXES + UNDER))
    vt_emulator.emulator.configure(
        {"seeds": [{"type": "domain", "value": name, "malicious": 12, "harmless": 60}
                   for name in SUFFIXES + UNDER]}
    )  # fmt: skip
    gravity = gravity_db(tmp_path / "gravity.db")
    settings = settings_for(
        db_url, vt_emulator.url, pihole={"gravity_db": str(gravity), "reload_command": ""}
    )
    classifier = Classifier.from_settings(settings)
    ingest(engine, "plain", listing, classifier=classifier)
    asyncio.run(LookupService(settings, engine).run_worker(once=True))

    listed = blocklist(engine, classifier)
    assert listed.domains == sorted(UNDER)
    zone = rpz_zone(listed)
    for name in SUFFIXES:
        assert f"\n{name} CNAME" not in zone and f"*.{name} CNAME" not in zone
        assert f"\n{name}\n" not in domains_txt(listed)
    for name in UNDER:
        assert f"\n{name} CNAME .\n*.{name} CNAME .\n" in zone + "\n"
    assert sorted(sync_gravity(engine, settings).added) == sorted(UNDER)
    with sqlite3.connect(gravity) as connection:
        denied = {row[0] for row in connection.execute("SELECT domain FROM domainlist")}
    assert denied.isdisjoint(SUFFIXES)


def test_block_add_refuses_a_public_suffix(tmp_path):
    env = {"VTGUARDIAN_DATABASE__URL": f"sqlite:///{tmp_path / 'v.db'}"}
    result = run_cli("block", "add", "duckdns.org", env=env)
    assert result.returncode == 2
    assert "public suffix" in result.stderr and "Traceback" not in result.stderr
