"""Threat context from a VirusTotal object already fetched: no extra request.

Vendors' categories are mapped to a small threat vocabulary; whatever does not
map (news, shopping, search engines) is kept apart as a *site category* and is
never shown as a threat. Attribute names follow the API v3 objects
(https://docs.virustotal.com/reference/domains-object, ``/ip-object``, ``/files``,
``/url-object``): ``categories``, ``last_analysis_results[*].result``,
``popular_threat_classification``, ``crowdsourced_yara_results``,
``sigma_analysis_results``, ``crowdsourced_ids_results``, ``sandbox_verdicts``,
``creation_date``, ``tags``, ``asn``, ``as_owner``, ``country``. Every value is
someone else's text: kept short and shown as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from vtguardian.clock import provider_date, utcnow
from vtguardian.store.answers import ReportRow
from vtguardian.store.threats import ThreatContext

THREATS = (
    "command-and-control",
    "phishing",
    "cryptomining",
    "spam",
    "scam",
    "pua",
    "malware",
)
# First match wins: "phishing and other frauds" is phishing, not scam.
_PATTERNS = [
    ("command-and-control", re.compile(r"command.and.control|\bc2\b|\bcnc\b|botnet")),
    ("phishing", re.compile(r"phish")),
    ("cryptomining", re.compile(r"crypto.?mining|coin.?min|cryptojack|\bminer\b")),
    ("spam", re.compile(r"spam")),
    ("scam", re.compile(r"scam|fraud")),
    ("pua", re.compile(r"\bpua\b|\bpup\b|potentially unwanted|adware|grayware|riskware")),
    (
        "malware",
        re.compile(r"malware|malicious|trojan|virus|ransom|spyware|infect|exploit|backdoor|worm"),
    ),
]
_FLAGGED = ("malicious", "suspicious")
MAX_ITEMS = 20
#: verdict.young_domain_days's default, for outputs that are not given the settings.
YOUNG_DAYS = 30
TEXT = 128


def threat_category(text: str) -> str | None:
    """The threat a vendor's word names, or None for a site category (news ...)."""
    lowered = text.lower()
    for name, pattern in _PATTERNS:
        if pattern.search(lowered):
            return name
    return None


