"""The one schema on both engines: migrations, upserts, the compatibility view, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from helpers import run_cli
from vtguardian.ingest.prepare import prepare
from vtguardian.ingest.totals import Totals
from vtguardian.ingest.writer import store
from vtguardian.iocs import Classifier
from vtguardian.sources.batch import Batch
from vtguardian.store import migrate
from vtguardian.store.engine import (
    foreign_keys_unchecked,
    is_disconnect,
    make_engine,
    write_transaction,
)
from vtguardian.store.entities import UNKNOWN_CLIENT, ensure_clients, ensure_iocs
from vtguardian.store.schema import metadata, reports, sightings
from vtguardian.store.sightings import add_sightings, hour_bucket

T0 = datetime(2026, 11, 20, 10, 15, 0)
EXPECTED_TABLES = {
    "iocs",
    "clients",
    "sightings",
    "reports",
    "verdicts",
    "verdict_history",
    "lookup_queue",
    "quota_usage",
    "lookup_stats",
    "source_offsets",
    "ingest_errors",
    "ids_alerts",
    "alerts",
    "actions",
}


def test_cli_upgrade_twice_is_a_noop_and_status_reports_head(db_url):
    env = {"VTGUARDIAN_DATABASE__URL": db_url}
    first = run_cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert "migrated from empty to" in first.stdout
    tables_after_first = set(inspect(make_engine(db_url)).get_table_names())
    second = run_cli("db", "upgrade", env=env)
    assert second.returncode == 0, second.stderr
    assert "already at revision" in second.stdout
    assert set(inspect(make_engine(db_url)).get_table_names()) == tables_after_first
    assert tables_after_first >= EXPECTED_TABLES
    status = run_cli("db", "status", env=env)
    assert status.returncode == 0
    assert f"revision {migrate.head_revision()}" in status.stdout and "up to date" in status.stdout


def test_status_of_an_empty_database_asks_for_upgrade(db_url):
    result = run_cli("db", "status", env={"VTGUARDIAN_DATABASE__URL": db_url})
    assert result.returncode == 1
    assert "revision none" in result.stdout and "vtguardian db upgrade" in result.stdout


def test_downgrade_upgrade_round_trip(engine):
    assert migrate.status(engine).up_to_date
    migrate.downgrade(engine, "base")
    names = set(inspect(engine).get_table_names())
    assert not (EXPECTED_TABLES & names)
    assert "url_scans" not in inspect(engine).get_view_names()
    migrate.upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
    assert "url_scans" in inspect(engine).get_view_names()


def test_migrations_match_the_table_definitions(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_sighting_upsert_increments_and_keeps_latest_time(engine):
    hour = hour_bucket(T0)
    with write_transaction(engine) as connection:
        ioc_ids = ensure_iocs(connection, {("domain", "example.com"): ("example.com", T0, T0)})
        client_ids = ensure_clients(connection, {"192.168.1.10": ("laptop", T0, T0)})
    key = (ioc_ids[("domain", "example.com")], client_ids["192.168.1.10"], "pihole", hour)
    with write_transaction(engine) as connection:
        add_sightings(connection, {key: (3, 1, T0)})
    with write_transaction(engine) as connection:
        add_sightings(connection, {key: (4, 0, T0 - timedelta(minutes=5))})
    with engine.connect() as connection:
        row = connection.execute(select(sightings)).one()
    assert (row.hits, row.blocked, row.last_seen) == (7, 1, T0)


def test_entities_are_created_once_and_keep_the_latest_name(engine):
    later = T0 + timedelta(hours=2)
    with write_transaction(engine) as connection:
        first = ensure_iocs(
            connection,
            {
                ("domain", "a.example.com"): ("example.com", T0, T0),
                ("ip", "8.8.8.8"): (None, T0, T0),
            },
        )
        clients_first = ensure_clients(
            connection, {"192.168.1.10": (None, T0, T0), UNKNOWN_CLIENT: (None, T0, T0)}
        )
    with write_transaction(engine) as connection:
        again = ensure_iocs(connection, {("ip", "8.8.8.8"): (None, later, later)})
        clients_again = ensure_clients(connection, {"192.168.1.10": ("phone", later, later)})
    assert again[("ip", "8.8.8.8")] == first[("ip", "8.8.8.8")]
    assert clients_again["192.168.1.10"] == clients_first["192.168.1.10"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM iocs")).scalar() == 2
        name, last = connection.execute(
            text("SELECT name, last_seen FROM clients WHERE ip = '192.168.1.10'")
        ).one()
        first_seen = connection.execute(
            text("SELECT first_seen FROM iocs WHERE value = '8.8.8.8'")
        ).scalar()
    assert name == "phone"
    assert _naive(last) == later
    assert _naive(first_seen) == T0


def test_an_earlier_sighting_stored_later_moves_first_seen_back(engine):
    """Batches stored out of order, or merged, still leave each span the widest."""
    earlier, later = T0 - timedelta(days=1), T0 + timedelta(hours=2)
    for first, last in ((T0, T0), (earlier, earlier), (T0, later)):
        with write_transaction(engine) as connection:
            ensure_iocs(connection, {("ip", "8.8.8.8"): (None, first, last)})
            ensure_clients(connection, {"192.168.1.10": ("laptop", first, last)})
    with engine.connect() as connection:
        for table in ("iocs", "clients"):
            span = connection.execute(text(f"SELECT first_seen, last_seen FROM {table}")).one()
            assert tuple(map(_naive, span)) == (earlier, later), table


@pytest.mark.parametrize("odd_url", [None, "http://x.example/?q='a\\b"], ids=["plain", "quoted"])
def test_bulk_ids_match_their_iocs_whether_new_or_known(engine, odd_url):
    """The ids come back from the upsert itself where the server can (MariaDB), else
    from a query (MySQL, SQLite, or values only the driver may escape): either way
    each must be its own IoC's, for old and new alike."""
    known = {("domain", f"k{n}.example.com"): ("example.com", T0, T0) for n in range(600)}
    fresh = {("ip", f"203.0.113.{n}"): (None, T0, T0) for n in range(1, 200)}
    if odd_url:
        fresh[("url", odd_url)] = ("example", T0, T0)
    with write_transaction(engine) as connection:
        first = ensure_iocs(connection, known)
    with write_transaction(engine) as connection:
        ids = ensure_iocs(connection, {**fresh, **known})
    with engine.connect() as connection:
        stored = {
            (kind, value): ioc_id
            for ioc_id, kind, value in connection.execute(text("SELECT id, type, value FROM iocs"))
        }
    assert ids == stored
    assert {key: ids[key] for key in known} == first


