"""Blocklists built from the verdicts, in the formats DNS filters and IDSs subscribe to.

Pi-hole and AdGuard Home take ``domains.txt`` or ``hosts.txt``; Unbound and
BIND take the RPZ zone; pfBlockerNG takes ``ips.txt``; Suricata loads the
dataset and the matching rules. Only ``malicious`` verdicts are listed (never
suspicious ones, which include popular domains held for review), nothing the
user allowlisted, even if a provider called it malicious, and never a public
suffix (``co.uk``, ``duckdns.org``), which would block everyone registered under
it. The same list drives Pi-hole blocking.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from vtguardian.clock import utcnow
from vtguardian.iocs import Classifier, is_public_suffix
from vtguardian.store.schema import iocs, verdicts

DATASET = "vtguardian-domains"


@dataclass(frozen=True)
class Blocklist:
    domains: list[str]
    ips: list[str]
    generated: datetime


def blocklist(engine: Engine, classifier: Classifier) -> Blocklist:
    """Malicious domains and IPs, allowlisted and private ones left out, sorted."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(iocs.c.type, iocs.c.value)
            .join(verdicts, verdicts.c.ioc_id == iocs.c.id)
            .where(verdicts.c.verdict == "malicious", iocs.c.type.in_(["domain", "ip"]))
        ).all()
    domains, ips = [], []
    for kind, value in rows:
        if not classifier.classify(value).eligible:  # allowlisted since, or never public
            continue
        if kind == "domain" and is_public_suffix(value):
            continue
        (domains if kind == "domain" else ips).append(value)
    return Blocklist(sorted(domains), sorted(ips), utcnow())


def _header(blocklist: Blocklist, comment: str, what: str) -> str:
    stamp = blocklist.generated.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"{comment} vtguardian blocklist: {what} with a malicious verdict\n"
        f"{comment} generated {stamp}; at least 3 engines and the ratio threshold agree\n"
    )


def domains_txt(blocklist: Blocklist) -> str:
    return _header(blocklist, "#", "domains") + "".join(f"{d}\n" for d in blocklist.domains)


def hosts_txt(blocklist: Blocklist) -> str:
    return _header(blocklist, "#", "domains") + "".join(f"0.0.0.0 {d}\n" for d in blocklist.domains)


def ips_txt(blocklist: Blocklist) -> str:
    return _header(blocklist, "#", "addresses") + "".join(f"{ip}\n" for ip in blocklist.ips)


def rpz_zone(blocklist: Blocklist, origin: str = "rpz.vtguardian.local.") -> str:
    """A Response Policy Zone: NXDOMAIN for each domain and every name under it."""
    serial = int(blocklist.generated.strftime("%y%m%d%H%M"))
    lines = [
        _header(blocklist, ";", "domains").rstrip("\n"),
        f"$ORIGIN {origin}",
        "$TTL 300",
        f"@ IN SOA localhost. hostmaster.localhost. {serial} 3600 600 86400 300",
        "@ IN NS localhost.",
    ]
    for domain in blocklist.domains:
        lines.append(f"{domain} CNAME .")
        lines.append(f"*.{domain} CNAME .")
    return "\n".join(lines) + "\n"


def suricata_dataset(blocklist: Blocklist) -> str:
    """Suricata ``type string`` dataset lines are base64 of the value."""
    return "".join(base64.b64encode(d.encode()).decode() + "\n" for d in blocklist.domains)


def suricata_rules(sid_base: int = 9_700_000) -> str:
    load = f"dataset:isset,{DATASET},type string,load {DATASET}.lst"
    return (
        f'alert dns any any -> any any (msg:"vtguardian: DNS query for a malicious domain"; '
        f"dns.query; {load}; classtype:trojan-activity; sid:{sid_base + 1}; rev:1;)\n"
        f'alert tls any any -> any any (msg:"vtguardian: TLS to a malicious domain"; '
        f"tls.sni; {load}; classtype:trojan-activity; sid:{sid_base + 2}; rev:1;)\n"
    )


FEEDS: dict[str, tuple[str, Callable[[Blocklist], str]]] = {
    "domains.txt": ("text/plain", domains_txt),
    "hosts.txt": ("text/plain", hosts_txt),
    "ips.txt": ("text/plain", ips_txt),
    "rpz.zone": ("text/dns", rpz_zone),
    f"{DATASET}.lst": ("text/plain", suricata_dataset),
    "vtguardian.rules": ("text/plain", lambda _blocklist: suricata_rules()),
}
