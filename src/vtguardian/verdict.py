"""Turning engine counts into a verdict nobody has to be afraid of.

One engine flagging a bank or an update server is a bad day for that engine,
not a threat. So (README, "Verdicts: why one engine is never enough"):

- *malicious* needs at least ``min_malicious`` engines saying malicious AND a
  detection ratio ``malicious / (malicious + suspicious + harmless +
  undetected)`` at or above ``ratio_threshold``; or, when the user lists
  vendors they trust, at least ``trusted_min`` of those;
- a malicious result on a very popular domain (VirusTotal popularity rank at or
  under ``popular_rank``, or a name on the user's top-sites list) is held at
  *suspicious* for review instead: blocking it would break the household;
- anything flagged below the bar is *suspicious* (shown, never blocked by default);
- nothing flagged is *harmless*; no record, or no engine with an opinion, *unknown*.

The score grades the same evidence from 0 to 1: 0.5 is exactly the malicious
bar, 1.0 twice it; suspicious engines weigh half.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Level(StrEnum):
    MALICIOUS = "malicious"
    SUSPICIOUS = "suspicious"
    HARMLESS = "harmless"
    UNKNOWN = "unknown"
    PENDING = "pending"


@dataclass(frozen=True)
class Policy:
    min_malicious: int = 3
    ratio_threshold: float = 0.03
    trusted_vendors: frozenset[str] = frozenset()
    trusted_min: int = 2
    # VirusTotal popularity ranks at or under this are "very popular"; 0 turns it off.
    popular_rank: int = 1000
    popular_domains: frozenset[str] = frozenset()
    # A young domain (README, "Young domains") with one engine flag or more is never
    # harmless, and a malicious one is never held back as popular.
    young_suspicious: bool = True

    @classmethod
    def from_settings(cls, settings: object) -> Policy:
        verdict = settings.verdict  # type: ignore[attr-defined]
        return cls(
            min_malicious=verdict.min_malicious,
            ratio_threshold=verdict.ratio_threshold,
            trusted_vendors=frozenset(v.lower() for v in verdict.trusted_vendors),
            trusted_min=verdict.trusted_min,
            popular_rank=verdict.popular_rank,
            popular_domains=read_top_sites(verdict.top_sites_files),
            young_suspicious=verdict.young_domain_suspicious,
        )


@dataclass(frozen=True)
class Verdict:
    level: Level
    ratio: float | None = None
    score: float = 0.0
    malicious: int = 0
    suspicious: int = 0
    total: int = 0
    engines: list[str] = field(default_factory=list)
    reason: str = ""


def detection_ratio(stats: Mapping[str, int]) -> tuple[float | None, int]:
    """malicious / (malicious + suspicious + harmless + undetected), and that total.

    Timeouts, failures and unsupported types are left out: an engine that did not
    look has no opinion (and file reports have three more such keys).
    """
    total = sum(int(stats.get(k, 0) or 0) for k in ("malicious", "suspicious", "harmless"))
    total += int(stats.get("undetected", 0) or 0)
    if total == 0:
        return None, 0
    return int(stats.get("malicious", 0) or 0) / total, total


def decide(
    stats: Mapping[str, int] | None,
    engines: Iterable[str],
    policy: Policy,
    popularity_rank: int | None = None,
    domain: str | None = None,
    young: bool = False,
) -> Verdict:
    """The level for one provider answer; ``stats`` None means "no record"; ``young``:
    the domain was registered less than ``verdict.young_domain_days`` ago."""
    flagged = sorted(engines)
    if stats is None:
        return Verdict(Level.UNKNOWN, reason="no record")
    ratio, total = detection_ratio(stats)
    malicious = int(stats.get("malicious", 0) or 0)
    suspicious = int(stats.get("suspicious", 0) or 0)
    if ratio is None:
        return Verdict(Level.UNKNOWN, engines=flagged, reason="no engine gave an opinion")
    bar = max(float(policy.min_malicious), policy.ratio_threshold * total)
    score = round(min(1.0, (malicious + 0.5 * suspicious) / (2 * bar)), 3)
    ratio = round(ratio, 4)
    counts = {"ratio": ratio, "malicious": malicious, "suspicious": suspicious, "total": total}
    trusted = [e for e in flagged if e.lower() in policy.trusted_vendors]
    if malicious >= policy.min_malicious and ratio >= policy.ratio_threshold:
        reason = f"{malicious}/{total} engines, ratio {ratio:.1%}"
    elif policy.trusted_vendors and len(trusted) >= policy.trusted_min:
        reason = f"trusted vendors: {', '.join(trusted)}"
    elif malicious or suspicious:
        note = "; young domain" if young and policy.young_suspicious else ""
        return Verdict(
            Level.SUSPICIOUS,
            score=score,
            engines=flagged,
            **counts,
            reason=f"{malicious} malicious, {suspicious} suspicious: below the bar{note}",
        )
    else:
        return Verdict(Level.HARMLESS, score=score, engines=flagged, **counts, reason="clean")
    popular = _popular(policy, popularity_rank, domain)
    if popular and young and policy.young_suspicious:
        popular = None  # popular and registered last month: a rank bought, not earned
    if popular:
        return Verdict(
            Level.SUSPICIOUS,
            score=score,
            engines=flagged,
            **counts,
            reason=f"{reason}; {popular}: held for review",
        )
    return Verdict(Level.MALICIOUS, score=score, engines=flagged, **counts, reason=reason)


def popular(policy: Policy, rank: int | None, domain: str | None) -> str | None:
    """Why ``domain`` counts as very popular under ``policy`` (rank or top-sites list),
    or None: such a name vouches for the shared addresses it resolves to."""
    return _popular(policy, rank, domain)


def vouching(
    policy: Policy, allowlisted: Callable[[str], bool]
) -> Callable[[str, str | None, int | None], bool]:
    """Whether a name (its value, verdict and popularity rank) vouches for the addresses
    it resolved to: harmless, allowlisted or very popular. An address that also served
    such a name is shared hosting or a CDN, so it is never blocked or alerted on for
    another name's sake (the firewall's followed blocks and the DNS-bypass alert)."""

    def vouches(value: str, verdict: str | None, rank: int | None) -> bool:
        return (
            verdict == "harmless" or allowlisted(value) or _popular(policy, rank, value) is not None
        )

    return vouches


def _popular(policy: Policy, rank: int | None, domain: str | None) -> str | None:
    if policy.popular_rank and rank is not None and rank <= policy.popular_rank:
        return f"very popular (rank {rank})"
    if domain and policy.popular_domains:
        parts = domain.split(".")
        for start in range(len(parts) - 1):
            if ".".join(parts[start:]) in policy.popular_domains:
                return "on the top-sites list"
    return None


def read_top_sites(paths: Iterable[Path]) -> frozenset[str]:
    """Tranco/Umbrella-style lists: ``rank,domain`` CSV or one domain per line."""
    from vtguardian.errors import ConfigError

    names: set[str] = set()
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(
                f"verdict.top_sites_files: cannot read {path}: {exc.strerror}"
            ) from None
        for line in text.splitlines():
            entry = line.strip().split(",")[-1].strip().lower().rstrip(".")
            if entry and not entry.startswith("#"):
                names.add(entry)
    return frozenset(names)
