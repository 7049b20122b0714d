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
from vtguardian.iocs import Classifier
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
        wanted = (malicious - lapsed - expired) - theirs
        to_add = sorted(wanted - ours)
        room = max(0, config.max_new_blocks_per_hour - recent)
        result.added, result.held = to_add[:room], to_add[room:]
        result.removed = sorted(ours - wanted)
        if not config.dry_run:
            details = _details(engine, result.added)
            target.apply(
                {
                    d: f"{TAG} malicious{details.get(d, '')}, added {now:%Y-%m-%d}"
                    for d in result.added
                },
                result.removed,
            )
    finally:
        target.close()
    ledger.record_changes(
        engine,
        TARGET,
        "domain",
        result.added,
        result.removed,
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
    return result


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
