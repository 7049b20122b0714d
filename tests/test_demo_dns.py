"""The demo's passive DNS (issue 27): the C2 domain's own address is on the firewall's
list, the CDN address it shares with a harmless popular name is not, and the
device that reached the C2 address around Pi-hole raised a dns-bypass alert."""

from __future__ import annotations

import sqlite3

import pytest

from vtguardian.demo import run_demo
from vtguardian.testing.demo_dns import (
    BYPASSER,
    C2,
    C2_ADDRESS,
    CDN_ADDRESS,
    CDN_EDGE,
    PHISH,
)


@pytest.mark.slow
def test_the_demo_follows_the_c2_domain_to_its_address_and_alerts_on_the_bypass(tmp_path):
    result = run_demo(tmp_path / "demo")
    assert result.firewall_would_block[C2_ADDRESS] == f"resolution of {C2}"
    assert CDN_ADDRESS not in result.firewall_would_block
    assert result.dns_bypass_alerts >= 1
    with sqlite3.connect(result.database) as connection:
        own = connection.execute(
            "SELECT v.verdict FROM verdicts v JOIN iocs i ON i.id = v.ioc_id "
            "WHERE i.type = 'ip' AND i.value = ?",
            (C2_ADDRESS,),
        ).fetchone()
        links = {
            tuple(row)
            for row in connection.execute(
                "SELECT n.value, a.value FROM resolutions r JOIN iocs n ON n.id = r.name_id "
                "JOIN iocs a ON a.id = r.answer_id WHERE a.value IN (?, ?)",
                (CDN_EDGE, CDN_ADDRESS),
            )
        }
        bypasses = connection.execute(
            "SELECT c.ip, b.address, b.domain FROM dns_bypasses b "
            "JOIN clients c ON c.id = b.client_id WHERE b.kind = 'dns-bypass'"
        ).fetchall()
    assert own is None or own[0] != "malicious"  # blocked for its domain, not its own report
    # Why the CDN address is left alone: www.google.com (harmless, very popular) shares it.
    assert links == {(PHISH, CDN_EDGE), ("www.google.com", CDN_EDGE), (CDN_EDGE, CDN_ADDRESS)}
    assert (BYPASSER, C2_ADDRESS, C2) in bypasses
