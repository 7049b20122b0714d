"""Blocking at Pi-hole: exact deny entries for malicious domains, written to
``gravity.db`` or through Pi-hole v6's REST API (see :mod:`.denylists`).

Only ``malicious`` verdicts are blocked (suspicious ones, which include popular
domains held for review, never are), nothing allowlisted, and never a domain
the user put on the list themselves. Each entry is tagged ``vtguardian:`` in its
comment; only those are ever removed: when the verdict clears, or when the
block expires and the verdict was not confirmed again since. A circuit breaker
holds back new blocks beyond ``max_new_blocks_per_hour`` for review, so a
provider's bad day cannot take the household offline. Every block and unblock
is recorded in ``actions`` with its reason and expiry.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from vtguardian.actions import ledger
from vtguardian.actions.denylists import open_deny_list
from vtguardian.actions.feeds import blocklist
from vtguardian.clock import utcnow
from vtguardian.config import Settings
from vtguardian.errors import InvalidInput
from vtguardian.intel.alerts import hold_alerts
from vtguardian.iocs import Classifier, IocType, is_public_suffix
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.store.schema import iocs, verdicts

TARGET = "pihole"
TAG = "vtguardian:"


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # over the circuit breaker's limit
    dry_run: bool = False
    reloaded: bool = False


def sync_gravity(
    engine: Engine, settings: Settings, now: datetime | None = None, reload: bool = True
) -> SyncResult:
    """Make Pi-hole's exact deny list hold exactly the domains that should be blocked."""
    now = now or utcnow()
    config = settings.pihole
    result = SyncResult(dry_run=config.dry_run)
    malicious = set(blocklist(engine, Classifier.from_settings(settings)).domains)
    state = ledger.target_state(engine, TARGET, now)
    active, lapsed, recent = state.active, state.lapsed, state.recent
    target = open_deny_list(config)
    try:
        ours, theirs = set(), set()
        for domain, comment in target.entries().items():
            (ours if (comment or "").startswith(TAG) else theirs).add(domain)
        expired = {d for d, until in active.items() if until is not None and until <= now}
        wanted = ((malicious - lapsed - expired) | state.forced) - state.refused - theirs
        to_add = sorted(wanted - ours)
        # The circuit breaker guards against providers, not against the user's own adds.
        automatic = [d for d in to_add if d not in state.forced]
        room = max(0, config.max_new_blocks_per_hour - recent)
        result.added = sorted({d for d in to_add if d in state.forced} | set(automatic[:room]))
        result.held = automatic[room:]
        result.removed = sorted(ours - wanted)
        if not config.dry_run:
            details = _details(engine, result.added)
            target.apply(
                {d: _comment(d, d in state.forced, details, now) for d in result.added},
                result.removed,
            )
    finally:
        target.close()
    ledger.record_changes(  # the user's own choices were recorded when they made them
        engine,
        TARGET,
        "domain",
        [d for d in result.added if d not in state.forced],
        [d for d in result.removed if d not in state.refused],
        result.dry_run,
        now,
        timedelta(days=config.block_days),
    )
    changed = result.added or result.removed
    if reload and not config.dry_run and changed and config.reload_command and not config.api_url:
        completed = subprocess.run(
            shlex.split(config.reload_command), capture_output=True, timeout=120
        )
        result.reloaded = completed.returncode == 0
    if not config.dry_run:
        hold_alerts(engine, "domain", result.held, now)
    return result


def _comment(domain: str, manual: bool, details: dict[str, str], now: datetime) -> str:
    why = "blocked by the user" if manual else f"malicious{details.get(domain, '')}"
    return f"{TAG} {why}, added {now:%Y-%m-%d}"


def _details(engine: Engine, domains: list[str]) -> dict[str, str]:
    """' 14/86 (16.3%)' per domain, for the comment a Pi-hole admin reads."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(iocs.c.value, verdicts.c.malicious, verdicts.c.total, verdicts.c.ratio)
            .join(verdicts, verdicts.c.ioc_id == iocs.c.id)
            .where(iocs.c.type == "domain", iocs.c.value.in_(domains))
        ).all()
    return {
        value: f" {malicious}/{total} ({ratio:.1%})"
        for value, malicious, total, ratio in rows
        if malicious is not None and total and ratio is not None
    }


def record_manual(
    engine: Engine, settings: Settings, domains: list[str], block: bool, now: datetime | None = None
) -> list[str]:
    """The user's ``block add`` / ``block remove``: recorded now, applied by the next sync.

    Returns the normalised domains. Anything that is not a public domain, or that
    the allowlist covers, is refused with the reason: the allowlist always wins.
    """
    now = now or utcnow()
    classifier = Classifier.from_settings(settings)
    chosen = []
    for raw in domains:
        item = classifier.classify_as(raw, IocType.DOMAIN)
        if item.value is None or item.type is not IocType.DOMAIN:
            raise InvalidInput(f"{raw!r} is not a domain name")
        if not item.eligible:
            raise InvalidInput(f"{item.value}: not blocked here ({item.reason})")
        if block and is_public_suffix(item.value):
            raise InvalidInput(
                f"{item.value}: a public suffix; blocking it would block every site under it"
            )
        chosen.append(item.value)
    with write_transaction(engine) as connection:
        ensure_iocs(connection, {("domain", d): (None, now, now) for d in chosen})
    ledger.record_changes(
        engine,
        TARGET,
        "domain",
        chosen if block else [],
        [] if block else chosen,
        False,
        now,
        timedelta(days=settings.pihole.block_days),
        reason=ledger.MANUAL,
    )
    return chosen
