"""The Grafana dashboard ``virus_total.json``, generated from the panel definitions.

Plain dicts rather than grafana-foundation-sdk: the SDK pins a Grafana version
and its builders cover the panel options we need less directly than the JSON
model itself, which is stable across Grafana 10-12 for these panel types.
The data source is a template variable, so the file imports into any Grafana
whatever its MySQL data source is called; nothing has a hard-coded uid.
"""

from __future__ import annotations

from typing import Any

from vtguardian.dashboards.dialect import render
from vtguardian.dashboards.panels import ROWS, Panel, panels

UID = "vtguardian-virus-total"
DATASOURCE = {"type": "mysql", "uid": "${datasource}"}
SCHEMA_VERSION = 39  # Grafana 10.4; 11 and 12 migrate it on load


def _field_config(panel: Panel) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for value, color in panel.thresholds]
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {"mode": "absolute", "steps": steps},
    }
    if panel.max_value is not None:
        defaults["min"] = 0
        defaults["max"] = panel.max_value
    overrides: list[dict[str, Any]] = []
    if panel.kind == "table":
        overrides.append(
            {
                "matcher": {"id": "byName", "options": "detection_ratio"},
                "properties": [{"id": "unit", "value": "percentunit"}],
            }
        )
        overrides.append(
            {
                "matcher": {"id": "byName", "options": "threshold"},
                "properties": [
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    {
                        "id": "mappings",
                        "value": [
                            {
                                "type": "value",
                                "options": {
                                    "above": {"color": "red", "index": 0},
                                    "below": {"color": "green", "index": 1},
                                },
                            }
                        ],
                    },
                ],
            }
        )
    if panel.kind == "timeseries" and panel.extra.get("stacking"):
        defaults["custom"] = {"stacking": {"mode": panel.extra["stacking"], "group": "A"}}
    return {"defaults": defaults, "overrides": overrides}


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {
            "refId": chr(ord("A") + n),
            "datasource": DATASOURCE,
            "editorMode": "code",
            "rawQuery": True,
            "rawSql": render(sql, "mysql"),
            "format": panel.format,
        }
        for n, sql in enumerate(panel.queries)
    ]
    options: dict[str, Any] = {}
    if panel.kind in ("stat", "gauge", "bargauge"):
        options["reduceOptions"] = {
            "calcs": ["lastNotNull"],
            "fields": "",
            "values": panel.kind == "bargauge",
        }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": _field_config(panel),
        "options": options,
    }


def _variables() -> list[dict[str, Any]]:
    def query_variable(name: str, label: str, sql: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DATASOURCE,
            "query": sql,
            "definition": sql,
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
            "hide": 0,
        }

    thresholds = ["0.03", "0.05", "0.1", "0.2"]
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "mysql",
            "current": {"selected": True, "text": "${DS_VTGUARDIAN}", "value": "${DS_VTGUARDIAN}"},
            "hide": 0,
            "refresh": 1,
        },
        {
            "name": "threshold",
            "label": "Ratio threshold",
            "type": "custom",
            "query": ",".join(thresholds),
            "current": {"selected": True, "text": "0.03", "value": "0.03"},
            "options": [
                {"selected": value == "0.03", "text": value, "value": value} for value in thresholds
            ],
            "hide": 0,
        },
        query_variable("ioc_type", "IoC type", "SELECT DISTINCT type FROM iocs ORDER BY type"),
        query_variable(
            "client", "Client", "SELECT DISTINCT ip FROM clients WHERE ip <> '' ORDER BY ip"
        ),
    ]


def dashboard(daily_budget: int = 500) -> dict[str, Any]:
    """The whole dashboard model, ready for ``json.dumps``."""
    layout: list[dict[str, Any]] = []
    panel_id = 0
    y = 0
    definitions = panels(daily_budget)
    for row in ROWS:
        panel_id += 1
        layout.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = 0
        row_height = 0
        for panel in (p for p in definitions if p.row == row):
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panel_id += 1
            layout.append(_panel_json(panel, panel_id, x, y))
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "__inputs": [
            {
                "name": "DS_VTGUARDIAN",
                "label": "vtguardian database",
                "description": "The MySQL/MariaDB data source of the vtguardian database",
                "type": "datasource",
                "pluginId": "mysql",
                "pluginName": "MySQL",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "mysql", "name": "MySQL", "version": "1.0.0"},
        ],
        "uid": UID,
        "title": "VirusTotal IoCs (vtguardian)",
        "description": "What your network contacted, what VirusTotal and your feeds say about it.",
        "tags": ["vtguardian", "virustotal", "pihole", "suricata", "security"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-7d", "to": "now"},
        "timepicker": {},
        "templating": {"list": _variables()},
        "annotations": {"list": []},
        "links": [],
        "panels": layout,
    }
