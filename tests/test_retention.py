"""Retention on both engines: what a prune removes, what it keeps, and that the
dashboard's totals over old ranges still add up from the daily rollups.

The reference answers are plain queries over the rows as they were before the
prune and sums in Python, not the code under test.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text

from helpers import run_cli
from vtguardian.clock import utcnow
from vtguardian.config import RetentionSettings
from vtguardian.dashboards.macros import TimeRange
from vtguardian.dashboards.panels import panels
from vtguardian.store import retention
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs
from vtguardian.store.schema import (
    actions,
    alerts,
    ingest_errors,
    ioc_days,
    quota_usage,
    reports,
    retention_runs,
    sightings,
    verdict_history,
)
from vtguardian.store.sightings import add_sightings
from vtguardian.web.panel_data import run_panel

NOW = datetime(2026, 3, 21, 10, 30)
DAYS = 20
POLICY = RetentionSettings(sightings_days=7, rollups_days=14, reports_kept=2, batch_rows=40)
ALL = {"threshold": "0.03", "ioc_type": ["domain", "ip", "url", "file"], "client": ["x"]}


def _when(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _day(value) -> datetime:
    return _when(value).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def loaded(engine):
    """Twenty days of hourly sightings up to NOW, reports, alerts, actions, errors, quota."""
    rng = random.Random(29)
    start = NOW - timedelta(days=DAYS)
    with write_transaction(engine) as c:
        iocs = ensure_iocs(
            c, {("domain", f"d{n}.example.com"): (None, start, start) for n in range(12)}
        )
        ioc_ids = list(iocs.values())
        clients = ensure_clients(
            c, {f"10.0.0.{n}": (None, start, start) for n in range(1, 9)}
        )  # fmt: skip
        client_ids = list(clients.values())
    counts = {}
    for hour in range(DAYS * 24):
        moment = start.replace(minute=0) + timedelta(hours=hour)
        for _ in range(3):
            key = (rng.choice(ioc_ids), rng.choice(client_ids), "pihole", moment)
            hits = rng.randint(1, 5)
            counts[key] = (hits, 0, moment + timedelta(minutes=rng.randrange(60)))
    with write_transaction(engine) as c:
        add_sightings(c, counts)
        first = ioc_ids[0]
        # Ten answers: harmless, malicious at the fourth (a change), then malicious.
        for n in range(10):
            level = "malicious" if n >= 3 else "harmless"
            record_answer(
                c, first, ReportRow("virustotal", "found", level), timedelta(days=1),
                start + timedelta(days=n),
            )  # fmt: skip
        old, recent = NOW - timedelta(days=400), NOW - timedelta(days=2)
        for when in (old, recent):
            c.execute(
                insert(alerts).values(
                    created_at=when, ioc_id=first, verdict="malicious", flip_key=f"k{when}"
                )
            )
            c.execute(
                insert(ingest_errors).values(
                    source="pihole", path="/var/log/pihole.log", reason="bad", created_at=when
                )
            )
            c.execute(
                insert(quota_usage).values(
                    provider="virustotal", window="day", window_start=when, used=3
                )
            )
        for active in (True, False):
            c.execute(
                insert(actions).values(
                    ioc_id=first, target="pihole", action="block", reason="malicious",
                    created_at=old, active=active,
                )
            )  # fmt: skip
    return engine


def _scalar(engine, query):
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def _hits_per_day(engine) -> dict[datetime, int]:
    with engine.connect() as connection:
        rows = connection.execute(select(sightings.c.hour, sightings.c.hits)).all()
    days: dict[datetime, int] = defaultdict(int)
    for hour, hits in rows:
        days[_day(hour)] += hits
    return dict(days)


def _reputation_hits(engine, start: datetime, end: datetime) -> int:
    panel = next(p for p in panels() if p.key == "reputation")
    seconds = [int(moment.replace(tzinfo=UTC).timestamp()) for moment in (start, end)]
    (result,) = run_panel(engine, panel, TimeRange(*seconds), ALL)
    column = result["columns"].index("hits")
    return sum(int(row[column]) for row in result["rows"])


def test_dry_run_counts_what_a_prune_then_removes(loaded):
    engine = loaded
    cutoff = retention.hourly_cutoff(POLICY, NOW)
    assert cutoff == datetime(2026, 3, 14)
    old_hourly = _scalar(engine, select(func.count()).where(sightings.c.hour < cutoff))
    old_days = _scalar(
        engine, select(func.count()).where(ioc_days.c.day < datetime(2026, 3, 7))
    )  # fmt: skip
    assert old_hourly > POLICY.batch_rows and old_days > 0
    with engine.connect() as connection:
        planned = retention.plan(connection, POLICY, NOW)
    assert planned["sightings"] == old_hourly
    assert planned["ioc_days"] == old_days
    # Ten reports: the last two, the first and the fourth (they changed the verdict) stay.
    assert planned["reports"] == 6
    assert planned["alerts"] == planned["ingest_errors"] == planned["quota_usage"] == 1
    assert planned["actions"] == 1  # the inactive one; an active block is never removed
    total = _scalar(engine, select(func.count()).select_from(sightings))

    batches = []
    result = retention.prune(engine, POLICY, NOW, on_batch=lambda k, n: batches.append((k, n)))
    assert result.removed == planned
    assert _scalar(engine, select(func.count()).select_from(sightings)) == total - old_hourly
    assert _scalar(engine, select(func.min(sightings.c.hour))) is not None
    assert _day(_scalar(engine, select(func.min(sightings.c.hour)))) == cutoff
    # Small transactions: many batches, none larger than asked.
    sighting_batches = [n for kind, n in batches if kind == "sightings"]
    assert len(sighting_batches) >= old_hourly // POLICY.batch_rows
    assert max(n for _, n in batches) <= POLICY.batch_rows
    # A second prune finds nothing more, and both runs are recorded.
    with engine.connect() as connection:
        assert set(retention.plan(connection, POLICY, NOW).values()) == {0}
        assert retention.last_run(connection) == NOW
    assert _scalar(engine, select(func.count()).select_from(retention_runs)) == 1
    assert not retention.due(engine, POLICY, NOW + timedelta(hours=23))
    assert retention.due(engine, POLICY, NOW + timedelta(hours=24))


def test_kept_reports_are_the_change_the_verdict_and_the_last_two(loaded):
    engine = loaded
    with engine.connect() as connection:
        changed = set(
            connection.execute(
                select(verdict_history.c.report_id).where(verdict_history.c.report_id.is_not(None))
            ).scalars()
        )
        latest = list(connection.execute(select(reports.c.id).order_by(reports.c.id.desc())))
    retention.prune(engine, POLICY, NOW)
    with engine.connect() as connection:
        kept = set(connection.execute(select(reports.c.id)).scalars())
        active = connection.execute(select(actions.c.active)).scalars().all()
    assert kept == changed | {row[0] for row in latest[:2]}
    assert len(changed) == 2  # first answer (none -> harmless) and the flip to malicious
    assert active == [True]


def test_rollups_keep_the_totals_of_the_pruned_hours(loaded):
    engine = loaded
    before = _hits_per_day(engine)
    cutoff = retention.hourly_cutoff(POLICY, NOW)
    rollup_cutoff = datetime(2026, 3, 7)
    # The dashboard over 10 days (back past the hourly retention) before the prune.
    start_midnight = cutoff - timedelta(days=3)
    whole_days = _reputation_hits(engine, start_midnight, NOW)
    retention.prune(engine, POLICY, NOW)
    with engine.connect() as connection:
        rolled = connection.execute(
            select(ioc_days.c.day, func.sum(ioc_days.c.hits)).group_by(ioc_days.c.day)
        ).all()
    rolled_days = {_day(day): int(hits) for day, hits in rolled}
    # Every day still within the rollup retention has exactly its hourly total.
    assert rolled_days == {day: hits for day, hits in before.items() if day >= rollup_cutoff}
    assert _hits_per_day(engine) == {day: h for day, h in before.items() if day >= cutoff}
    # The same totals after the hourly rows of the older days are gone ...
    assert _reputation_hits(engine, start_midnight, NOW) == whole_days
    # ... and a range starting within a pruned day counts that day whole, from its
    # rollup, instead of losing its hours.
    assert _reputation_hits(engine, start_midnight + timedelta(hours=5), NOW) == whole_days
    assert whole_days == sum(h for day, h in before.items() if day >= start_midnight)


def test_sqlite_file_shrinks_after_a_prune(sqlite_url, tmp_path):
    from vtguardian.store import migrate
    from vtguardian.store.engine import make_engine

    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    with write_transaction(engine) as c:
        ids = list(
            ensure_iocs(
                c, {("domain", f"n{n}.example.net"): (None, NOW, NOW) for n in range(2000)}
            ).values()
        )
        (client,) = ensure_clients(c, {"10.0.0.1": (None, NOW, NOW)}).values()
    old = NOW - timedelta(days=100)
    for day in range(10):
        hour = old.replace(minute=0) + timedelta(days=day)
        with write_transaction(engine) as c:
            add_sightings(c, {(i, client, "pihole", hour): (1, 0, hour) for i in ids})
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
    result = retention.prune(engine, RetentionSettings(batch_rows=5000), NOW)
    assert result.removed["sightings"] == 20_000
    assert not result.vacuum_off
    assert result.file_bytes_after < result.file_bytes_before / 2
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA freelist_count").scalar() < 4096
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    engine.dispose()


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_db_prune_dry_run_then_prune_from_the_command_line(loaded):
    engine = loaded
    env = {"VTGUARDIAN_DATABASE__URL": _url(engine)}
    # Today, every one of these sightings is older than the default 90 days.
    hourly = _scalar(engine, select(func.count()).select_from(sightings))
    days = _scalar(engine, select(func.count()).select_from(ioc_days))
    dry = run_cli("db", "prune", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"sightings: {hourly:,} rows would be removed" in dry.stdout
    assert "ioc_days: 0 rows would be removed" in dry.stdout
    assert _scalar(engine, select(func.count()).select_from(sightings)) == hourly
    done = run_cli("db", "prune", env=env)
    assert done.returncode == 0, done.stderr
    assert f"sightings: {hourly:,} rows removed" in done.stdout
    assert _scalar(engine, select(func.count()).select_from(sightings)) == 0
    assert _scalar(engine, select(func.count()).select_from(ioc_days)) == days


def test_db_stats_rows_bytes_ages_and_what_is_due(loaded):
    engine = loaded
    env = {"VTGUARDIAN_DATABASE__URL": _url(engine)}
    result = run_cli("db", "stats", "--json", env=env)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    tables = {t["table"]: t for t in stats["tables"]}
    with engine.connect() as connection:
        for name in ("sightings", "ioc_days", "reports", "alerts"):
            count = connection.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            assert tables[name]["rows"] == count, name
        first, last = connection.execute(text("SELECT MIN(hour), MAX(hour) FROM sightings")).one()
    for key, value in (("oldest", first), ("newest", last)):
        assert datetime.fromisoformat(tables["sightings"][key].removesuffix("Z")) == _when(value)
    assert tables["sightings"]["bytes"] > 0
    assert stats["bytes"] >= sum(t["bytes"] or 0 for t in stats["tables"]) * 0.5
    due = stats["retention"]["next_prune_removes"]
    assert due["sightings"] == tables["sightings"]["rows"]
    assert due["actions"] == 1
    table = run_cli("db", "stats", env=env)
    assert "sightings" in table.stdout and "next prune removes: sightings" in table.stdout


def test_db_backup_is_consistent_while_an_ingest_writes(engine, tmp_path):
    if engine.dialect.name != "sqlite":
        result = run_cli("db", "backup", str(tmp_path / "x.db"), env={
            "VTGUARDIAN_DATABASE__URL": _url(engine)})  # fmt: skip
        assert result.returncode != 0
        assert "mariadb-dump --single-transaction" in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return
    with write_transaction(engine) as c:
        ids = list(
            ensure_iocs(
                c, {("domain", f"w{n}.example.net"): (None, NOW, NOW) for n in range(300)}
            ).values()
        )
        (client,) = ensure_clients(c, {"10.0.0.7": (None, NOW, NOW)}).values()
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        hour = NOW.replace(minute=0)
        while not stop.is_set():
            hour += timedelta(hours=1)
            with write_transaction(engine) as c:
                add_sightings(c, {(i, client, "pihole", hour): (2, 0, hour) for i in ids})
            written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 3:
            time.sleep(0.01)
        target = tmp_path / "backup.db"
        result = run_cli("db", "backup", str(target), env={
            "VTGUARDIAN_DATABASE__URL": _url(engine)})  # fmt: skip
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    with contextlib.closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        hourly, hours = copy.execute(
            "SELECT SUM(hits), COUNT(DISTINCT hour) FROM sightings"
        ).fetchone()
        rolled = copy.execute("SELECT SUM(hits) FROM ioc_days").fetchone()[0]
        per_hour = copy.execute(
            "SELECT COUNT(*) FROM (SELECT hour FROM sightings GROUP BY hour HAVING COUNT(*) <> 300)"
        ).fetchone()[0]
    # One snapshot: whole transactions only, and the rollups agree with the hours.
    assert hours >= 3
    assert per_hour == 0
    assert hourly == rolled == hours * 300 * 2
    assert not (tmp_path / "backup.db.partial").exists()


def test_run_prunes_when_a_prune_is_due_and_not_again(loaded):
    import asyncio

    from vtguardian.config import settings_from_values
    from vtguardian.daemon import Daemon

    engine = loaded
    settings = settings_from_values(database={"url": _url(engine)}, run={"lookups": False})
    said: list[str] = []
    daemon = Daemon(settings, engine, said.append)
    assert ("retention", daemon._retention) in daemon._jobs()
    with engine.connect() as connection:
        due = sum(retention.plan(connection, settings.retention, utcnow()).values())

    async def twice() -> None:
        task = asyncio.create_task(daemon._retention())
        while not _scalar(
            engine, select(func.count()).where(retention_runs.c.finished_at.is_not(None))
        ):
            await asyncio.sleep(0.05)
        daemon.request_stop()
        await task
        daemon.stop.clear()
        daemon.follow_stop.clear()
        task = asyncio.create_task(daemon._retention())  # a restart within the day
        await asyncio.sleep(0.3)
        daemon.request_stop()
        await task

    asyncio.run(twice())
    # Every sighting of the fixture is older than the default 90 days today.
    assert _scalar(engine, select(func.count()).select_from(sightings)) == 0
    assert len(said) == 1 and said[0].startswith(f"retention: removed {due:,} rows in ")
    assert _scalar(engine, select(func.count()).select_from(retention_runs)) == 1


def _panel_rows(engine, key: str, start: datetime, end: datetime) -> list[list]:
    panel = next(p for p in panels() if p.key == key)
    seconds = [int(moment.replace(tzinfo=UTC).timestamp()) for moment in (start, end)]
    (result,) = run_panel(engine, panel, TimeRange(*seconds), ALL)
    return result["rows"]


def test_flagged_iocs_seen_only_before_the_hourly_retention_still_count(engine):
    seen = NOW - timedelta(days=10, hours=3)
    with write_transaction(engine) as c:
        ids = ensure_iocs(
            c,
            {
                ("domain", "old-c2.example.net"): (None, seen, seen),
                ("domain", "old-gray.example.net"): (None, seen, seen),
            },
        )
        (client,) = ensure_clients(c, {"10.0.0.2": (None, seen, seen)}).values()
        hour = seen.replace(minute=0)
        add_sightings(c, {(i, client, "pihole", hour): (4, 0, seen) for i in ids.values()})
        for value, level, ratio in (
            ("old-c2.example.net", "malicious", 0.5),
            ("old-gray.example.net", "suspicious", 0.02),
        ):
            record_answer(
                c, ids[("domain", value)], ReportRow("virustotal", "found", level, ratio=ratio),
                timedelta(days=1), seen,
            )  # fmt: skip
    retention.prune(engine, POLICY, NOW)
    assert _scalar(engine, select(func.count()).select_from(sightings)) == 0
    month = NOW - timedelta(days=30)
    assert _panel_rows(engine, "malicious", month, NOW) == [[1]]
    assert _panel_rows(engine, "suspicious", month, NOW) == [[1]]
    assert [row[0] for row in _panel_rows(engine, "top_ratio", month, NOW)] == [
        "old-c2.example.net",
        "old-gray.example.net",
    ]
    week = NOW - timedelta(days=7)
    assert _panel_rows(engine, "malicious", week, NOW) == [[0]]
    assert _panel_rows(engine, "top_ratio", week, NOW) == []


def test_a_stopped_prune_keeps_what_it_removed_and_is_due_again(loaded):
    engine = loaded
    stop = threading.Event()
    before = _scalar(engine, select(func.count()).select_from(sightings))

    def stop_after_two(kind: str, _rows: int) -> None:
        if kind == "sightings" and len(seen) == 1:
            stop.set()
        seen.append(kind)

    seen: list[str] = []
    result = retention.prune(engine, POLICY, NOW, on_batch=stop_after_two, stop=stop)
    assert seen == ["sightings", "sightings"]
    assert result.removed["sightings"] == sum(result.removed.values()) == 2 * POLICY.batch_rows
    assert _scalar(engine, select(func.count()).select_from(sightings)) == before - 80
    assert retention.due(engine, POLICY, NOW)
    assert retention.prune(engine, POLICY, NOW).removed["sightings"] > 0
    assert not retention.due(engine, POLICY, NOW)
