"""Firewall blocks that follow a malicious domain to its local addresses (issue 27).

A dnsmasq log is ingested as a user would; the verdicts are stored as a lookup
stores them; the nft script is checked by the real ``nft -c`` (``nft_command``
``nft -c`` loads nothing, so a test may "apply" it). On both engines.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import timedelta

from sqlalchemy import text

from helpers import settings_for
from sources_helpers import ingest
from vtguardian.actions.followed import REASON_PREFIX
from vtguardian.actions.nftables import apply_nftables
from vtguardian.clock import utcnow
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_iocs

NFT = shutil.which("nft") or "/usr/sbin/nft"
C2 = "c2.bad-example.net"
SHARED_BAD = "phish.bad-example.org"


def _log(tmp_path):
    """A Pi-hole log written a minute ago: the C2 domain through a CNAME to its own
    address; a phishing domain on a CDN address that harmless and allowlisted names
    share; the C2 domain also on a private address."""
    stamp = time.strftime("%b %e %H:%M:%S", time.localtime(time.time() - 60))
    lines = [
        f"query[A] {C2} from 192.168.1.20",
        f"reply {C2} is <CNAME>",
        "reply edge.c2-host.net is 185.199.1.10",
        f"query[A] {SHARED_BAD} from 192.168.1.21",
        f"reply {SHARED_BAD} is 151.101.1.1",
        f"reply {SHARED_BAD} is 151.101.2.2",
        "query[A] www.harmless-example.com from 192.168.1.22",
        "reply www.harmless-example.com is <CNAME>",
        "reply shop.cdn-example.net is 151.101.1.1",
        "query[A] assets.allowed-example.com from 192.168.1.22",
        "reply assets.allowed-example.com is 151.101.2.2",
        f"query[A] {C2} from 192.168.1.23",
        f"reply {C2} is 10.20.30.40",
    ]
    path = tmp_path / "pihole.log"
    path.write_text("".join(f"{stamp} dnsmasq[912]: {line}\n" for line in lines))
    return path


def _verdict(engine, kind, value, level, when, rank=None):
    with write_transaction(engine) as connection:
        ioc_id = ensure_iocs(connection, {(kind, value): (None, when, when)})[(kind, value)]
        report = ReportRow(
            "virustotal", "found", level, ratio=0.2, total=90, stats={}, popularity_rank=rank
        )
        record_answer(connection, ioc_id, report, timedelta(days=1), when)


def _settings(db_url, tmp_path):
    return settings_for(
        db_url,
        "http://127.0.0.1:9",
        nftables={"script": str(tmp_path / "vtguardian.nft"), "nft_command": f"{NFT} -c"},
        allowlist={"domains": ["allowed-example.com"]},
    )


def _elements(script: str) -> set[str]:
    return set(re.findall(r"([0-9a-f.:]+) timeout \d+s", script))


def test_blocks_follow_the_domain_except_shared_hosts_and_lapse_when_it_clears(
    engine, db_url, tmp_path
):
    ingest(engine, "pihole-log", _log(tmp_path))
    now = utcnow()
    _verdict(engine, "domain", C2, "malicious", now)
    _verdict(engine, "domain", SHARED_BAD, "malicious", now)
    _verdict(engine, "domain", "www.harmless-example.com", "harmless", now)
    _verdict(engine, "ip", "185.199.1.10", "harmless", now)  # the C2's own report is clean
    settings = _settings(db_url, tmp_path)

    first = apply_nftables(engine, settings)
    assert _elements(first.script) == {"185.199.1.10"}
    assert first.followed == {"185.199.1.10": C2}
    with engine.connect() as connection:
        reasons = connection.execute(
            text(
                "SELECT i.value, a.action, a.reason FROM actions a JOIN iocs i ON i.id = a.ioc_id"
                " WHERE a.target = 'nftables'"
            )
        ).all()
    assert [tuple(r) for r in reasons] == [("185.199.1.10", "block", REASON_PREFIX + C2)]

    # The domain's verdict clears: the address it led to is no longer blocked.
    _verdict(engine, "domain", C2, "harmless", now + timedelta(minutes=5))
    second = apply_nftables(engine, settings, now=now + timedelta(minutes=5))
    assert _elements(second.script) == set()
    assert second.removed == ["185.199.1.10"]


def test_resolutions_older_than_the_window_are_not_followed(engine, db_url, tmp_path):
    ingest(engine, "pihole-log", _log(tmp_path))
    now = utcnow()
    _verdict(engine, "domain", C2, "malicious", now)
    later = now + timedelta(days=8)
    result = apply_nftables(engine, _settings(db_url, tmp_path), now=later, check_only=True)
    assert result.followed == {}
    within = apply_nftables(engine, _settings(db_url, tmp_path), check_only=True)
    assert within.followed == {"185.199.1.10": C2}


def test_a_very_popular_name_on_the_address_guards_it_too(engine, db_url, tmp_path):
    ingest(engine, "pihole-log", _log(tmp_path))
    now = utcnow()
    _verdict(engine, "domain", C2, "malicious", now)
    _verdict(engine, "domain", "edge.c2-host.net", "unknown", now, rank=40)
    result = apply_nftables(engine, _settings(db_url, tmp_path), check_only=True)
    assert result.followed == {}
