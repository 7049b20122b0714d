"""What the VirusTotal emulator answers: API v3 objects, seeded or generated.

Shapes follow the public API v3 documentation and real responses (see
``shared/data/virustotal``): ``{"data": {"type", "id", "links": {"self"},
"attributes": {...}}}``, integer ``*_date`` attributes, five
``last_analysis_stats`` keys for domains, IPs and URLs and eight for files.

Content is deterministic: a seed file fixes the answers for chosen IoCs and a
hash of the value drives realistic answers for everything else, so two runs
(and two worker processes) always see the same world.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

URL_ENGINES = [
    "0xSI_f33d", "ADMINUSLabs", "AICC (MONITORAPP)", "Abusix", "Acronis", "AlienVault",
    "Antiy-AVL", "Artists Against 419", "Avira", "BitDefender", "Bkav", "BlockList",
    "Blueliv", "CINS Army", "CMC Threat Intelligence", "CRDF", "Certego", "Chong Lua Dao",
    "Criminal IP", "CyRadar", "Cyan", "Cyble", "DNS8", "Dr.Web", "ESET", "ESTsecurity",
    "EmergingThreats", "Emsisoft", "Ermes", "Forcepoint ThreatSeeker", "Fortinet",
    "G-Data", "GCP Abuse Intelligence", "Google Safebrowsing", "GreenSnow", "Gridinsoft",
    "Heimdal Security", "IPsum", "Juniper Networks", "Kaspersky", "Lionic", "Lumu",
    "MalwarePatrol", "MalwareURL", "Malwared", "Mimecast", "Netcraft", "OpenPhish",
    "PREBYTES", "PhishFort", "PhishLabs", "Phishing Database", "Phishtank", "PrecisionSec",
    "Quick Heal", "Quttera", "Rising", "SCUMWARE.org", "SOCRadar", "SafeToOpen", "Sangfor",
    "Scantitan", "Seclookup", "SecureBrain", "Segasec", "Sophos", "Spam404",
    "StopForumSpam", "Sucuri SiteCheck", "ThreatHive", "Threatsourcing", "Trustwave",
    "URLQuery", "URLhaus", "Underworld", "VIPRE", "VX Vault", "Viettel Threat Intelligence",
    "ViriBack", "Webroot", "Xcitium Verdict Cloud", "Yandex Safebrowsing", "ZeroCERT",
    "alphaMountain.ai", "benkow.cc", "desenmascara.me", "malwares.com URL checker",
    "zvelo",
]  # fmt: skip
FILE_ENGINES = [
    "ALYac", "APEX", "AVG", "Acronis", "AhnLab-V3", "Alibaba", "Antiy-AVL", "Arcabit",
    "Avast", "Avira", "BitDefender", "Bkav", "CAT-QuickHeal", "CMC", "ClamAV",
    "CrowdStrike", "Cybereason", "Cylance", "Cynet", "DeepInstinct", "DrWeb", "ESET-NOD32",
    "Elastic", "Emsisoft", "F-Secure", "Fortinet", "GData", "Google", "Gridinsoft", "Ikarus",
    "Jiangmin", "K7AntiVirus", "K7GW", "Kaspersky", "Kingsoft", "Lionic", "MAX",
    "Malwarebytes", "MaxSecure", "McAfee", "MicroWorld-eScan", "Microsoft", "NANO-Antivirus",
    "Paloalto", "Panda", "Rising", "SUPERAntiSpyware", "Sangfor", "SentinelOne", "Skyhigh",
    "Sophos", "Symantec", "TACHYON", "Tencent", "Trapmine", "Trellix", "TrendMicro",
    "TrendMicro-HouseCall", "VBA32", "VIPRE", "Varist", "ViRobot", "VirIT", "Webroot",
    "Xcitium", "Yandex", "Zillya", "ZoneAlarm", "Zoner", "tehtris",
]  # fmt: skip
COLLECTIONS = {
    "domain": "domains",
    "ip": "ip_addresses",
    "url": "urls",
    "file": "files",
}
OBJECT_TYPES = {"domain": "domain", "ip": "ip_address", "url": "url", "file": "file"}
_MALICIOUS_RESULTS = ["malicious", "malware", "phishing"]
_LABELS = ["malware", "phishing", "command and control", "botnet", "cryptomining", "spam"]
_BENIGN_CATEGORIES = ["information technology", "news", "search engines", "shopping", "media"]
BASE_TIME = 1_763_000_000  # Nov 2025: analyses look recent but fixed


@dataclass
class Profile:
    """How VirusTotal sees one IoC: engine counts and the facts around them."""

    malicious: int = 0
    suspicious: int = 0
    harmless: int = 0
    undetected: int = 0
    timeout: int = 0
    found: bool = True
    labels: list[str] = field(default_factory=list)
    popularity_rank: int | None = None
    reputation: int = 0
    # None: analysed recently (within the last 20 days, stable per object), as
    # VirusTotal re-analyses what people look at; ``analysed_days_ago`` makes it stale.
    last_analysis_date: int | None = None
    analysed_days_ago: float | None = None
    # A file's malware family (popular_threat_classification, sandbox verdicts).
    family: str | None = None
    # A domain registered this many days before "now" (young domains); else years ago.
    created_days_ago: int | None = None
    # What a completed re-analysis (or a submission) finds: a seed's own fields.
    reanalysed: dict[str, Any] | None = None
    # Relationship name -> related values ("resolutions": ["185.220.101.66"]).
    related: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_seed(cls, entry: dict[str, Any]) -> Profile:
        known = {k: v for k, v in entry.items() if k in cls.__dataclass_fields__}
        if entry.get("unknown"):
            known["found"] = False
        return cls(**known)


def seed_key(kind: str, value: str) -> tuple[str, str]:
    return kind, value.lower() if kind != "url" else value


def load_seed_file(path: Path | None) -> dict[tuple[str, str], Profile]:
    """Seed file: JSON list of ``{"type", "value", "malicious", ..., "unknown"}``."""
    if path is None:
        return {}
    entries = json.loads(Path(path).read_text())
    return {seed_key(e["type"], e["value"]): Profile.from_seed(e) for e in entries}


def generated_profile(kind: str, value: str) -> Profile:
    """A realistic answer for an IoC nobody seeded, stable for the same value.

    Most of what a household sees is clean; a few per cent have a lone
    false-positive engine (the reason verdicts need several engines), about one
    in twenty is unknown to VirusTotal, and one in two hundred is really bad.
    """
    rng = random.Random(hashlib.sha256(f"{kind}:{value}".encode()).digest())
    engines = len(FILE_ENGINES if kind == "file" else URL_ENGINES)
    roll = rng.random()
    rng.randrange(0, 60 * 86400)  # once the analysis date: the draws after it stay as they were
    if roll < 0.05:
        return Profile(found=False)
    if roll < 0.055:
        malicious = rng.randrange(5, 25)
        label = rng.choice(_LABELS)
        rest = engines - malicious
        return Profile(
            malicious=malicious,
            suspicious=rng.randrange(0, 3),
            harmless=rest // 2,
            undetected=rest - rest // 2 - 2,
            labels=[label],
            reputation=-rng.randrange(5, 80),
        )
    lone = 1 if roll < 0.09 else 0
    harmless = rng.randrange(engines // 2, engines - 5)
    return Profile(
        malicious=lone,
        suspicious=1 if 0.09 <= roll < 0.1 else 0,
        harmless=harmless,
        undetected=engines - harmless - lone - 1,
        labels=[rng.choice(_BENIGN_CATEGORIES)],
        popularity_rank=rng.randrange(1, 1_000_000) if rng.random() < 0.3 else None,
        reputation=rng.randrange(0, 20),
    )


def _engine_results(kind: str, profile: Profile, rng: random.Random) -> dict[str, Any]:
    names = FILE_ENGINES if kind == "file" else URL_ENGINES
    method = "blacklist"
    categories = (
        ["malicious"] * profile.malicious
        + ["suspicious"] * profile.suspicious
        + ["harmless"] * profile.harmless
        + ["undetected"] * profile.undetected
        + ["timeout"] * profile.timeout
    )
    order = list(names)
    rng.shuffle(order)
    results = {}
    for name, category in zip(order, categories, strict=False):
        result = {
            "malicious": _result_word(profile, rng.choice(_MALICIOUS_RESULTS)),
            "suspicious": "suspicious",
            "harmless": "clean",
            "undetected": "unrated",
            "timeout": None,
        }[category]
        if kind == "file":
            category = "undetected" if category == "harmless" else category
            family = profile.labels[0].title().replace(" ", "") if profile.labels else "Generic"
            result = f"Trojan.{family}.Gen" if category == "malicious" else None
            results[name] = {
                "category": category,
                "engine_name": name,
                "engine_version": "1.0",
                "engine_update": "20251112",
                "method": method,
                "result": result,
            }
        else:
            results[name] = {
                "category": category,
                "engine_name": name,
                "method": method,
                "result": result,
            }
    return results


def build_object(
    kind: str, object_id: str, profile: Profile, host: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One API v3 object for ``kind`` with id ``object_id``."""
    rng = random.Random(f"{kind}:{object_id}")
    stats: dict[str, int] = {
        "harmless": profile.harmless,
        "malicious": profile.malicious,
        "suspicious": profile.suspicious,
        "undetected": profile.undetected,
        "timeout": profile.timeout,
    }
    if kind == "file":
        # Files have no "harmless" engines in practice, and three more keys.
        stats = {
            "harmless": 0,
            "type-unsupported": rng.randrange(0, 8),
            "suspicious": profile.suspicious,
            "confirmed-timeout": 0,
            "timeout": profile.timeout,
            "failure": 0,
            "malicious": profile.malicious,
            "undetected": profile.undetected + profile.harmless,
        }
    date = analysis_date(profile, f"{kind}:{object_id}")
    attributes: dict[str, Any] = {
        "last_analysis_date": date,
        "last_analysis_stats": stats,
        "last_analysis_results": _engine_results(kind, profile, rng),
        "reputation": profile.reputation,
        "total_votes": {
            "harmless": rng.randrange(0, 5),
            "malicious": rng.randrange(0, 5) if profile.malicious else 0,
        },
        "tags": list(profile.labels[:1]) if profile.malicious else [],
        "last_modification_date": date + 3600,
    }
    attributes.update(threat_attributes(kind, profile, rng))
    if kind in ("domain", "url"):
        attributes["categories"] = {
            "Forcepoint ThreatSeeker": profile.labels[0] if profile.labels else "uncategorized",
            "Sophos": profile.labels[0] if profile.labels else "uncategorized",
        }
    if kind == "domain":
        attributes["last_dns_records"] = [
            {"type": "A", "ttl": 300, "value": f"198.51.100.{rng.randrange(1, 255)}"}
        ]
        attributes["last_dns_records_date"] = date
        attributes["popularity_ranks"] = (
            {"Cisco Umbrella": {"rank": profile.popularity_rank, "timestamp": BASE_TIME}}
            if profile.popularity_rank
            else {}
        )
        attributes["creation_date"] = (
            int(time.time()) - profile.created_days_ago * 86400
            if profile.created_days_ago is not None
            else BASE_TIME - rng.randrange(30, 5000) * 86400
        )
        attributes["registrar"] = "Example Registrar, Inc."
    elif kind == "ip":
        attributes.update(
            asn=rng.randrange(1000, 400000),
            as_owner=rng.choice(["EXAMPLE-NET", "HOSTING-CO", "CLOUD-PROVIDER"]),
            country=rng.choice(["US", "DE", "NL", "FR", "RU", "CN"]),
            continent="EU",
            network=f"{object_id.rsplit('.', 1)[0]}.0/24" if "." in object_id else object_id,
            regional_internet_registry="RIPE NCC",
        )
    elif kind == "url":
        attributes.update(
            last_final_url=(extra or {}).get("url"),
            url=(extra or {}).get("url"),
            times_submitted=rng.randrange(1, 50),
            first_submission_date=date - 86400 * rng.randrange(1, 300),
            threat_names=list(profile.labels) if profile.malicious else [],
        )
    elif kind == "file":
        digest = hashlib.sha256(object_id.encode()).digest()
        attributes.update(
            sha256=object_id,
            md5=(extra or {}).get("md5") or hashlib.md5(digest).hexdigest(),
            sha1=(extra or {}).get("sha1") or hashlib.sha1(digest).hexdigest(),
            size=rng.randrange(1_000, 5_000_000),
            type_tag=rng.choice(["peexe", "pdf", "zip", "elf", "doc"]),
            type_description="Win32 EXE",
            names=[f"invoice_{rng.randrange(100, 999)}.exe"],
            meaningful_name=f"invoice_{rng.randrange(100, 999)}.exe",
            crowdsourced_yara_results=(
                [
                    {
                        "rule_name": "Suspicious_Packer",
                        "ruleset_name": "packers",
                        "source": "https://github.com/Yara-Rules/rules",
                        "author": "community",
                    }
                ]
                if profile.malicious
                else []
            ),
            first_submission_date=date - 86400,
        )
    collection = COLLECTIONS[kind]
    return {
        "data": {
            "type": OBJECT_TYPES[kind],
            "id": object_id,
            "links": {"self": f"{host}/api/v3/{collection}/{object_id}"},
            "attributes": attributes,
        }
    }


