"""Every line kind Pi-hole (v5, v6) and dnsmasq 2.90 write, and the device behind it.

The lines follow FTL's and dnsmasq's own format strings (``_log_query`` in
dnsmasq's cache.c, the blocking reasons in FTL's dnsmasq_interface.c); the real
logs of tests/data/real/pihole/ cover the same kinds as written by real runs.
Counts here are worked out by hand from the lines.
"""

from __future__ import annotations

import os
from datetime import datetime

import pytest

from sources_helpers import ingest, stored_by_device


def _ingest(engine, tmp_path, lines: str, source: str = "pihole-log"):
    path = tmp_path / "pihole.log"
    path.write_text(lines)
    settled = datetime(2026, 12, 4, 23, 0).timestamp()
    os.utime(path, (settled, settled))
    totals = ingest(engine, source, path)
    return totals, stored_by_device(engine)


def test_an_address_at_the_end_of_a_cname_chain_belongs_to_the_device_that_asked(engine, tmp_path):
    """Pi-hole's default log: the last reply names a target that nobody queried."""
    _, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: query[A] www.apple.com from 192.168.1.116\n"
        "Dec  4 10:00:01 dnsmasq[612]: forwarded www.apple.com to 127.0.0.1#5335\n"
        "Dec  4 10:00:01 dnsmasq[612]: query[A] www.ieee.org from 192.168.1.20\n"
        "Dec  4 10:00:01 dnsmasq[612]: forwarded www.ieee.org to 127.0.0.1#5335\n"
        "Dec  4 10:00:01 dnsmasq[612]: reply www.apple.com is <CNAME>\n"
        "Dec  4 10:00:01 dnsmasq[612]: reply www.apple.com.edgekey.net is <CNAME>\n"
        "Dec  4 10:00:01 dnsmasq[612]: reply e6858.dscx.akamaiedge.net is 23.216.149.134\n"
        "Dec  4 10:00:01 dnsmasq[612]: reply e6858.dscx.akamaiedge.net is 23.216.149.135\n"
        "Dec  4 10:00:01 dnsmasq[612]: reply www.ieee.org is 140.98.193.152\n"
        "Dec  4 10:00:05 dnsmasq[612]: query[AAAA] www.apple.com from 192.168.1.30\n"
        "Dec  4 10:00:05 dnsmasq[612]: cached www.apple.com is <CNAME>\n"
        "Dec  4 10:00:05 dnsmasq[612]: cached www.apple.com.edgekey.net is <CNAME>\n"
        "Dec  4 10:00:05 dnsmasq[612]: cached e6858.dscx.akamaiedge.net is "
        "2a02:26f0:2b00:3a5::1aca\n",
    )
    assert found == {
        "domain www.apple.com": {"192.168.1.116": [1, 0], "192.168.1.30": [1, 0]},
        "domain www.ieee.org": {"192.168.1.20": [1, 0]},
        "ip 23.216.149.134": {"192.168.1.116": [1, 0]},
        "ip 23.216.149.135": {"192.168.1.116": [1, 0]},
        "ip 140.98.193.152": {"192.168.1.20": [1, 0]},
        "ip 2a02:26f0:2b00:3a5::1aca": {"192.168.1.30": [1, 0]},
    }


@pytest.mark.parametrize(
    "reason",
    [
        "gravity blocked",  # v5 and v6
        "regex blacklisted",  # v5
        "exactly blacklisted",  # v5
        "regex denied",  # v6
        "exactly denied",  # v6
        "gravity blocked (CNAME)",  # v6, a chain blocked before and cached
        "regex denied (CNAME)",
        "exactly denied (CNAME)",
        "special domain",
        "Apple iCloud Private Relay domain",
        "Mozilla canary domain",
        "blocked upstream with NULL address",  # v6
        "blocked upstream with known address",
        "to be refused (gravity database is not available)",
    ],
)
def test_every_blocking_reason_blocks_the_queried_domain(engine, tmp_path, reason):
    _, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: query[A] mask.icloud.com from 192.168.1.40\n"
        f"Dec  4 10:00:01 dnsmasq[612]: {reason} mask.icloud.com is 0.0.0.0\n",
    )
    assert found == {"domain mask.icloud.com": {"192.168.1.40": [1, 1]}}


