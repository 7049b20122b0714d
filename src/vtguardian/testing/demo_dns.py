"""The demo's passive DNS: a C2 server reached around Pi-hole, and a CDN left alone.

In the demo household ``malware-c2.example.net`` resolves to an address of its own
(:data:`C2_ADDRESS`, harmless by its own VirusTotal report) that a second device
later reaches directly, with no local DNS answer (a ``dns-bypass`` alert); the
phishing domain sits behind a CNAME on a CDN address (:data:`CDN_ADDRESS`) that
``www.google.com`` shares, which the firewall leaves alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
from sqlalchemy import Engine

from vtguardian.actions.feeds import blocklist
from vtguardian.actions.followed import REASON_PREFIX, followed_addresses
from vtguardian.clock import utcnow
from vtguardian.config import Settings
from vtguardian.intel.bypass import detect_bypasses
from vtguardian.iocs import Classifier
from vtguardian.verdict import Policy

C2 = "malware-c2.example.net"
C2_ADDRESS = "91.215.85.17"
PHISH = "phish-login.example.org"
CDN_EDGE = "edge-17.example-cdn.net"
CDN_ADDRESS = "151.101.65.140"
SHARED = "www.google.com"
BYPASSER = "192.168.1.16"  # desktop-office: resolves the C2 elsewhere (DNS-over-HTTPS)


def answer_lines(name: str, address: str) -> list[str]:
    """The dnsmasq ``reply`` lines answering ``name`` (``address`` its usual one)."""
    if name == C2:
        return [f"reply {name} is {C2_ADDRESS}"]
    if name == PHISH:
        return [f"reply {name} is <CNAME>", f"reply {CDN_EDGE} is {CDN_ADDRESS}"]
    return [f"reply {name} is {address}"]


def shared_cdn_lines(stamp: str, client: str) -> list[str]:
    """``www.google.com`` answered once through the same CDN edge address."""
    return [
        f"{stamp} dnsmasq[612]: query[A] {SHARED} from {client}",
        f"{stamp} dnsmasq[612]: reply {SHARED} is <CNAME>",
        f"{stamp} dnsmasq[612]: reply {CDN_EDGE} is {CDN_ADDRESS}",
    ]


def bypass_events(now: datetime) -> list[bytes]:
    """Suricata events of the desktop talking TLS to the C2 address three hours ago,
    without asking Pi-hole (it resolved the name over DNS-over-HTTPS)."""
    moment = now - timedelta(hours=3)
    event = {
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000",
        "event_type": "tls",
        "src_ip": BYPASSER,
        "src_port": 51234,
        "dest_ip": C2_ADDRESS,
        "dest_port": 443,
        "proto": "TCP",
        "tls": {"sni": C2, "version": "TLS 1.3"},
    }
    return [orjson.dumps(event) + b"\n"]


def after_lookups(
    engine: Engine, settings: Settings, classifier: Classifier
) -> tuple[dict[str, str], int]:
    """What ``block firewall --check`` would block (address -> why: the address's own
    verdict, or the malicious domain it resolved from) and the dns-bypass alerts made."""
    now = utcnow()
    policy = Policy.from_settings(settings)
    listed = blocklist(engine, classifier)
    firewall = {address: "malicious verdict" for address in listed.ips}
    for address, domain in followed_addresses(
        engine, classifier, policy, listed.domains, now, settings.nftables.resolution_days
    ).items():
        firewall.setdefault(address, REASON_PREFIX + domain)
    found = detect_bypasses(engine, classifier, policy, now, settings.alerts.bypass_window_minutes)
    return dict(sorted(firewall.items())), found.alerts
