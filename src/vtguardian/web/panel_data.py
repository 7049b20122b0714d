"""Run the dashboard's panel queries on the configured database for the built-in page.

The same definitions as the Grafana dashboard, spelled for the running engine
and with Grafana's macros expanded here, so the page and Grafana show the same
numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from vtguardian.dashboards.dialect import render
from vtguardian.dashboards.macros import TimeRange, expand
from vtguardian.dashboards.panels import Panel, panels


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def run_panel(
    engine: Engine,
    panel: Panel,
    window: TimeRange,
    variables: Mapping[str, str | Sequence[str]],
) -> list[dict[str, Any]]:
    """One result set per query: ``{"columns": [...], "rows": [[...], ...]}``."""
    dialect = engine.dialect.name
    results = []
    with engine.connect() as connection:
        if dialect != "sqlite":
            connection.execute(text("SET time_zone = '+00:00'"))
        for sql in panel.queries:
            expanded = expand(render(sql, dialect), window, variables, dialect)
            result = connection.execute(text(expanded))
            results.append(
                {
                    "columns": list(result.keys()),
                    "rows": [[_plain(v) for v in row] for row in result],
                }
            )
    return results


def panel_data(
    engine: Engine,
    window: TimeRange,
    variables: Mapping[str, str | Sequence[str]],
    daily_budget: int = 500,
) -> list[dict[str, Any]]:
    """Every panel with its definition and its data, in dashboard order."""
    return [
        {
            "key": panel.key,
            "title": panel.title,
            "description": panel.description,
            "kind": panel.kind,
            "row": panel.row,
            "unit": panel.unit,
            "width": panel.width,
            "max": panel.max_value,
            "results": run_panel(engine, panel, window, variables),
        }
        for panel in panels(daily_budget)
    ]