def test_a_cname_inspection_block_counts_once_for_the_queried_name(engine, tmp_path):
    """The chain's blocked target is named by the "during CNAME inspection" line; the
    query itself is blocked by the reason line that follows (Pi-hole status 9)."""
    _, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: query[A] click.redditmail.com from 192.168.1.21\n"
        "Dec  4 10:00:01 dnsmasq[612]: forwarded click.redditmail.com to 127.0.0.1#5335\n"
        "Dec  4 10:00:01 dnsmasq[612]: reply click.redditmail.com is <CNAME>\n"
        "Dec  4 10:00:01 dnsmasq[612]: reply tracking.redditmail.net is blocked during CNAME "
        "inspection\n"
        "Dec  4 10:00:01 dnsmasq[612]: gravity blocked click.redditmail.com is 0.0.0.0\n",
    )
    assert found == {"domain click.redditmail.com": {"192.168.1.21": [1, 1]}}


def test_an_upstream_null_answer_is_a_block_of_the_query(engine, tmp_path):
    """Pi-hole's status 7: the upstream answered 0.0.0.0 or ::, also from the cache
    (FTL v5.25.2 checks cached answers too: detect_blocked_IP)."""
    _, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: query[A] ads.doubleclick.net from 192.168.1.22\n"
        "Dec  4 10:00:01 dnsmasq[612]: forwarded ads.doubleclick.net to 9.9.9.9\n"
        "Dec  4 10:00:01 dnsmasq[612]: reply ads.doubleclick.net is 0.0.0.0\n"
        "Dec  4 10:00:02 dnsmasq[612]: query[A] ads.doubleclick.net from 192.168.1.22\n"
        "Dec  4 10:00:02 dnsmasq[612]: cached ads.doubleclick.net is 0.0.0.0\n",
    )
    assert found == {"domain ads.doubleclick.net": {"192.168.1.22": [2, 2]}}


def test_upstream_blocks_of_pihole_6_4_and_block_pages(engine, tmp_path):
    """v6.4 logs an upstream null answer as "blocked due to upstream response", then
    an answer with no reason; a Cisco Umbrella block page is status 6."""
    _, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: UDP 327 192.168.1.73/39954 query[A] ib.adnxs.com "
        "from 192.168.1.73\n"
        "Dec  4 10:00:01 dnsmasq[612]: UDP 327 192.168.1.73/39954 forwarded ib.adnxs.com "
        "to 127.0.0.1#5353\n"
        "Dec  4 10:00:01 dnsmasq[612]: UDP 327 192.168.1.73/39954 reply ib.adnxs.com is "
        "blocked due to upstream response (answer)\n"
        "Dec  4 10:00:01 dnsmasq[612]: UDP 327 192.168.1.73/39954 <not set> ib.adnxs.com "
        "is 0.0.0.0\n"
        "Dec  4 10:00:02 dnsmasq[612]: UDP 332 192.168.1.150/56158 query[A] "
        "www.internetbadguys.com from 192.168.1.150\n"
        "Dec  4 10:00:02 dnsmasq[612]: UDP 332 192.168.1.150/56158 reply "
        "www.internetbadguys.com is 146.112.61.108\n",
    )
    assert found == {
        "domain ib.adnxs.com": {"192.168.1.73": [1, 1]},
        "domain www.internetbadguys.com": {"192.168.1.150": [1, 1]},
        "ip 146.112.61.108": {"192.168.1.150": [1, 0]},
    }


