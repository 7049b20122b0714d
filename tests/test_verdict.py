"""The verdict policy, case by case: level, ratio and score written out by hand.

Ratio = malicious / (malicious + suspicious + harmless + undetected).
Score = min(1, (malicious + suspicious / 2) / (2 * bar)), bar = max(3, 0.03 * total).
"""

from __future__ import annotations

import pytest

from vtguardian.verdict import Level, Policy, decide, detection_ratio

POLICY = Policy(
    min_malicious=3,
    ratio_threshold=0.03,
    trusted_vendors=frozenset({"kaspersky", "google safebrowsing"}),
    trusted_min=1,
    popular_rank=1000,
)


def stats(malicious=0, suspicious=0, harmless=0, undetected=0, timeout=0):
    return {
        "malicious": malicious,
        "suspicious": suspicious,
        "harmless": harmless,
        "undetected": undetected,
        "timeout": timeout,
    }


def engines(count, prefix="Engine"):
    return [f"{prefix}{n}" for n in range(count)]


CASES = [
    # id, stats, flagged engines, popularity rank, level, ratio, score
    ("0/90", stats(0, 0, 70, 20), [], None, Level.HARMLESS, 0.0, 0.0),
    ("1/90", stats(1, 0, 69, 20), engines(1), None, Level.SUSPICIOUS, 0.0111, 0.167),
    ("2/90", stats(2, 0, 68, 20), engines(2), None, Level.SUSPICIOUS, 0.0222, 0.333),
    ("3/90", stats(3, 0, 67, 20), engines(3), None, Level.MALICIOUS, 0.0333, 0.5),
    ("3/10", stats(3, 0, 5, 2), engines(3), None, Level.MALICIOUS, 0.3, 0.5),
    # bar = max(3, 0.03 * 70 = 2.1) = 3 -> 10 / 6 capped at 1
    ("10/70", stats(10, 0, 40, 20), engines(10), None, Level.MALICIOUS, 0.1429, 1.0),
    ("suspicious-only", stats(0, 4, 66, 20), [], None, Level.SUSPICIOUS, 0.0, 0.333),
    ("timeouts-only", stats(0, 0, 0, 0, timeout=90), [], None, Level.UNKNOWN, None, 0.0),
    (
        "popular domain with 4 detections",
        stats(4, 0, 66, 20),
        engines(4),
        12,
        Level.SUSPICIOUS,
        0.0444,
        0.667,
    ),
    (
        "trusted vendor alone",
        stats(1, 0, 69, 20),
        ["Kaspersky"],
        None,
        Level.MALICIOUS,
        0.0111,
        0.167,
    ),
    ("unknown", None, [], None, Level.UNKNOWN, None, 0.0),
    (
        "file stats with 8 keys",
        {
            "harmless": 0,
            "type-unsupported": 5,
            "suspicious": 0,
            "confirmed-timeout": 0,
            "timeout": 1,
            "failure": 2,
            "malicious": 60,
            "undetected": 8,
        },
        engines(60),
        None,
        Level.MALICIOUS,
        0.8824,
        1.0,
    ),
    # a ratio high enough but too few engines: a single lonely vendor on a tiny panel
    ("2/5", stats(2, 0, 2, 1), engines(2), None, Level.SUSPICIOUS, 0.4, 0.333),
    # many engines but a huge panel: 3 of 200 is 1.5%, under the 3% threshold
    ("3/200", stats(3, 0, 150, 47), engines(3), None, Level.SUSPICIOUS, 0.015, 0.25),
]


@pytest.mark.parametrize(
    ("stats_", "flagged", "rank", "level", "ratio", "score"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_verdict_table(stats_, flagged, rank, level, ratio, score):
    verdict = decide(stats_, flagged, POLICY, popularity_rank=rank)
    assert verdict.level is level
    assert verdict.ratio == ratio
    assert verdict.score == score
    assert verdict.engines == sorted(flagged)
    assert verdict.reason


def test_popular_domain_from_a_top_sites_list():
    policy = Policy(popular_rank=0, popular_domains=frozenset({"bank.example"}))
    verdict = decide(stats(5, 0, 60, 20), engines(5), policy, domain="login.bank.example")
    assert verdict.level is Level.SUSPICIOUS and "top-sites" in verdict.reason
    other = decide(stats(5, 0, 60, 20), engines(5), policy, domain="bank.example.evil.net")
    assert other.level is Level.MALICIOUS


def test_trusted_vendors_need_their_minimum():
    policy = Policy(trusted_vendors=frozenset({"kaspersky", "eset"}), trusted_min=2)
    one = decide(stats(1, 0, 69, 20), ["Kaspersky"], policy)
    two = decide(stats(2, 0, 68, 20), ["ESET", "Kaspersky"], policy)
    assert (one.level, two.level) == (Level.SUSPICIOUS, Level.MALICIOUS)


def test_ratio_ignores_engines_without_an_opinion():
    assert detection_ratio(stats(3, 1, 6, 0, timeout=50)) == (0.3, 10)
    assert detection_ratio({"malicious": 0, "timeout": 3}) == (None, 0)


def test_a_young_domain_is_never_held_back_as_popular_and_says_why():
    stats_ = {"malicious": 9, "suspicious": 0, "harmless": 60, "undetected": 20}
    engines = [f"e{n}" for n in range(9)]
    policy = Policy()
    assert decide(stats_, engines, policy, popularity_rank=5).level == Level.SUSPICIOUS
    assert decide(stats_, engines, policy, popularity_rank=5, young=True).level == Level.MALICIOUS
    off = Policy(young_suspicious=False)
    assert decide(stats_, engines, off, popularity_rank=5, young=True).level == Level.SUSPICIOUS
    one = {"malicious": 1, "suspicious": 0, "harmless": 60, "undetected": 20}
    flagged = decide(one, ["e1"], policy, young=True)
    assert flagged.level == Level.SUSPICIOUS and "young domain" in flagged.reason
