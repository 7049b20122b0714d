"""Blocking at the firewall: an nftables table with sets of malicious addresses.

The script declares ``table inet vtguardian`` with the sets ``vtguardian_block4``
and ``vtguardian_block6`` (each element with its remaining timeout, so the
kernel drops a block when it lapses even if vtguardian is not running) and
drops forwarded and outgoing traffic to them. It first deletes only its own
table, and ``nft -f`` applies the file as one transaction: the firewall is
never seen half-updated, and nothing else in the ruleset is touched. The same
safety rules as Pi-hole blocking apply: malicious verdicts only, nothing
allowlisted or private, a circuit breaker, and every change recorded.
"""

from __future__ import annotations

import ipaddress
import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from vtguardian.actions import ledger
from vtguardian.actions.feeds import blocklist
from vtguardian.actions.followed import REASON_PREFIX, followed_addresses
from vtguardian.clock import utcnow
from vtguardian.config import Settings
from vtguardian.errors import UserError
from vtguardian.intel.alerts import hold_alerts
from vtguardian.iocs import Classifier
from vtguardian.verdict import Policy

TARGET = "nftables"


@dataclass
class NftResult:
    script: str
    blocked: dict[str, datetime] = field(default_factory=dict)  # address -> expiry
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    applied: bool = False
    #: addresses blocked because a malicious domain resolved to them -> the domain
    followed: dict[str, str] = field(default_factory=dict)


def render_script(table: str, blocked: dict[str, datetime], now: datetime) -> str:
    """The nft script for ``blocked`` addresses, each with the time it has left."""
    v4 = sorted(a for a in blocked if ipaddress.ip_address(a).version == 4)
    v6 = sorted(a for a in blocked if ipaddress.ip_address(a).version == 6)

    def elements(addresses: list[str]) -> str:
        if not addresses:
            return ""
        items = ", ".join(f"{a} timeout {_seconds(blocked[a] - now)}s" for a in addresses)
        return f"\n    elements = {{ {items} }}"

    return (
        "#!/usr/sbin/nft -f\n"
        "# written by vtguardian; loaded with `nft -f`. Only this table is replaced.\n"
        f"table inet {table}\n"
        f"delete table inet {table}\n"
        f"table inet {table} {{\n"
        f"  set {table}_block4 {{\n    type ipv4_addr\n    flags timeout{elements(v4)}\n  }}\n"
        f"  set {table}_block6 {{\n    type ipv6_addr\n    flags timeout{elements(v6)}\n  }}\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        f"    ip daddr @{table}_block4 counter drop\n"
        f"    ip6 daddr @{table}_block6 counter drop\n"
        "  }\n"
        "  chain output {\n"
        "    type filter hook output priority filter; policy accept;\n"
        f"    ip daddr @{table}_block4 counter drop\n"
        f"    ip6 daddr @{table}_block6 counter drop\n"
        "  }\n"
        "}\n"
    )


def _seconds(remaining: timedelta) -> int:
    return max(60, int(remaining.total_seconds()))


def apply_nftables(
    engine: Engine, settings: Settings, now: datetime | None = None, check_only: bool = False
) -> NftResult:
    """Write the script for the current malicious addresses and load it (or, with
    ``check_only``, let ``nft -c`` check it without touching the firewall)."""
    now = now or utcnow()
    config = settings.nftables
    lifetime = timedelta(days=config.block_days)
    classifier = Classifier.from_settings(settings)
    listed = blocklist(engine, classifier)
    malicious = set(listed.ips)
    followed = followed_addresses(
        engine,
        classifier,
        Policy.from_settings(settings),
        listed.domains,
        now,
        config.resolution_days,
    )
    followed = {a: domain for a, domain in followed.items() if a not in malicious}
    malicious |= set(followed)
    state = ledger.target_state(engine, TARGET, now)
    active, lapsed, recent = state.active, state.lapsed, state.recent
    live = {a: until for a, until in active.items() if until is None or until > now}
    # A followed address is not re-checked itself: its block lapses with its domain's verdict.
    wanted = malicious - (lapsed - set(followed))
    new = sorted(wanted - set(live))
    room = max(0, config.max_new_blocks_per_hour - recent)
    result = NftResult(script="", added=new[:room], held=new[room:], followed=followed)
    # No longer wanted, or lapsed (the kernel dropped those elements already).
    result.removed = sorted((set(active) - wanted) | (set(active) - set(live)))
    result.blocked = {a: (until or now + lifetime) for a, until in live.items() if a in wanted}
    result.blocked.update({a: now + lifetime for a in result.added})
    result.script = render_script(config.table, result.blocked, now)
    config.script.parent.mkdir(parents=True, exist_ok=True)
    config.script.write_text(result.script)
    if check_only or config.dry_run:
        _nft(config.nft_command, "-c", "-f", str(config.script))
    else:
        _nft(config.nft_command, "-f", str(config.script))
        result.applied = True
    if not check_only:
        own = [a for a in result.added if a not in followed]
        ledger.record_changes(
            engine, TARGET, "ip", own, result.removed, config.dry_run, now, lifetime
        )
        by_domain: dict[str, list[str]] = {}
        for address in result.added:
            if address in followed:
                by_domain.setdefault(followed[address], []).append(address)
        for domain, addresses in sorted(by_domain.items()):
            ledger.record_changes(
                engine,
                TARGET,
                "ip",
                addresses,
                [],
                config.dry_run,
                now,
                lifetime,
                reason=(REASON_PREFIX + domain)[:255],
            )
        if not config.dry_run:
            hold_alerts(engine, "ip", result.held, now)
    return result


def _nft(command: str, *args: str) -> None:
    try:
        completed = subprocess.run(
            [*shlex.split(command), *args], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        raise UserError(f"{command}: not found; install nftables or set run.nftables off") from None
    if completed.returncode != 0:
        reason = " ".join((completed.stderr or completed.stdout).split())[:300]
        raise UserError(f"nft refused the script: {reason}")