def test_the_refresh_of_a_stale_answer_reaches_no_device(engine, tmp_path):
    """dnsmasq answers from the stale entry, then refreshes it for nobody."""
    _, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: query[A] www.google.com from 192.168.1.42\n"
        "Dec  4 10:00:01 dnsmasq[612]: cached-stale www.google.com is 142.250.189.174\n"
        "Dec  4 10:00:01 dnsmasq[612]: forwarded www.google.com to 127.0.0.1#5353\n"
        "Dec  4 10:00:01 dnsmasq[612]: reply www.google.com is 142.250.189.175\n"
        "Dec  4 10:00:09 dnsmasq[612]: query[A] www.google.com from 192.168.1.43\n"
        "Dec  4 10:00:09 dnsmasq[612]: cached www.google.com is 142.250.189.175\n",
        source="dnsmasq",
    )
    assert found == {
        "domain www.google.com": {"192.168.1.42": [1, 0], "192.168.1.43": [1, 0]},
        "ip 142.250.189.174": {"192.168.1.42": [1, 0]},
        "ip 142.250.189.175": {"192.168.1.43": [1, 0]},
    }


def test_extra_and_proto_prefixes_name_the_requestor(engine, tmp_path):
    """Pi-hole v6's misc.extraLogging: log-queries=extra plus the transport."""
    _, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: UDP 7 192.168.1.116/53421 query[A] www.apple.com "
        "from 192.168.1.116\n"
        "Dec  4 10:00:01 dnsmasq[612]: TCP 8 fd00::20/40001 query[AAAA] www.apple.com "
        "from fd00::20\n"
        "Dec  4 10:00:01 dnsmasq[612]: UDP 7 192.168.1.116/53421 forwarded www.apple.com "
        "to 127.0.0.1#5335\n"
        "Dec  4 10:00:01 dnsmasq[612]: TCP 8 fd00::20/40001 forwarded www.apple.com "
        "to 127.0.0.1#5335\n"
        "Dec  4 10:00:01 dnsmasq[612]: UDP 7 192.168.1.116/53421 reply www.apple.com is <CNAME>\n"
        "Dec  4 10:00:01 dnsmasq[612]: UDP 7 192.168.1.116/53421 reply e6858.dscx.akamaiedge.net "
        "is 23.216.149.134 (DNSSEC signed)\n"
        "Dec  4 10:00:01 dnsmasq[612]: TCP 8 fd00::20/40001 reply www.apple.com is <CNAME>\n"
        "Dec  4 10:00:01 dnsmasq[612]: TCP 8 fd00::20/40001 reply e6858.dscx.akamaiedge.net "
        "is 2a02:26f0:2b00:3a5::1aca (DNSSEC signed)\n"
        "Dec  4 10:00:02 dnsmasq[612]: UDP 9 192.168.1.117/5353 query[A] tracker.example.net "
        "from 192.168.1.117\n"
        "Dec  4 10:00:02 dnsmasq[612]: UDP 9 192.168.1.117/5353 gravity blocked (CNAME) "
        "tracker.example.net is 0.0.0.0\n",
    )
    assert found == {
        "domain www.apple.com": {"192.168.1.116": [1, 0], "fd00::20": [1, 0]},
        "ip 23.216.149.134": {"192.168.1.116": [1, 0]},
        "ip 2a02:26f0:2b00:3a5::1aca": {"fd00::20": [1, 0]},
        "domain tracker.example.net": {"192.168.1.117": [1, 1]},
    }


