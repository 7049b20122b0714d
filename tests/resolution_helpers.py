"""A Pi-hole log with DNS answers for the resolution tests, and verdicts as stored."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_iocs

C2 = "c2.bad-example.net"
C2_EDGE = "edge.c2-host.net"
C2_ADDRESS = "185.199.1.10"
SHARED_BAD = "phish.bad-example.org"
HARMLESS = "www.harmless-example.com"


def resolution_log(folder: Path) -> Path:
    """A Pi-hole log written a minute ago: the C2 domain through a CNAME to its own
    address; a phishing domain on CDN addresses that harmless and allowlisted names
    share; the C2 domain also on a private address."""
    stamp = time.strftime("%b %e %H:%M:%S", time.localtime(time.time() - 60))
    lines = [
        f"query[A] {C2} from 192.168.1.20",
        f"reply {C2} is <CNAME>",
        f"reply {C2_EDGE} is {C2_ADDRESS}",
        f"query[A] {SHARED_BAD} from 192.168.1.21",
        f"reply {SHARED_BAD} is 151.101.1.1",
        f"reply {SHARED_BAD} is 151.101.2.2",
        f"query[A] {HARMLESS} from 192.168.1.22",
        f"reply {HARMLESS} is <CNAME>",
        "reply shop.cdn-example.net is 151.101.1.1",
        "query[A] assets.allowed-example.com from 192.168.1.22",
        "reply assets.allowed-example.com is 151.101.2.2",
        f"query[A] {C2} from 192.168.1.23",
        f"reply {C2} is 10.20.30.40",
    ]
    path = folder / "pihole.log"
    path.write_text("".join(f"{stamp} dnsmasq[912]: {line}\n" for line in lines))
    return path


def store_verdict(engine, kind: str, value: str, level: str, when: datetime, rank=None) -> None:
    with write_transaction(engine) as connection:
        ioc_id = ensure_iocs(connection, {(kind, value): (None, when, when)})[(kind, value)]
        report = ReportRow(
            "virustotal", "found", level, ratio=0.2, total=90, stats={}, popularity_rank=rank
        )
        record_answer(connection, ioc_id, report, timedelta(days=1), when)
