"""The panels of the network's own passive DNS: C2 infrastructure and DNS bypass.

Defined like every panel (:mod:`.panels`), so Grafana's ``virus_total.json`` and
the built-in page both show them. A CNAME chain is followed in SQL with a
recursive common table expression, which MariaDB (10.2 on) and SQLite both run.
"""

from __future__ import annotations

from vtguardian.dashboards.panels import CLIENTS, Panel

# Each flagged domain, and every name and address its chain reached in the range.
_CHAIN = (
    "WITH RECURSIVE chain (domain_id, node_id, depth) AS ("
    "SELECT v.ioc_id, v.ioc_id, 0 FROM verdicts v JOIN iocs f ON f.id = v.ioc_id "
    "WHERE v.verdict IN ('malicious', 'suspicious') AND f.type = 'domain' "
    "UNION "
    "SELECT chain.domain_id, r.answer_id, chain.depth + 1 FROM chain "
    "JOIN resolutions r ON r.name_id = chain.node_id "
    "WHERE $__timeFilter(r.hour) AND chain.depth < 8) "
)
C2_INFRASTRUCTURE = (
    _CHAIN + "SELECT f.value AS ioc, v.verdict AS verdict, a.value AS address, "
    "(SELECT GROUP_CONCAT(DISTINCT c.ip) FROM resolutions r2 "
    "JOIN clients c ON c.id = r2.client_id WHERE r2.answer_id = a.id "
    "AND $__timeFilter(r2.hour) AND r2.name_id IN "
    "(SELECT n.node_id FROM chain n WHERE n.domain_id = x.domain_id)) AS resolved_by, "
    "(SELECT GROUP_CONCAT(DISTINCT c.ip) FROM connections k "
    "JOIN clients c ON c.id = k.client_id WHERE k.address = a.value "
    "AND $__timeFilter(k.hour)) AS connected_by "
    "FROM (SELECT DISTINCT domain_id, node_id FROM chain) x "
    "JOIN iocs a ON a.id = x.node_id JOIN iocs f ON f.id = x.domain_id "
    "JOIN verdicts v ON v.ioc_id = f.id WHERE a.type = 'ip' "
    "ORDER BY v.verdict, f.value, a.value LIMIT 100"
)
DNS_BYPASS = (
    "SELECT b.last_seen AS time, c.ip AS client, c.name AS name, b.kind AS kind, "
    "b.address AS address, b.domain AS ioc FROM dns_bypasses b "
    f"JOIN clients c ON c.id = b.client_id WHERE $__timeFilter(b.last_seen) AND {CLIENTS} "
    "ORDER BY b.last_seen DESC LIMIT 100"
)


def passive_dns_panels() -> list[Panel]:
    return [
        Panel(
            "c2_infrastructure",
            "C2 infrastructure",
            "Malicious and suspicious domains with the addresses they resolved to on your "
            "network (through CNAMEs), the devices the local DNS gave them to, and the "
            "devices that connected to those addresses.",
            "table",
            C2_INFRASTRUCTURE,
            "Threat hunting",
            width=12,
            height=8,
        ),
        Panel(
            "dns_bypass",
            "DNS bypass",
            "dns-bypass: a device reached an address of a flagged domain without asking "
            "the local DNS just before. doh: a device Pi-hole serves also talks to a public "
            "DNS-over-HTTPS resolver.",
            "table",
            DNS_BYPASS,
            "Threat hunting",
            width=12,
            height=8,
        ),
    ]
