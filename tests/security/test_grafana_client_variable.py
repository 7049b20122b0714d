"""A device string from a log cannot break a Grafana panel (issue #24, point 13).

Grafana's MySQL data source quotes each value of a multi-value variable by
doubling ``'`` but not ``\\``: a stored client ``\\' OR 1=1 -- `` turned the
"Devices that contacted ..." panel into a SQL error with "All" selected. Only
addresses are stored as devices now, so every value Grafana offers is inert.
"""

from __future__ import annotations

import os
from datetime import datetime

from sqlalchemy import text

from sources_helpers import ingest
from vtguardian.clock import utcnow
from vtguardian.dashboards.dialect import render
from vtguardian.dashboards.grafana import dashboard
from vtguardian.dashboards.macros import TimeRange, expand
from vtguardian.dashboards.panels import panels

HOSTILE = "\\' OR 1=1 -- "


def _grafana_quote(value: str) -> str:
    """What Grafana's MySQL data source does to each value of a variable."""
    return "'" + value.replace("'", "''") + "'"


def test_devices_panel_runs_with_every_client_grafana_offers(engine, tmp_path):
    if engine.dialect.name == "sqlite":
        return  # Grafana reads MariaDB; the SQLite half of the fixture has nothing to check
    log = tmp_path / "pihole.log"
    log.write_text(
        f"Dec  4 10:00:01 dnsmasq[612]: query[A] evil.example.com from {HOSTILE}\n"
        "Dec  4 10:00:02 dnsmasq[612]: query[A] evil.example.com from ::ffff:192.168.1.5\n"
        "Dec  4 10:00:03 dnsmasq[612]: query[A] www.example.com from 192.168.1.6\n"
    )
    settled = datetime(2026, 12, 4, 23, 0).timestamp()
    os.utime(log, (settled, settled))
    ingest(engine, "pihole-log", log)
    variable = next(
        v for v in dashboard()["templating"]["list"] if v["name"] == "client"
    )  # the query Grafana runs for the variable's values
    with engine.connect() as connection:
        offered = list(connection.execute(text(variable["query"])).scalars())
    assert offered == ["192.168.1.5", "192.168.1.6"]
    panel = next(p for p in panels() if p.key == "exposed_clients")
    end = int(utcnow().timestamp()) + 3600
    sql = expand(
        render(panel.queries[0], "mysql"),
        TimeRange(end - 400 * 86400, end, "1h"),
        {
            "threshold": "0.03",
            "ioc_type": "'domain','ip','url','file'",
            "client": ",".join(_grafana_quote(v) for v in offered),
        },
    )
    with engine.connect() as connection:
        connection.execute(text("SET time_zone = '+00:00'"))
        connection.execute(text(sql)).all()  # no SQL error
        devices = connection.execute(text("SELECT ip FROM clients ORDER BY ip")).scalars().all()
    assert devices == ["", "192.168.1.5", "192.168.1.6"]  # the hostile one is "unknown"
