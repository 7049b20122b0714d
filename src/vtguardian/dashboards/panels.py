"""Every dashboard panel, defined once: Grafana and the built-in page are drawn from here.

Queries are SQL with Grafana's macros (``$__timeFilter``, ``$__timeGroupAlias``),
the dashboard variables ``$threshold``, ``$ioc_type`` and ``$client``, and a few
``{...}`` placeholders for what MySQL and SQLite spell differently (``{now}``,
``{days_ago(N)}``, ``{hours_since(col)}`` ...): :mod:`.dialect` writes them out.
Times are stored in UTC; Grafana shows them in the viewer's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["stat", "gauge", "table", "timeseries", "barchart", "piechart", "bargauge"]

# Variables, as Grafana's MySQL data source substitutes them.
TYPES = "i.type IN ($ioc_type)"
CLIENTS = "c.ip IN ($client)"


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    description: str
    kind: Kind
    sql: str | tuple[str, ...]
    row: str
    unit: str = "none"
    width: int = 6
    height: int = 5
    # Grafana "table" or "time_series" result format.
    format: Literal["table", "time_series"] = "table"
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),)
    max_value: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def queries(self) -> tuple[str, ...]:
        return (self.sql,) if isinstance(self.sql, str) else self.sql


ROWS = (
    "Overview",
    "Domain & IP reputation",
    "Scan statistics",
    "Last analysis status",
    "Attack vectors",
    "Correlation",
    "Threat hunting",
)

# Sightings in the time range, one row per IoC, client bit word and day or hour:
# the whole days inside the range from the daily rollup, the hours at either end
# from the hourly rows. The day the range ends in also comes from the rollup when
# nothing was seen after the range's end on it (a range ending now). Exact for any
# range, and a month is ~30 rows per IoC.
SEEN_LATER = (
    "EXISTS (SELECT 1 FROM sightings z WHERE z.hour > $__timeTo() AND z.hour < {full_days_to_next})"
)
# The day the range starts in also comes whole from the rollup when retention has
# pruned its hourly rows (its hours before the range are then counted too: a
# rollup cannot be split, and nothing of the range is lost).
HOURLY_PRUNED = (
    "NOT EXISTS (SELECT 1 FROM sightings z WHERE z.hour >= {day_of_from} "
    "AND z.hour < {full_days_from})"
)
DAYS_IN_RANGE = (
    f"(d.day >= {{full_days_from}} OR (d.day = {{day_of_from}} AND {HOURLY_PRUNED})) "
    "AND (d.day < {full_days_to} "
    f"OR (d.day = {{full_days_to}} AND NOT {SEEN_LATER}))"
)
HOURS_AT_EDGES = (
    "$__timeFilter(s.hour) AND (s.hour < {full_days_from} "
    f"OR (s.hour >= {{full_days_to}} AND {SEEN_LATER}))"
)
SEEN_ROWS = (
    "SELECT d.ioc_id, d.client_word AS word, d.clients_mask AS mask, d.hits, d.last_seen "
    f"FROM ioc_days d WHERE {DAYS_IN_RANGE} "
    "UNION ALL "
    "SELECT s.ioc_id, {client_word(s.client_id)}, {client_bit(s.client_id)}, s.hits, "
    f"s.last_seen FROM sightings s WHERE {HOURS_AT_EDGES}"
)
SEEN_IDS = (
    f"SELECT d.ioc_id FROM ioc_days d WHERE {DAYS_IN_RANGE} "
    f"UNION SELECT s.ioc_id FROM sightings s WHERE {HOURS_AT_EDGES}"
)


def seen_in_range(ioc_id: str) -> str:
    """Whether the IoC ``ioc_id`` was seen in the time range: from the rollups and the
    edge hours like SEEN_IDS, so it holds beyond the hourly retention, but asked per
    IoC (two index lookups), for panels that start from a few verdicts."""
    return (
        f"(EXISTS (SELECT 1 FROM ioc_days d WHERE d.ioc_id = {ioc_id} AND {DAYS_IN_RANGE}) "
        f"OR EXISTS (SELECT 1 FROM sightings s WHERE s.ioc_id = {ioc_id} "
        f"AND {HOURS_AT_EDGES}))"
    )


# The verdict an IoC had at a sighting (README, "Attack vectors"): the latest change
# up to the hour's last sighting, or, before its first verdict, that first verdict
# (the first answer describes it as it was then). History ids grow with time.
FLAGGED_EVER = (
    "s.ioc_id IN (SELECT fh.ioc_id FROM verdict_history fh "
    "WHERE fh.new_verdict IN ('malicious', 'suspicious'))"
)
VERDICT_THEN = (
    "h.id = COALESCE((SELECT MAX(x.id) FROM verdict_history x WHERE x.ioc_id = s.ioc_id "
    "AND x.changed_at <= s.last_seen), "
    "(SELECT MIN(y.id) FROM verdict_history y WHERE y.ioc_id = s.ioc_id))"
)
FLAGGED_JOIN = "JOIN verdict_history h ON h.ioc_id = s.ioc_id"
FLAGGED_WHERE = (
    f"{FLAGGED_EVER} AND {VERDICT_THEN} AND h.new_verdict IN ('malicious', 'suspicious')"
)
FLAGGED_THEN = f"{FLAGGED_JOIN} WHERE {FLAGGED_WHERE}"
THREAT_JOIN = "JOIN report_threats t ON t.report_id = h.report_id AND t.kind = 'category'"
# The latest re-analysis or submission of the IoC, if any.
LAST_REQUEST = (
    "(SELECT ar.status FROM analysis_requests ar WHERE ar.ioc_id = v.ioc_id "
    "AND ar.kind IN ('reanalyse', 'submit') ORDER BY ar.id DESC LIMIT 1)"
)


def panels(daily_budget: int = 500, max_analysis_age_days: float = 30.0) -> list[Panel]:
    """The dashboard, row by row (``daily_budget`` scales the quota gauge;
    ``max_analysis_age_days`` is where an analysis becomes stale)."""
    max_age = max(1, round(max_analysis_age_days))
    return [
        Panel(
            "iocs_observed",
            "IoCs observed",
            "Distinct indicators your devices contacted in the time range.",
            "stat",
            f"SELECT COUNT(*) AS value FROM ({SEEN_IDS}) seen "
            f"JOIN iocs i ON i.id = seen.ioc_id WHERE {TYPES}",
            "Overview",
            width=3,
        ),
        Panel(
            "iocs_checked",
            "IoCs checked",
            "Indicators with an answer from a provider, checked in the time range.",
            "stat",
            "SELECT COUNT(*) AS value FROM verdicts v JOIN iocs i ON i.id = v.ioc_id "
            f"WHERE $__timeFilter(v.checked_at) AND {TYPES}",
            "Overview",
            width=3,
        ),
        Panel(
            "malicious",
            "Malicious",
            "Contacted indicators whose verdict is malicious.",
            "stat",
            "SELECT COUNT(*) AS value FROM verdicts v JOIN iocs i ON i.id = v.ioc_id "
            f"WHERE v.verdict = 'malicious' AND {TYPES} AND {seen_in_range('v.ioc_id')}",
            "Overview",
            width=3,
            thresholds=((None, "green"), (1, "red")),
        ),
        Panel(
            "suspicious",
            "Suspicious",
            "Contacted indicators held for review: flagged, but below the malicious bar.",
            "stat",
            "SELECT COUNT(*) AS value FROM verdicts v JOIN iocs i ON i.id = v.ioc_id "
            f"WHERE v.verdict = 'suspicious' AND {TYPES} AND {seen_in_range('v.ioc_id')}",
            "Overview",
            width=3,
            thresholds=((None, "green"), (1, "orange")),
        ),
        Panel(
            "requests_today",
            "VirusTotal requests today",
            "Requests counted against today's (UTC) budget, 404s included.",
            "gauge",
            "SELECT COALESCE(SUM(used), 0) AS value FROM quota_usage "
            "WHERE provider = 'virustotal' AND `window` = 'day' AND window_start = {today}",
            "Overview",
            width=3,
            max_value=daily_budget,
            thresholds=((None, "green"), (daily_budget * 0.8, "orange"), (daily_budget, "red")),
        ),
        Panel(
            "cache_hit_rate",
            "Cache hit rate",
            "Lookups answered from the cache, without a request.",
            "stat",
            # 1.0 *: a fraction on SQLite too, where integer / integer is an integer.
            "SELECT 1.0 * SUM(CASE WHEN outcome = 'cache_hit' THEN count ELSE 0 END) / "
            "NULLIF(SUM(CASE WHEN outcome IN ('cache_hit', 'cache_miss') THEN count ELSE 0 END), 0)"
            " AS value FROM lookup_stats WHERE $__timeFilter(hour)",
            "Overview",
            unit="percentunit",
            width=3,
        ),
        Panel(
            "queue_length",
            "Lookup queue",
            "Indicators waiting for a lookup.",
            "stat",
            "SELECT COUNT(*) AS value FROM lookup_queue",
            "Overview",
            width=3,
        ),
        Panel(
            "active_blocks",
            "Active blocks",
            "Indicators blocked right now at Pi-hole or the firewall.",
            "stat",
            "SELECT COUNT(*) AS value FROM actions WHERE action = 'block' AND active = 1",
            "Overview",
            width=3,
        ),
        Panel(
            "reputation",
            "Domains and IPs seen",
            "Detection ratio = malicious / (malicious + suspicious + harmless + undetected). "
            "'above' marks a ratio at or over the $threshold variable.",
            "table",
            "SELECT i.value AS ioc, i.type AS type, v.verdict AS verdict, "
            "v.ratio AS detection_ratio, "
            "CASE WHEN v.ratio >= $threshold THEN 'above' ELSE 'below' END AS threshold, "
            "v.malicious AS malicious, v.total AS engines, "
            "agg.clients AS clients, agg.hits AS hits, agg.last_seen AS last_seen "
            "FROM (SELECT w.ioc_id, SUM(BIT_COUNT(w.mask)) AS clients, SUM(w.hits) AS hits, "
            "MAX(w.last_seen) AS last_seen FROM (SELECT u.ioc_id, u.word, "
            "BIT_OR(u.mask) AS mask, SUM(u.hits) AS hits, MAX(u.last_seen) AS last_seen "
            f"FROM ({SEEN_ROWS}) u GROUP BY u.ioc_id, u.word) w GROUP BY w.ioc_id) agg "
            "JOIN iocs i ON i.id = agg.ioc_id LEFT JOIN verdicts v ON v.ioc_id = agg.ioc_id "
            f"WHERE i.type IN ('domain', 'ip') AND {TYPES} "
            "ORDER BY detection_ratio DESC, hits DESC, ioc LIMIT 500",
            "Domain & IP reputation",
            width=16,
            height=10,
        ),
        Panel(
            "top_ratio",
            "Top 10 by detection ratio",
            "The contacted domains and IPs the most engines agree on.",
            "bargauge",
            "SELECT i.value AS ioc, v.ratio AS detection_ratio "
            "FROM verdicts v JOIN iocs i ON i.id = v.ioc_id "
            f"WHERE i.type IN ('domain', 'ip') AND {TYPES} AND v.ratio > 0 "
            f"AND {seen_in_range('v.ioc_id')} ORDER BY detection_ratio DESC, ioc LIMIT 10",
            "Domain & IP reputation",
            unit="percentunit",
            width=8,
            height=10,
        ),
        Panel(
            "requests_by_outcome",
            "VirusTotal requests by outcome",
            "Found, not found (404, still counted), errors and quota refusals; re-analyses, "
            "URL submissions, their polls and relationship requests; cache hits beside.",
            "timeseries",
            "SELECT $__timeGroupAlias(hour, $__interval), outcome AS metric, "
            "SUM(count) AS value FROM lookup_stats WHERE $__timeFilter(hour) "
            "AND ((provider = 'virustotal' AND outcome IN ('found', 'not_found', 'error', "
            "'quota', 'reanalysis', 'submission', 'poll', 'relationship')) "
            "OR outcome = 'cache_hit') GROUP BY 1, 2 ORDER BY 1",
            "Scan statistics",
            format="time_series",
            width=16,
            height=8,
        ),
        Panel(
            "freshness",
            "How old the analyses are",
            "Age of VirusTotal's last analysis for every answered indicator.",
            "piechart",
            "SELECT CASE WHEN analysis_date >= {days_ago(1)} THEN '< 1 day' "
            "WHEN analysis_date >= {days_ago(7)} THEN '1-7 days' "
            "WHEN analysis_date >= {days_ago(30)} THEN '7-30 days' "
            "ELSE '> 30 days' END AS age, COUNT(*) AS iocs FROM verdicts "
            "WHERE analysis_date IS NOT NULL GROUP BY age ORDER BY age",
            "Scan statistics",
            width=8,
            height=8,
        ),
        Panel(
            "last_analysis",
            "Time since last analysis",
            "Hours since VirusTotal analysed each indicator, and since we fetched it. Status: "
            f"VirusTotal's analysis, 'stale' beyond {max_age} days, 're-analysis requested' "
            "while one runs, 're-analysed' once done; cache: whether our copy still answers.",
            "table",
            "SELECT i.value AS ioc, i.type AS type, v.verdict AS verdict, "
            "v.analysis_date AS last_analysis, "
            "{hours_since(v.analysis_date)} AS hours_since_analysis, "
            "v.checked_at AS fetched, "
            "{hours_since(v.checked_at)} AS hours_since_fetch, "
            f"CASE WHEN {LAST_REQUEST} IN ('wanted', 'requested', 'completed') "
            "THEN 're-analysis requested' "
            "WHEN v.analysis_date IS NULL THEN 'no analysis' "
            f"WHEN v.analysis_date < {{days_ago({max_age})}} THEN 'stale' "
            f"WHEN {LAST_REQUEST} = 'done' THEN 're-analysed' "
            "ELSE 'fresh' END AS status, "
            "CASE WHEN v.expires_at IS NULL OR v.expires_at < {now} THEN 'expired' "
            "ELSE 'fresh' END AS cache "
            f"FROM verdicts v JOIN iocs i ON i.id = v.ioc_id WHERE {TYPES} "
            "AND $__timeFilter(i.last_seen) ORDER BY hours_since_analysis DESC LIMIT 500",
            "Last analysis status",
            width=24,
            height=8,
        ),
        Panel(
            "vectors_by_type",
            "Malicious and suspicious IoCs by type",
            "Distinct flagged indicators contacted per interval: domains, IPs (C2), URLs, files, "
            "each with the verdict it had then (a verdict changed today leaves last week alone).",
            "timeseries",
            "SELECT $__timeGroupAlias(s.hour, $__interval), i.type AS metric, "
            "COUNT(DISTINCT s.ioc_id) AS value FROM sightings s JOIN iocs i ON i.id = s.ioc_id "
            f"{FLAGGED_THEN} AND $__timeFilter(s.hour) AND {TYPES} GROUP BY 1, 2 ORDER BY 1",
            "Attack vectors",
            format="time_series",
            width=12,
            height=8,
            extra={"stacking": "normal"},
        ),
        Panel(
            "vectors_by_label",
            "Threat categories",
            "Flagged indicators contacted in the time range by threat category (phishing, "
            "malware, command-and-control ...), as their report said when they were flagged. "
            "Vendors' site categories (news, shopping) are never threats.",
            "barchart",
            "SELECT t.name AS label, COUNT(DISTINCT s.ioc_id) AS iocs FROM sightings s "
            f"JOIN iocs i ON i.id = s.ioc_id {FLAGGED_JOIN} {THREAT_JOIN} "
            f"WHERE {FLAGGED_WHERE} AND $__timeFilter(s.hour) AND {TYPES} "
            "GROUP BY t.name ORDER BY iocs DESC, label LIMIT 15",
            "Attack vectors",
            width=12,
            height=8,
        ),
        Panel(
            "vectors_by_category",
            "Flagged IoCs by threat category",
            "Distinct flagged indicators contacted per interval, by threat category, each "
            "with the verdict and report it had then.",
            "timeseries",
            "SELECT $__timeGroupAlias(s.hour, $__interval), t.name AS metric, "
            "COUNT(DISTINCT s.ioc_id) AS value FROM sightings s "
            f"JOIN iocs i ON i.id = s.ioc_id {FLAGGED_JOIN} {THREAT_JOIN} "
            f"WHERE {FLAGGED_WHERE} AND $__timeFilter(s.hour) AND {TYPES} "
            "GROUP BY 1, 2 ORDER BY 1",
            "Attack vectors",
            format="time_series",
            width=12,
            height=8,
            extra={"stacking": "normal"},
        ),
        Panel(
            "threat_families",
            "Malware families and threat labels",
            "Families (VirusTotal's popular threat names, sandbox verdicts) and suggested "
            "threat labels of the indicators contacted in the time range.",
            "table",
            "SELECT t.kind AS kind, t.name AS name, COUNT(DISTINCT t.ioc_id) AS iocs, "
            "MAX(i.last_seen) AS last_seen FROM verdicts v "
            "JOIN report_threats t ON t.report_id = v.report_id "
            "JOIN iocs i ON i.id = v.ioc_id WHERE t.kind IN ('family', 'label') "
            f"AND $__timeFilter(i.last_seen) AND {TYPES} "
            "GROUP BY t.kind, t.name ORDER BY iocs DESC, name LIMIT 50",
            "Attack vectors",
            width=12,
            height=8,
        ),
        Panel(
            "pihole_volume",
            "Pi-hole queries: allowed, blocked, malicious",
            "DNS queries per interval from Pi-hole/dnsmasq, and those to malicious indicators.",
            "timeseries",
            "SELECT $__timeGroupAlias(t.hour, $__interval), SUM(t.allowed) AS allowed, "
            "SUM(t.blocked) AS blocked, SUM(t.malicious) AS malicious FROM ("
            "SELECT h.hour AS hour, h.hits - h.blocked AS allowed, h.blocked AS blocked, "
            "0 AS malicious FROM source_hours h "
            "WHERE $__timeFilter(h.hour) AND h.source IN ('pihole', 'dnsmasq') "
            "UNION ALL SELECT s.hour, 0, 0, s.hits FROM verdicts v "
            "JOIN sightings s ON s.ioc_id = v.ioc_id WHERE v.verdict = 'malicious' "
            "AND $__timeFilter(s.hour) AND s.source IN ('pihole', 'dnsmasq')) t "
            "GROUP BY 1 ORDER BY 1",
            "Correlation",
            format="time_series",
            width=12,
            height=8,
        ),
        Panel(
            "ids_vs_confirmed",
            "Suricata alerts and VirusTotal-confirmed IoCs",
            "IDS alerts per interval beside indicators that became malicious.",
            "timeseries",
            (
                "SELECT $__timeGroupAlias(ts, $__interval), COUNT(*) AS suricata_alerts "
                "FROM ids_alerts WHERE $__timeFilter(ts) GROUP BY 1 ORDER BY 1",
                "SELECT $__timeGroupAlias(changed_at, $__interval), COUNT(*) AS confirmed "
                "FROM verdict_history WHERE $__timeFilter(changed_at) "
                "AND new_verdict = 'malicious' GROUP BY 1 ORDER BY 1",
            ),
            "Correlation",
            format="time_series",
            width=12,
            height=8,
        ),
        Panel(
            "signature_verdict",
            "Suricata signature x verdict",
            "Which signatures fired on indicators VirusTotal confirms, and which on clean ones.",
            "table",
            "SELECT a.signature AS signature, COALESCE(v.verdict, 'not checked') AS verdict, "
            "COUNT(*) AS alerts, COUNT(DISTINCT a.ioc_id) AS iocs FROM ids_alerts a "
            "LEFT JOIN verdicts v ON v.ioc_id = a.ioc_id WHERE $__timeFilter(a.ts) "
            "GROUP BY a.signature, verdict ORDER BY alerts DESC, signature LIMIT 100",
            "Correlation",
            width=24,
            height=8,
        ),
        Panel(
            "exposed_clients",
            "Devices that contacted malicious or suspicious IoCs",
            "Your devices, by how many flagged indicators they talked to.",
            "table",
            "SELECT c.ip AS client, c.name AS name, COUNT(DISTINCT s.ioc_id) AS iocs, "
            "SUM(s.hits) AS hits, MAX(s.last_seen) AS last_seen FROM sightings s "
            "JOIN clients c ON c.id = s.client_id JOIN iocs i ON i.id = s.ioc_id "
            "JOIN verdicts v ON v.ioc_id = s.ioc_id WHERE $__timeFilter(s.hour) "
            f"AND v.verdict IN ('malicious', 'suspicious') AND {CLIENTS} AND {TYPES} "
            "GROUP BY c.ip, c.name ORDER BY iocs DESC, hits DESC",
            "Threat hunting",
            width=8,
            height=8,
        ),
        Panel(
            "recent_alerts",
            "Recent alerts",
            "IoCs your devices contacted that turned malicious or suspicious.",
            "table",
            "SELECT a.created_at AS time, i.value AS ioc, a.verdict AS verdict, "
            "a.ratio AS detection_ratio FROM alerts a JOIN iocs i ON i.id = a.ioc_id "
            f"WHERE $__timeFilter(a.created_at) AND {TYPES} ORDER BY a.created_at DESC LIMIT 50",
            "Threat hunting",
            width=8,
            height=8,
        ),
        Panel(
            "recent_blocks",
            "Recent block actions",
            "Blocks and unblocks at Pi-hole or the firewall, with the reason.",
            "table",
            "SELECT x.created_at AS time, i.value AS ioc, x.target AS target, "
            "x.action AS action, x.reason AS reason, x.dry_run AS dry_run FROM actions x "
            "JOIN iocs i ON i.id = x.ioc_id WHERE $__timeFilter(x.created_at) "
            "ORDER BY x.created_at DESC LIMIT 50",
            "Threat hunting",
            width=8,
            height=8,
        ),
        *_passive_dns_panels(),
    ]


def _passive_dns_panels() -> list[Panel]:
    """The C2 infrastructure and DNS bypass panels (:mod:`.passive_dns`)."""
    from vtguardian.dashboards.passive_dns import passive_dns_panels

    return passive_dns_panels()