def test_url_scans_view_shows_latest_virustotal_report(engine):
    with write_transaction(engine) as connection:
        ids = ensure_iocs(connection, {("domain", "evil.example"): ("evil.example", T0, T0)})
        ioc_id = ids[("domain", "evil.example")]
        for when, malicious, provider in [
            (T0, 1, "virustotal"),
            (T0 + timedelta(days=1), 9, "virustotal"),
            (T0 + timedelta(days=2), None, "feeds"),
        ]:
            connection.execute(
                insert(reports).values(
                    ioc_id=ioc_id,
                    provider=provider,
                    fetched_at=when,
                    outcome="found",
                    verdict="malicious",
                    analysis_date=when - timedelta(hours=1) if malicious else None,
                    malicious=malicious,
                    total=90 if malicious else None,
                    permalink="https://www.virustotal.com/gui/domain/evil.example",
                    raw={
                        "data": {
                            "id": "evil.example",
                            "attributes": {
                                "last_analysis_results": {
                                    "Engine": {"engine_name": "Engine", "n": malicious}
                                }
                            },
                        }
                    },
                )
            )
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, url, scan_date, positives, total_scans, permalink, scan_result "
                "FROM url_scans"
            )
        ).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.id, row.url, row.positives, row.total_scans) == (ioc_id, "evil.example", 9, 90)
    # When the report was fetched, as Home Network Guardian dated its scans.
    assert _naive(row.scan_date) == T0 + timedelta(days=1)
    assert row.permalink.endswith("/domain/evil.example")
    # Shaped as the analysis object it stored: the engines under data.attributes.results.
    result = json.loads(row.scan_result)
    assert result["data"]["attributes"]["results"] == {"Engine": {"engine_name": "Engine", "n": 9}}


def test_indexes_cover_the_dashboard_time_ranges(engine):
    inspector = inspect(engine)

    def leading(table):
        return {ix["column_names"][0] for ix in inspector.get_indexes(table)}

    assert "hour" in leading("sightings")
    assert "fetched_at" in leading("reports")
    assert "changed_at" in leading("verdict_history")
    assert "ts" in leading("ids_alerts")
    assert "created_at" in leading("alerts")
    assert "created_at" in leading("actions")