def threat_attributes(kind: str, profile: Profile, rng: random.Random) -> dict[str, Any]:
    """A flagged file's context beyond counts, in the shapes of the API v3 file object
    (https://docs.virustotal.com/reference/files: ``popular_threat_classification``
    with ``suggested_threat_label``, ``popular_threat_category`` and
    ``popular_threat_name`` as ``[{"count", "value"}]``; ``sandbox_verdicts`` keyed by
    sandbox with ``category``, ``confidence``, ``malware_classification`` and
    ``malware_names``; ``sigma_analysis_results`` and ``crowdsourced_ids_results``)."""
    if kind != "file" or not profile.malicious:
        return {}
    family = profile.family or (profile.labels[0] if profile.labels else "generic")
    category = "trojan"
    return {
        "popular_threat_classification": {
            "suggested_threat_label": f"{category}.{family.lower()}",
            "popular_threat_category": [{"count": profile.malicious, "value": category}],
            "popular_threat_name": [{"count": max(1, profile.malicious // 2), "value": family}],
        },
        "sandbox_verdicts": {
            "Zenbox": {
                "category": "malicious",
                "confidence": 80 + rng.randrange(0, 20),
                "sandbox_name": "Zenbox",
                "malware_classification": ["MALWARE", "TROJAN"],
                "malware_names": [family],
            }
        },
        "sigma_analysis_results": [
            {
                "rule_title": "Suspicious Download From File-Sharing Website",
                "rule_level": "high",
                "rule_source": "Sigma Integrated Rule Set (GitHub)",
                "rule_id": "a1b2c3",
            }
        ],
        "crowdsourced_ids_results": [
            {
                "rule_msg": f"ET MALWARE {family} CnC Checkin",
                "alert_severity": "high",
                "rule_category": "A Network Trojan was detected",
                "rule_source": "Proofpoint Emerging Threats Open",
            }
        ],
    }


def analysis_date(profile: Profile, seed: str) -> int:
    """When VirusTotal last analysed the object (Unix time)."""
    if profile.last_analysis_date is not None:
        return profile.last_analysis_date
    now = int(time.time())
    if profile.analysed_days_ago is not None:
        return now - int(profile.analysed_days_ago * 86400)
    return now - random.Random(f"date:{seed}").randrange(3600, 20 * 86400)


def _result_word(profile: Profile, drawn: str) -> str:
    """An engine's result for a malicious object: "malicious", or the word of its kind
    of threat (URL engines say "phishing", "malware" or "spam", as in real reports)."""
    if drawn == "malicious" or not profile.labels:
        return drawn
    label = profile.labels[0].lower()
    for word in ("phishing", "spam"):
        if word in label:
            return word
    return "malware"
