"""Firewall blocks that follow a malicious domain to its local addresses (issue 27).

A dnsmasq log is ingested as a user would; the verdicts are stored as a lookup
stores them; the nft script is checked by the real ``nft -c`` (``nft_command``
``nft -c`` loads nothing, so a test may "apply" it). On both engines.
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta

from sqlalchemy import text

from helpers import settings_for
from resolution_helpers import C2, C2_ADDRESS, C2_EDGE, HARMLESS, SHARED_BAD, resolution_log
from resolution_helpers import store_verdict as _verdict
from sources_helpers import ingest
from vtguardian.actions.followed import REASON_PREFIX
from vtguardian.actions.nftables import apply_nftables
from vtguardian.clock import utcnow

NFT = shutil.which("nft") or "/usr/sbin/nft"


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
    ingest(engine, "pihole-log", resolution_log(tmp_path))
    now = utcnow()
    _verdict(engine, "domain", C2, "malicious", now)
    _verdict(engine, "domain", SHARED_BAD, "malicious", now)
    _verdict(engine, "domain", HARMLESS, "harmless", now)
    _verdict(engine, "ip", C2_ADDRESS, "harmless", now)  # the C2's own report is clean
    settings = _settings(db_url, tmp_path)

    first = apply_nftables(engine, settings)
    assert _elements(first.script) == {C2_ADDRESS}
    assert first.followed == {C2_ADDRESS: C2}
    with engine.connect() as connection:
        reasons = connection.execute(
            text(
                "SELECT i.value, a.action, a.reason FROM actions a JOIN iocs i ON i.id = a.ioc_id"
                " WHERE a.target = 'nftables'"
            )
        ).all()
    assert [tuple(r) for r in reasons] == [(C2_ADDRESS, "block", REASON_PREFIX + C2)]

    # The domain's verdict clears: the address it led to is no longer blocked.
    _verdict(engine, "domain", C2, "harmless", now + timedelta(minutes=5))
    second = apply_nftables(engine, settings, now=now + timedelta(minutes=5))
    assert _elements(second.script) == set()
    assert second.removed == [C2_ADDRESS]


def test_resolutions_older_than_the_window_are_not_followed(engine, db_url, tmp_path):
    ingest(engine, "pihole-log", resolution_log(tmp_path))
    now = utcnow()
    _verdict(engine, "domain", C2, "malicious", now)
    later = now + timedelta(days=8)
    result = apply_nftables(engine, _settings(db_url, tmp_path), now=later, check_only=True)
    assert result.followed == {}
    within = apply_nftables(engine, _settings(db_url, tmp_path), check_only=True)
    assert within.followed == {C2_ADDRESS: C2}


def test_a_very_popular_name_on_the_address_guards_it_too(engine, db_url, tmp_path):
    ingest(engine, "pihole-log", resolution_log(tmp_path))
    now = utcnow()
    _verdict(engine, "domain", C2, "malicious", now)
    _verdict(engine, "domain", C2_EDGE, "unknown", now, rank=40)
    result = apply_nftables(engine, _settings(db_url, tmp_path), check_only=True)
    assert result.followed == {}


def test_a_followed_block_is_renewed_while_its_domain_stays_malicious(engine, db_url, tmp_path):
    """The address's own verdict is never re-checked: its block must not lapse with it."""
    ingest(engine, "pihole-log", resolution_log(tmp_path))
    now = utcnow()
    _verdict(engine, "domain", C2, "malicious", now)
    _verdict(engine, "ip", C2_ADDRESS, "harmless", now)
    settings = _settings(db_url, tmp_path)
    settings = settings.model_copy(
        update={"nftables": settings.nftables.model_copy(update={"block_days": 1.0})}
    )
    assert _elements(apply_nftables(engine, settings, now=now).script) == {C2_ADDRESS}
    later = now + timedelta(days=2)  # the block expired; the domain is still malicious
    _verdict(engine, "domain", C2, "malicious", later)
    renewed = apply_nftables(engine, settings, now=later)
    assert _elements(renewed.script) == {C2_ADDRESS}
    assert renewed.added == [C2_ADDRESS]


def test_the_circuit_breaker_counts_followed_blocks_too(engine, db_url, tmp_path):
    ingest(engine, "pihole-log", resolution_log(tmp_path))
    now = utcnow()
    _verdict(engine, "domain", C2, "malicious", now)
    _verdict(engine, "ip", "185.220.101.66", "malicious", now)
    settings = _settings(db_url, tmp_path)
    settings = settings.model_copy(
        update={"nftables": settings.nftables.model_copy(update={"max_new_blocks_per_hour": 1})}
    )
    result = apply_nftables(engine, settings, now=now)
    assert sorted(result.added + result.held) == sorted(["185.220.101.66", C2_ADDRESS])
    assert len(result.added) == 1 and len(result.held) == 1


def test_an_upstream_filters_block_page_is_not_followed(engine, db_url, tmp_path):
    """Cisco Umbrella answers a name it blocks with its block page's address
    (146.112.61.104-110): the name does not live there, so it is not blocked."""
    log = resolution_log(tmp_path)
    stamp = log.read_text().split(" dnsmasq", 1)[0]
    with log.open("a") as handle:
        handle.write(f"{stamp} dnsmasq[912]: query[A] {C2} from 192.168.1.24\n")
        handle.write(f"{stamp} dnsmasq[912]: reply {C2} is 146.112.61.108\n")
    ingest(engine, "pihole-log", log)
    _verdict(engine, "domain", C2, "malicious", utcnow())
    result = apply_nftables(engine, _settings(db_url, tmp_path), check_only=True)
    assert result.followed == {C2_ADDRESS: C2}
