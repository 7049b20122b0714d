"""Turning engine counts into a verdict nobody has to be afraid of.

One engine flagging a bank or an update server is a bad day for that engine,
not a threat: *malicious* needs at least ``min_malicious`` engines AND a
detection ratio at or above ``ratio_threshold`` (DESIGN.md). Anything flagged
below that bar is *suspicious* (shown, never blocked by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


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

    @classmethod
    def from_settings(cls, settings: object) -> Policy:
        verdict = settings.verdict  # type: ignore[attr-defined]
        return cls(min_malicious=verdict.min_malicious, ratio_threshold=verdict.ratio_threshold)


@dataclass(frozen=True)
class Verdict:
    level: Level
    ratio: float | None = None
    score: float = 0.0
    malicious: int = 0
    suspicious: int = 0
    total: int = 0
    engines: list[str] = field(default_factory=list)


def detection_ratio(stats: Mapping[str, int]) -> tuple[float | None, int]:
    """malicious / (malicious + suspicious + harmless + undetected), and that total.

    Timeouts and failures are left out: an engine that did not answer has no opinion.
    """
    malicious = int(stats.get("malicious", 0) or 0)
    total = sum(int(stats.get(k, 0) or 0) for k in ("malicious", "suspicious", "harmless"))
    total += int(stats.get("undetected", 0) or 0)
    if total == 0:
        return None, 0
    return malicious / total, total


def decide(stats: Mapping[str, int] | None, engines: list[str], policy: Policy) -> Verdict:
    """The level for one provider answer; ``stats`` None means "no record"."""
    if stats is None:
        return Verdict(Level.UNKNOWN)
    ratio, total = detection_ratio(stats)
    malicious = int(stats.get("malicious", 0) or 0)
    suspicious = int(stats.get("suspicious", 0) or 0)
    if ratio is None:
        return Verdict(Level.UNKNOWN, engines=engines)
    # Graded 0..1: three times the threshold (suspicious engines weigh half) is certainty.
    weighted = (malicious + 0.5 * suspicious) / total
    score = min(1.0, weighted / max(3 * policy.ratio_threshold, 1e-9))
    if malicious >= policy.min_malicious and ratio >= policy.ratio_threshold:
        level = Level.MALICIOUS
    elif malicious > 0 or suspicious > 0:
        level = Level.SUSPICIOUS
    else:
        level = Level.HARMLESS
    return Verdict(level, ratio, round(score, 4), malicious, suspicious, total, engines)