def context_of(report: ReportRow) -> ThreatContext | None:
    """The context of a VirusTotal report, or None when it holds no object."""
    document = report.raw
    try:
        attributes = document["data"]["attributes"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    if not isinstance(attributes, dict):
        return None
    return _context(attributes)


def _context(attributes: dict[str, Any]) -> ThreatContext:
    threats: list[str] = []
    sites: list[str] = []
    categories = attributes.get("categories")
    for text in _strings(categories.values() if isinstance(categories, dict) else []):
        found = threat_category(text)
        (threats if found else sites).append(found or text.lower())
    labels: list[str] = []
    results = attributes.get("last_analysis_results")
    for result in results.values() if isinstance(results, dict) else []:
        if isinstance(result, dict) and result.get("category") in _FLAGGED:
            labels.extend(_strings([result.get("result")]))
    labels = [label.lower() for label in labels]
    # "malicious" and "suspicious" say nothing of the kind of threat.
    threats.extend(t for t in map(threat_category, sorted(set(labels) - set(_FLAGGED))) if t)
    tags = _strings(attributes.get("tags"))
    threats.extend(t for t in map(threat_category, tags) if t)
    threats.extend(t for t in map(threat_category, _strings(attributes.get("threat_names"))) if t)
    popular = attributes.get("popular_threat_classification")
    popular = popular if isinstance(popular, dict) else {}
    families = _values(popular.get("popular_threat_name"))
    for category in _values(popular.get("popular_threat_category")):
        threats.append(threat_category(category) or "malware")
    sandboxes = _sandboxes(attributes.get("sandbox_verdicts"))
    for sandbox in sandboxes:
        families.extend(sandbox["malware_names"])
    label = popular.get("suggested_threat_label")
    asn = attributes.get("asn")
    return ThreatContext(
        threat_label=str(label)[:255] if isinstance(label, str) and label else None,
        threat_categories=_unique(threats),
        site_categories=_unique(sites),
        result_labels=_unique(labels),
        families=_unique(families),
        rules=_rules(attributes),
        sandboxes=sandboxes,
        tags=_unique(tags),
        creation_date=provider_date(attributes.get("creation_date")),
        asn=asn if isinstance(asn, int) and not isinstance(asn, bool) and asn >= 0 else None,
        as_owner=_text(attributes.get("as_owner"), 255),
        country=_text(attributes.get("country"), 8),
    )


def is_young(creation_date: datetime | None, now: datetime, days: int) -> bool:
    """Registered fewer than ``days`` days before ``now`` (README, "Young domains")."""
    return creation_date is not None and days > 0 and now - creation_date < timedelta(days=days)


def _rules(attributes: dict[str, Any]) -> list[dict[str, str]]:
    rules: list[dict[str, str]] = []
    for key, source, name_key in (
        ("crowdsourced_yara_results", "yara", "rule_name"),
        ("sigma_analysis_results", "sigma", "rule_title"),
        ("crowdsourced_ids_results", "ids", "rule_msg"),
    ):
        items = attributes.get(key)
        for item in items if isinstance(items, list) else []:
            name = _text(item.get(name_key), TEXT) if isinstance(item, dict) else None
            if name:
                rules.append({"source": source, "name": name})
    return rules[:MAX_ITEMS]


def _sandboxes(verdicts: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name, verdict in verdicts.items() if isinstance(verdicts, dict) else []:
        if not isinstance(verdict, dict):
            continue
        found.append(
            {
                "sandbox": _text(name, TEXT) or "?",
                "category": _text(verdict.get("category"), 32) or "unknown",
                "malware_names": _strings(verdict.get("malware_names"))[:5],
            }
        )
    return found[:MAX_ITEMS]


def _values(items: Any) -> list[str]:
    """``[{"count", "value"}]`` lists, most counted first."""
    pairs = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    pairs.sort(key=lambda i: -i["count"] if isinstance(i.get("count"), int) else 0)
    return _strings(i.get("value") for i in pairs)


def _strings(values: Iterable[Any] | Any) -> list[str]:
    if not isinstance(values, Iterable) or isinstance(values, str | bytes | dict):
        return []
    return [text for text in (_text(v, TEXT) for v in values) if text]


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text[:limit] or None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))[:MAX_ITEMS]


def shown_context(
    context: dict[str, Any] | None, now: datetime, young_days: int
) -> dict[str, Any] | None:
    """A stored context as ``lookup --json``, the API and alerts show it: JSON values,
    dates as ISO text, and ``young`` for a domain registered less than ``young_days``
    days ago."""
    if not context:
        return None
    shown = {k: v for k, v in context.items() if v not in (None, [], {})}
    created = context.get("creation_date")
    if isinstance(created, datetime):
        shown["creation_date"] = created.isoformat() + "Z"
        shown["young"] = is_young(created, now, young_days)
    return shown


def ecs_indicator(context: dict[str, Any] | None) -> dict[str, Any]:
    """ECS ``threat.indicator`` fields from a stored context (``as.number``,
    ``as.organization.name``, ``geo.country_iso_code``, ``description``)."""
    if not context:
        return {}
    fields: dict[str, Any] = {}
    if context.get("asn") is not None:
        fields["as"] = {"number": context["asn"]}
        if context.get("as_owner"):
            fields["as"]["organization"] = {"name": context["as_owner"]}
    if context.get("country"):
        fields["geo"] = {"country_iso_code": context["country"]}
    words = [*(context.get("threat_categories") or []), *(context.get("families") or [])]
    if context.get("threat_label"):
        words.append(context["threat_label"])
    if words:
        fields["description"] = "; ".join(dict.fromkeys(words))[:200]
    return fields


def young_domain(document: Any, days: int) -> bool:
    """Whether an answered domain object was registered less than ``days`` days ago."""
    try:
        created = document["data"]["attributes"].get("creation_date")
    except (KeyError, TypeError, AttributeError):
        return False
    return is_young(provider_date(created), utcnow(), days)