def test_interleaved_answers_are_told_apart_by_serial_and_process(engine, tmp_path):
    """A CNAME's target line may be followed by another query's answer: extra logging
    tells them apart by serial, plain logging by the forked TCP worker's pid."""
    _, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: 7 192.168.1.10/5000 query[A] www.apple.com "
        "from 192.168.1.10\n"
        "Dec  4 10:00:01 dnsmasq[612]: 9 192.168.1.11/5001 query[A] api.github.com "
        "from 192.168.1.11\n"
        "Dec  4 10:00:01 dnsmasq[612]: 7 192.168.1.10/5000 reply www.apple.com is <CNAME>\n"
        "Dec  4 10:00:01 dnsmasq[612]: 9 192.168.1.11/5001 reply api.github.com is "
        "140.82.121.6\n"
        "Dec  4 10:00:02 dnsmasq[612]: query[A] en.wikipedia.org from 192.168.1.12\n"
        "Dec  4 10:00:02 dnsmasq[700]: query[A] mail.example.org from 192.168.1.13\n"
        "Dec  4 10:00:02 dnsmasq[612]: reply en.wikipedia.org is <CNAME>\n"
        "Dec  4 10:00:02 dnsmasq[700]: reply mail.example.org is 93.184.215.14\n"
        "Dec  4 10:00:02 dnsmasq[612]: reply dyna.wikimedia.org is 185.15.59.224\n",
    )
    assert found == {
        "domain www.apple.com": {"192.168.1.10": [1, 0]},
        "domain api.github.com": {"192.168.1.11": [1, 0]},
        "ip 140.82.121.6": {"192.168.1.11": [1, 0]},
        "domain en.wikipedia.org": {"192.168.1.12": [1, 0]},
        "domain mail.example.org": {"192.168.1.13": [1, 0]},
        "ip 93.184.215.14": {"192.168.1.13": [1, 0]},
        "ip 185.15.59.224": {"192.168.1.12": [1, 0]},
    }


def test_a_dnssec_suffix_does_not_hide_the_address(engine, tmp_path):
    _, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: 12 192.168.1.20/5353 query[A] www.isc.org from "
        "192.168.1.20\n"
        "Dec  4 10:00:01 dnsmasq[612]: 12 192.168.1.20/5353 reply www.isc.org is "
        "151.101.2.217 (DNSSEC signed)\n"
        "Dec  4 10:00:01 dnsmasq[612]: 13 192.168.1.20/5354 query[AAAA] www.isc.org from "
        "192.168.1.20\n"
        "Dec  4 10:00:01 dnsmasq[612]: 13 192.168.1.20/5354 reply www.isc.org is "
        "2a04:4e42::729 (DNSSEC signed)\n"
        "Dec  4 10:00:01 dnsmasq[612]: 13 192.168.1.20/5354 validation www.isc.org is SECURE\n",
        source="dnsmasq",
    )
    assert found == {
        "domain www.isc.org": {"192.168.1.20": [2, 0]},
        "ip 151.101.2.217": {"192.168.1.20": [1, 0]},
        "ip 2a04:4e42::729": {"192.168.1.20": [1, 0]},
    }


def test_lines_that_answer_nothing_add_nothing(engine, tmp_path):
    totals, found = _ingest(
        engine,
        tmp_path,
        "Dec  4 10:00:01 dnsmasq[612]: query[A] pi.hole from 192.168.1.50\n"
        "Dec  4 10:00:01 dnsmasq[612]: Pi-hole hostname pi.hole is 192.168.1.2\n"
        "Dec  4 10:00:02 dnsmasq[612]: query[A] unifi from 192.168.1.50\n"
        "Dec  4 10:00:02 dnsmasq[612]: config unifi is NODATA-IPv4\n"
        "Dec  4 10:00:03 dnsmasq[612]: query[A] nosuch.example.org from 192.168.1.50\n"
        "Dec  4 10:00:03 dnsmasq[612]: reply nosuch.example.org is NXDOMAIN\n"
        "Dec  4 10:00:04 dnsmasq[612]: query[A] flood.example.org from 192.168.1.51\n"
        "Dec  4 10:00:04 dnsmasq[612]: Rate-limiting flood.example.org is REFUSED\n"
        "Dec  4 10:00:05 dnsmasq[612]: started, version pi-hole-v2.90+1 cachesize 10000\n",
    )
    assert totals.errors == 0
    assert found == {
        "domain nosuch.example.org": {"192.168.1.50": [1, 0]},
        # Rate-limited: Pi-hole never records the query, but the device did ask.
        "domain flood.example.org": {"192.168.1.51": [1, 0]},
    }
