"""What the demo shows beyond engine counts (README, "Fresh analyses", "Threat context").

Read back from the demo's database after its lookups: the re-analyses and URL
submissions with the verdicts before and after, the flagged IoCs' threat context,
the relationships that link two IoCs the devices contacted, and the check that no
analysis older than the maximum age is shown as fresh (the "Time since last
analysis" panel itself, run as the page runs it) and that the attack-vector panels
hold no site category.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from vtguardian.clock import as_naive_utc, utcnow
from vtguardian.dashboards.macros import TimeRange
from vtguardian.dashboards.panels import panels
from vtguardian.intel.threat_context import is_young
from vtguardian.store.threats import contexts
from vtguardian.web.panel_data import run_panel

ALL_TYPES = {"ioc_type": ["domain", "ip", "url", "file"], "client": [], "threshold": "0.03"}
VECTOR_PANELS = ("vectors_by_label", "vectors_by_category")


@dataclass(frozen=True)
class Reanalysis:
    kind: str  # reanalyse | submit
    value: str
    status: str
    old_verdict: str | None
    new_verdict: str | None
    old_analysis_date: datetime | None
    polls: int


@dataclass(frozen=True)
class Flagged:
    value: str
    verdict: str
    threat_categories: list[str]
    families: list[str]
    threat_label: str | None
    young: bool


@dataclass
class DemoIntel:
    reanalyses: list[Reanalysis] = field(default_factory=list)
    flagged: list[Flagged] = field(default_factory=list)
    # (IoC, related IoC, relationship), both contacted by the network.
    links: list[tuple[str, str, str]] = field(default_factory=list)
    # Rows of "Time since last analysis" older than the maximum age yet shown fresh.
    stale_shown_fresh: list[str] = field(default_factory=list)
    # Labels of the attack-vector panels that are site categories (news, shopping).
    site_categories_in_vectors: list[str] = field(default_factory=list)
    vector_labels: list[str] = field(default_factory=list)
    # Requests beyond lookups: re-analyses, submissions, polls, relationships.
    background_requests: dict[str, int] = field(default_factory=dict)


def gather(engine: Engine, max_age_days: float, young_days: int) -> DemoIntel:
    now = utcnow()
    intel = DemoIntel()
    with engine.connect() as connection:
        for row in connection.execute(
            text(
                "SELECT r.kind, i.value, r.status, r.old_verdict, r.new_verdict, "
                "r.old_analysis_date, r.polls FROM analysis_requests r "
                "JOIN iocs i ON i.id = r.ioc_id WHERE r.kind IN ('reanalyse', 'submit') "
                "ORDER BY r.id"
            )
        ):
            intel.reanalyses.append(
                Reanalysis(row[0], row[1], row[2], row[3], row[4], as_naive_utc(row[5]), row[6])
            )
        flagged = connection.execute(
            text(
                "SELECT v.ioc_id, i.value, v.verdict FROM verdicts v "
                "JOIN iocs i ON i.id = v.ioc_id WHERE v.verdict IN ('malicious', 'suspicious') "
                "ORDER BY v.verdict, i.value"
            )
        ).all()
        context = contexts(connection, [row[0] for row in flagged])
        for ioc_id, value, verdict in flagged:
            item = context.get(ioc_id, {})
            intel.flagged.append(
                Flagged(
                    value,
                    verdict,
                    list(item.get("threat_categories") or []),
                    list(item.get("families") or []),
                    item.get("threat_label"),
                    is_young(item.get("creation_date"), now, young_days),
                )
            )
        intel.links = [
            (a, b, relation)
            for a, b, relation in connection.execute(
                text(
                    "SELECT a.value, b.value, r.relation FROM related_iocs r "
                    "JOIN iocs a ON a.id = r.ioc_id JOIN iocs b ON b.id = r.related_id "
                    "WHERE EXISTS (SELECT 1 FROM sightings s WHERE s.ioc_id = r.ioc_id) "
                    "AND EXISTS (SELECT 1 FROM sightings s WHERE s.ioc_id = r.related_id) "
                    "ORDER BY a.value, b.value"
                )
            )
        ]
        intel.background_requests = {
            str(outcome): int(count)
            for outcome, count in connection.execute(
                text(
                    "SELECT outcome, SUM(count) FROM lookup_stats WHERE provider = 'virustotal' "
                    "AND outcome IN ('reanalysis', 'submission', 'poll', 'relationship') "
                    "GROUP BY outcome ORDER BY outcome"
                )
            )
        }
        site = {
            str(name)
            for (names,) in connection.execute(text("SELECT site_categories FROM threat_context"))
            for name in (_json_list(names))
        }
    by_key = {p.key: p for p in panels(max_analysis_age_days=max_age_days)}
    window = TimeRange(int((now - timedelta(days=8)).timestamp()), int(now.timestamp()) + 3600)
    result = run_panel(engine, by_key["last_analysis"], window, ALL_TYPES)[0]
    columns = result["columns"]
    limit = now - timedelta(days=max_age_days)
    for row in result["rows"]:
        item = dict(zip(columns, row, strict=True))
        analysed = as_naive_utc(item["last_analysis"])
        if analysed is not None and analysed < limit and item["status"] == "fresh":
            intel.stale_shown_fresh.append(str(item["ioc"]))
    labels: set[str] = set()
    for key in VECTOR_PANELS:
        result = run_panel(engine, by_key[key], window, ALL_TYPES)[0]
        index = result["columns"].index("label" if key == "vectors_by_label" else "metric")
        labels |= {str(row[index]) for row in result["rows"]}
    intel.vector_labels = sorted(labels)
    intel.site_categories_in_vectors = sorted(labels & site)
    return intel


def _json_list(value: object) -> list[object]:
    """A JSON column read through ``text()``: a list, or its text on SQLite."""
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, list) else []
