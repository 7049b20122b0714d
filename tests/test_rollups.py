"""The sighting rollups against the hourly rows they summarise, on both engines.

The dashboard reads whole days from ``ioc_days`` and the edge hours from
``sightings``; for any time range that must give exactly what the hourly rows
alone give. The reference answers here are plain queries over ``sightings`` and
a recomputation in Python, not the code under test.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from vtguardian.dashboards.macros import TimeRange
from vtguardian.dashboards.panels import panels
from vtguardian.store import migrate
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs
from vtguardian.store.sightings import add_sightings
from vtguardian.web.panel_data import run_panel

START = datetime(2026, 3, 1, 0, 0)
HOURS = 6 * 24
ALL = {
    "threshold": "0.03",
    "ioc_type": ["domain", "ip", "url", "file"],
    "client": ["x"],
}


@pytest.fixture
def loaded(engine):
    """Six days of sightings from 150 clients (three bit words), written in batches."""
    rng = random.Random(5)
    with write_transaction(engine) as c:
        ioc_ids = list(
            ensure_iocs(
                c,
                {("domain", f"d{n}.example.com"): (None, START, START) for n in range(25)}
                | {("ip", f"185.220.101.{n}"): (None, START, START) for n in range(5)},
            ).values()
        )
        addresses = [f"10.0.{n // 250}.{n % 250}" for n in range(150)]
        client_ids = list(
            ensure_clients(c, dict.fromkeys(addresses, (None, START, START))).values()
        )
        for n, ioc_id in enumerate(ioc_ids[:6]):
            level = "malicious" if n % 2 else "harmless"
            record_answer(
                c, ioc_id, ReportRow("virustotal", "found", level, ratio=n / 10, total=80),
                timedelta(days=1), START,
            )  # fmt: skip
    for _batch in range(4):  # the same keys again and again: the upserts must add up
        counts = {}
        for _ in range(600):
            hour = START + timedelta(hours=rng.randrange(HOURS))
            key = (
                rng.choice(ioc_ids),
                rng.choice(client_ids),
                rng.choice(["pihole", "pihole", "suricata"]),
                hour,
            )
            hits = rng.randint(1, 9)
            counts[key] = (hits, rng.randint(0, hits), hour + timedelta(minutes=rng.randrange(60)))
        with write_transaction(engine) as c:
            add_sightings(c, counts)
    return engine


def _rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def _when(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def test_ioc_days_hold_exactly_the_hourly_rows_rolled_up(loaded):
    expected: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, datetime.min])
    for ioc_id, client_id, source, hour, hits, blocked, last in _rows(
        loaded,
        "SELECT ioc_id, client_id, source, hour, hits, blocked, last_seen FROM sightings",
    ):
        day = _when(hour).replace(hour=0, minute=0, second=0, microsecond=0)
        entry = expected[(ioc_id, source, day, client_id // 63)]
        entry[0] |= 1 << (client_id % 63)
        entry[1] += hits
        entry[2] += blocked
        entry[3] = max(entry[3], _when(last))
    stored = {
        (ioc_id, source, _when(day), word): [mask, hits, blocked, _when(last)]
        for ioc_id, source, day, word, mask, hits, blocked, last in _rows(
            loaded,
            "SELECT ioc_id, source, day, client_word, clients_mask, hits, blocked, last_seen "
            "FROM ioc_days",
        )
    }
    assert stored == dict(expected)
    assert max(word for _i, _s, _d, word in stored) == 2  # 150 clients: three words


def test_migration_backfills_the_rollups_from_existing_sightings(loaded):
    query = (
        "SELECT ioc_id, source, day, client_word, clients_mask, hits, blocked, last_seen "
        "FROM ioc_days ORDER BY 1, 2, 3, 4"
    )
    before = (_rows(loaded, query), _rows(loaded, "SELECT * FROM source_hours ORDER BY 1, 2"))
    migrate.downgrade(loaded, "0002")
    migrate.upgrade(loaded)
    after = (_rows(loaded, query), _rows(loaded, "SELECT * FROM source_hours ORDER BY 1, 2"))
    assert after == before and before[0]


REFERENCE = {
    # The panels' questions asked of the hourly rows alone.
    "reputation": (
        "SELECT i.value, COUNT(DISTINCT s.client_id), SUM(s.hits), MAX(s.last_seen) "
        "FROM sightings s JOIN iocs i ON i.id = s.ioc_id "
        "WHERE s.hour BETWEEN :low AND :high GROUP BY i.value"
    ),
    "iocs_observed": (
        "SELECT COUNT(DISTINCT s.ioc_id) FROM sightings s WHERE s.hour BETWEEN :low AND :high"
    ),
    "pihole_volume": (
        "SELECT SUM(s.hits - s.blocked), SUM(s.blocked), "
        "SUM(CASE WHEN v.verdict = 'malicious' THEN s.hits ELSE 0 END) "
        "FROM sightings s LEFT JOIN verdicts v ON v.ioc_id = s.ioc_id "
        "WHERE s.hour BETWEEN :low AND :high AND s.source = 'pihole'"
    ),
}


def _reference(engine, key: str, low: datetime, high: datetime) -> list[tuple]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            bounds = {
                "low": low.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "high": high.strftime("%Y-%m-%d %H:%M:%S.%f"),
            }
        else:
            bounds = {"low": low, "high": high}
        return [tuple(r) for r in connection.execute(text(REFERENCE[key]), bounds)]


def test_panels_over_rollups_equal_the_hourly_rows_for_any_range(loaded):
    rng = random.Random(9)
    by_key = {p.key: p for p in panels()}
    epoch = datetime(1970, 1, 1)
    ranges = [(START - timedelta(days=1), START + timedelta(days=8))]  # everything
    ranges += [(START + timedelta(days=2), START + timedelta(days=4, hours=-1))]  # whole days
    for _ in range(10):
        low = START + timedelta(seconds=rng.randrange(-86_400, HOURS * 3600))
        high = low + timedelta(seconds=rng.randrange(600, 5 * 86_400))
        ranges.append((low, high))
    for low, high in ranges:
        window = TimeRange(
            int((low - epoch).total_seconds()), int((high - epoch).total_seconds()), "1h"
        )
        low_s = epoch + timedelta(seconds=window.start)
        high_s = epoch + timedelta(seconds=window.end)
        (reputation,) = run_panel(loaded, by_key["reputation"], window, ALL)
        columns = reputation["columns"]
        got = sorted(
            (
                row[columns.index("ioc")],
                int(row[columns.index("clients")]),
                int(row[columns.index("hits")]),
                _when(row[columns.index("last_seen")]),
            )
            for row in reputation["rows"]
        )
        want = sorted(
            (v, int(c), int(h), _when(last))
            for v, c, h, last in _reference(loaded, "reputation", low_s, high_s)
        )
        assert got == want, (low, high)
        (observed,) = run_panel(loaded, by_key["iocs_observed"], window, ALL)
        assert (
            int(observed["rows"][0][0]) == _reference(loaded, "iocs_observed", low_s, high_s)[0][0]
        )
        (volume,) = run_panel(loaded, by_key["pihole_volume"], window, ALL)
        sums = [sum(int(row[n] or 0) for row in volume["rows"]) for n in (1, 2, 3)]
        assert sums == [int(x or 0) for x in _reference(loaded, "pihole_volume", low_s, high_s)[0]]
