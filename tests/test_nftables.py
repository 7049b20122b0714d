"""Firewall blocking: the nft script is checked by the real ``nft -c``."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta

import pytest
from sqlalchemy import text

from helpers import settings_for
from vtguardian.actions.nftables import apply_nftables
from vtguardian.clock import utcnow
from vtguardian.errors import UserError
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_iocs

NFT = shutil.which("nft") or "/usr/sbin/nft"


def _ip_verdict(engine, address, level, when):
    with write_transaction(engine) as connection:
        ioc_id = ensure_iocs(connection, {("ip", address): (None, when, when)})[("ip", address)]
        report = ReportRow("virustotal", "found", level, ratio=0.2, total=90, stats={})
        record_answer(connection, ioc_id, report, timedelta(days=1), when)


def _settings(db_url, tmp_path, **nft):
    return settings_for(
        db_url,
        "http://127.0.0.1:9",
        nftables={"script": str(tmp_path / "vtguardian.nft"), "nft_command": NFT, **nft},
        allowlist={"networks": ["45.155.205.0/24"]},
    )


def _elements(script: str, name: str) -> set[str]:
    block = re.search(rf"set {name} \{{(.*?)\n  \}}", script, re.S).group(1)
    return set(re.findall(r"([0-9a-f.:]+) timeout \d+s", block))


def test_script_holds_malicious_addresses_and_passes_nft_check(engine, db_url, tmp_path):
    now = utcnow()
    _ip_verdict(engine, "185.220.101.66", "malicious", now)
    _ip_verdict(engine, "2001:db8:dead::1", "malicious", now)  # documentation range: private
    _ip_verdict(engine, "2a0b:f4c0:16c:4::1", "malicious", now)
    _ip_verdict(engine, "93.184.216.34", "suspicious", now)
    _ip_verdict(engine, "45.155.205.9", "malicious", now)  # allowlisted network
    result = apply_nftables(engine, _settings(db_url, tmp_path), check_only=True)
    script = (tmp_path / "vtguardian.nft").read_text()
    assert script == result.script
    assert _elements(script, "vtguardian_block4") == {"185.220.101.66"}
    assert _elements(script, "vtguardian_block6") == {"2a0b:f4c0:16c:4::1"}
    assert not result.applied


def test_nft_check_rejects_a_broken_script(engine, db_url, tmp_path):
    settings = _settings(db_url, tmp_path, nft_command=f"{NFT} --bogus-option")
    with pytest.raises(UserError, match="nft refused"):
        apply_nftables(engine, settings, check_only=True)


def test_circuit_breaker_and_recorded_blocks_in_dry_run(engine, db_url, tmp_path):
    now = utcnow()
    for n in range(5):
        _ip_verdict(engine, f"185.220.101.{n + 1}", "malicious", now)
    settings = _settings(db_url, tmp_path, max_new_blocks_per_hour=3, dry_run=True)
    result = apply_nftables(engine, settings)
    assert len(result.added) == 3 and len(result.held) == 2
    assert len(_elements(result.script, "vtguardian_block4")) == 3
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT action, dry_run FROM actions WHERE target = 'nftables'")
        ).all()
    assert sorted((a, bool(d)) for a, d in rows) == [("block", True)] * 3