def test_unreachable_database_is_one_clear_line():
    env = {"VTGUARDIAN_DATABASE__URL": "mysql+pymysql://root@127.0.0.1:1/test"}
    for command in (["db", "upgrade"], ["db", "status"]):
        result = run_cli(*command, env=env)
        assert result.returncode == 3
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert lines[0].startswith(
            "vtguardian: cannot reach database mysql+pymysql://root@127.0.0.1:1"
        )


def test_sqlite_in_missing_folder_is_one_clear_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing' / 'x.db'}"
    result = run_cli("db", "upgrade", env={"VTGUARDIAN_DATABASE__URL": url})
    assert result.returncode == 3
    assert "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_password_never_shown_in_connection_errors():
    env = {"VTGUARDIAN_DATABASE__URL": "mysql+pymysql://root:s3cretpw@127.0.0.1:1/test"}
    result = run_cli("db", "status", env=env)
    assert result.returncode == 3
    assert "s3cretpw" not in result.stderr + result.stdout


def _naive(value):
    if isinstance(value, str):  # SQLite returns view columns as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None) if value.tzinfo else value


@pytest.mark.parametrize("count", [1, 1200])
def test_bulk_entities_round_trip(engine, count):
    items = {("domain", f"d{n}.example.com"): ("example.com", T0, T0) for n in range(count)}
    with write_transaction(engine) as connection:
        ids = ensure_iocs(connection, items)
    assert len(ids) == count and len(set(ids.values())) == count
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(metadata.tables["iocs"])).scalar()
            == count
        )


def _orphan_sighting(connection) -> None:
    """A sighting of an IoC and client that do not exist."""
    add_sightings(connection, {(987_654, 876_543, "pihole", hour_bucket(T0)): (1, 0, T0)})


def _fk_checks(connection) -> int:
    return int(connection.exec_driver_sql("SELECT @@SESSION.foreign_key_checks").scalar())


def test_an_ingest_skips_foreign_key_checks_only_inside_its_own_writes(mariadb_url):
    """The ingest's writes skip MySQL's checks, and the pooled connection gets its
    own setting back afterwards, also when the batch fails halfway."""
    engine = make_engine(mariadb_url)
    migrate.upgrade(engine)
    batch = Batch("suricata", lines=1, events=1)
    batch.see("domain", "example.com", "192.168.1.10", T0.replace(tzinfo=UTC))
    prepared = prepare(batch, Classifier())

    def orphan_then_fail(connection) -> None:
        _orphan_sighting(connection)  # accepted: the checks are off here
        raise RuntimeError("the checkpoint failed")

    try:
        with pytest.raises(RuntimeError, match="checkpoint failed"):
            store(engine, prepared, Totals(), orphan_then_fail)
        with engine.connect() as connection:  # the same pooled connection
            assert _fk_checks(connection) == 1
            connection.exec_driver_sql("SET foreign_key_checks = 0")  # a caller's own choice
        store(engine, prepared, Totals(), lambda connection: None)
        with engine.connect() as connection:
            assert _fk_checks(connection) == 0  # put back as it was, not forced on
            connection.exec_driver_sql("SET foreign_key_checks = 1")
        with pytest.raises(IntegrityError), write_transaction(engine) as connection:
            _orphan_sighting(connection)  # outside an ingest's writes, still refused
        with engine.connect() as connection:
            assert connection.execute(select(func.sum(sightings.c.hits))).scalar() == 1
    finally:
        engine.dispose()


def test_a_connection_lost_with_the_checks_off_is_reported_as_lost(mariadb_url):
    """The caller sees the disconnect it waits out and retries, not an error from
    putting the checks back on a connection that is gone."""
    engine, killer = make_engine(mariadb_url), make_engine(mariadb_url)
    try:
        with (
            pytest.raises(DBAPIError) as caught,
            write_transaction(engine) as connection,
            foreign_keys_unchecked(connection),
        ):
            own = connection.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            with killer.connect() as other:
                other.exec_driver_sql(f"KILL {int(own)}")
            connection.exec_driver_sql("SELECT 1")
        assert is_disconnect(caught.value)
    finally:
        engine.dispose()
        killer.dispose()
