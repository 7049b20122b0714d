"""Firewall blocks that follow a malicious domain to the addresses it resolved to here.

A C2 server's address is often harmless by its own report, and a device that
reaches it by the address (hard-coded, DNS-over-HTTPS, another resolver) goes
past the Pi-hole block of its name. The network's own resolutions link the two:
each public address a malicious domain (or a CNAME target it led to) resolved to
in the last ``nftables.resolution_days`` is blocked with the domain as its reason,
and no longer wanted once the domain's verdict clears or the window passes.

An address that in the same window also served a name that is harmless,
allowlisted or very popular is left alone: it is a shared host or a CDN, and
blocking it would cut off the good names with the bad one. Private and
allowlisted addresses are never blocked, nor an upstream filter's block page
(Cisco Umbrella's), which a blocked name "resolves" to.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from vtguardian.iocs import Classifier, IocType
from vtguardian.sources.dnsmasq import UPSTREAM_BLOCK_ADDRESSES
from vtguardian.store.resolutions import flagged_addresses, shared_addresses
from vtguardian.verdict import Policy, vouching

REASON_PREFIX = "resolution of "


def followed_addresses(
    engine: Engine,
    classifier: Classifier,
    policy: Policy,
    domains: list[str],
    now: datetime,
    days: float,
) -> dict[str, str]:
    """Address -> the malicious domain it is blocked for, for the domains of
    ``domains`` (the blocklist's: allowlisted names and public suffixes are not in
    it) and the resolutions since ``days`` ago."""
    if not domains or days <= 0:
        return {}
    since = now - timedelta(days=days, hours=1)
    wanted = set(domains)
    with engine.connect() as connection:
        found = flagged_addresses(connection, since, ("malicious",))
        candidates = {
            address_id: (address, names)
            for address_id, (address, names) in found.items()
            if classifier.classify_as(address, IocType.IP).eligible
            and address not in UPSTREAM_BLOCK_ADDRESSES  # an upstream filter's block page
            and any(name in wanted for _id, name in names)
        }
        shared = shared_addresses(
            connection, candidates, since, vouching(policy, classifier.is_allowlisted)
        )
    return {
        address: next(name for _id, name in names if name in wanted)
        for address_id, (address, names) in sorted(candidates.items(), key=lambda c: c[1][0])
        if address_id not in shared
    }
