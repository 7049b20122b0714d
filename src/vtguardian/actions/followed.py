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
allowlisted addresses are never stored as resolutions' ends that may be blocked.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from vtguardian.iocs import Classifier, IocType
from vtguardian.store.resolutions import walk
from vtguardian.store.schema import iocs, reports, verdicts
from vtguardian.verdict import Policy

REASON_PREFIX = "resolution of "


def followed_addresses(
    engine: Engine,
    classifier: Classifier,
    policy: Policy,
    domains: list[str],
    now: datetime,
    days: float,
) -> dict[str, str]:
    """Address -> the malicious domain it is blocked for, from ``domains`` (the
    blocklist's malicious domains) and the resolutions since ``days`` ago."""
    if not domains or days <= 0:
        return {}
    since = now - timedelta(days=days, hours=1)
    with engine.connect() as connection:
        domain_ids = _ids(connection, "domain", domains)
        reached = walk(connection, domain_ids, since)
        candidates: dict[int, str] = {}
        for domain_id, found in sorted(reached.items(), key=lambda item: domain_ids[item[0]]):
            for answer_id in found:
                candidates.setdefault(answer_id, domain_ids[domain_id])
        addresses = _values(connection, candidates, "ip")
        addresses = {
            answer_id: value
            for answer_id, value in addresses.items()
            if classifier.classify_as(value, IocType.IP).eligible
        }
        served = walk(connection, addresses, since, forward=False)
        names = {name for found in served.values() for name in found}
        good = _good_names(connection, classifier, policy, names)
    return {
        value: candidates[answer_id]
        for answer_id, value in sorted(addresses.items(), key=lambda item: item[1])
        if not served[answer_id] & good
    }


def _ids(connection: Connection, kind: str, values: list[str]) -> dict[int, str]:
    found: dict[int, str] = {}
    for index in range(0, len(values), 500):
        found.update(
            connection.execute(
                select(iocs.c.id, iocs.c.value).where(
                    iocs.c.type == kind, iocs.c.value.in_(values[index : index + 500])
                )
            ).all()
        )
    return found


def _values(connection: Connection, ids: dict[int, str], kind: str) -> dict[int, str]:
    found: dict[int, str] = {}
    ordered = sorted(ids)
    for index in range(0, len(ordered), 500):
        found.update(
            connection.execute(
                select(iocs.c.id, iocs.c.value).where(
                    iocs.c.id.in_(ordered[index : index + 500]), iocs.c.type == kind
                )
            ).all()
        )
    return found


def _good_names(
    connection: Connection, classifier: Classifier, policy: Policy, ids: set[int]
) -> set[int]:
    """Of the names ``ids``, those that are harmless, allowlisted or very popular."""
    good: set[int] = set()
    ordered = sorted(ids)
    for index in range(0, len(ordered), 500):
        chunk = ordered[index : index + 500]
        rank = (
            select(reports.c.ioc_id, func.min(reports.c.popularity_rank).label("rank"))
            .where(reports.c.ioc_id.in_(chunk))
            .group_by(reports.c.ioc_id)
            .subquery()
        )
        rows = connection.execute(
            select(iocs.c.id, iocs.c.value, verdicts.c.verdict, rank.c.rank)
            .outerjoin(verdicts, verdicts.c.ioc_id == iocs.c.id)
            .outerjoin(rank, rank.c.ioc_id == iocs.c.id)
            .where(iocs.c.id.in_(chunk), iocs.c.type == "domain")
        ).all()
        for name_id, value, verdict, popularity in rows:
            if (
                verdict == "harmless"
                or classifier.classify_as(value, IocType.DOMAIN).reason == "allowlisted"
                or _popular(policy, popularity, value)
            ):
                good.add(name_id)
    return good


def _popular(policy: Policy, rank: int | None, domain: str) -> bool:
    if policy.popular_rank and rank is not None and rank <= policy.popular_rank:
        return True
    parts = domain.split(".")
    return any(".".join(parts[start:]) in policy.popular_domains for start in range(len(parts)))
