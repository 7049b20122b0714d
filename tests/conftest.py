"""Shared fixtures: every store test runs on SQLite and on the real MariaDB.

MariaDB is not optional: when it cannot be reached the tests fail with the
reason, they never skip, so CI cannot go green without the second engine.

A migrated database (``engine``) is a copy of a template that Alembic migrated
once per session (once per xdist worker): the SQLite file is copied, the MariaDB
tables and views are re-created from the template's own ``SHOW CREATE`` output,
with its ``alembic_version`` row. Tests of the migrations themselves
(``MIGRATION_TESTS``) still get a database migrated by Alembic.

Markers are applied here, at collection (see ``pytest_collection_modifyitems``):
``mariadb``, ``browser`` and ``slow``; ``pytest -m "not mariadb and not browser and
not slow"`` is the fast lane.
"""

from __future__ import annotations

import os
import shutil
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from vtguardian.store import migrate
from vtguardian.store.engine import make_engine
from vtguardian.testing.vt_content import load_seed_file
from vtguardian.testing.vt_emulator import EmulatorServer, VirusTotalEmulator

MARIADB_URL = os.environ.get("VTGUARDIAN_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")

#: Tests of the migrations themselves: their ``engine`` is migrated by Alembic, not copied.
MIGRATION_TESTS = {
    "test_store.py::test_downgrade_upgrade_round_trip",
    "test_store.py::test_migrations_match_the_table_definitions",
}


def _mariadb_server() -> Engine:
    server = create_engine(make_url(MARIADB_URL).set(database=None), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"MariaDB at {MARIADB_URL} is unreachable: {exc}", pytrace=False)
    return server


def _database_url(name: str) -> str:
    return make_url(MARIADB_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database, dropped after the test."""
    server = _mariadb_server()
    name = f"vtg_test_{uuid.uuid4().hex[:12]}"
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield _database_url(name)
    finally:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        server.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'vtguardian.db'}"


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request) -> str:
    """An empty database on each engine in turn."""
    return request.getfixturevalue(f"{request.param}_url")


# --- migrated templates ---------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file Alembic migrated to head, once per session."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    # Closed by its last connection: the WAL is checkpointed into the file and removed.
    assert not Path(f"{path}-wal").exists(), "the template's WAL was not checkpointed"
    return path


@dataclass(frozen=True)
class _MariaDBTemplate:
    name: str
    tables: list[str]  # CREATE TABLE statements, in the template's own words
    views: list[str]  # CREATE VIEW statements; ``{db}`` stands for the database
    filled: list[str]  # tables that hold rows after the migrations (alembic_version)

    def clone_into(self, database: str) -> None:
        """Re-create the template's tables, views and rows in the empty ``database``."""
        server = _mariadb_server()
        # The DBAPI cursor takes the statements as they are (no %-formatting of the DDL).
        raw = server.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(f"USE `{database}`")
            cursor.execute("SET SESSION foreign_key_checks = 0")  # tables in any order
            for statement in self.tables:
                cursor.execute(statement)
            for statement in self.views:
                cursor.execute(statement.replace("{db}", database))
            for table in self.filled:
                cursor.execute(f"INSERT INTO `{table}` SELECT * FROM `{self.name}`.`{table}`")
            cursor.close()
        finally:
            raw.close()
            server.dispose()


def _schema_of(connection, database: str) -> tuple[list[str], list[str], list[str]]:
    """(CREATE TABLE statements, CREATE VIEW statements, tables holding rows) of ``database``."""
    tables, views, filled = [], [], []
    for name, kind in connection.execute(text(f"SHOW FULL TABLES FROM `{database}`")).all():
        if kind == "VIEW":
            ddl = connection.execute(text(f"SHOW CREATE VIEW `{database}`.`{name}`")).one()[1]
            views.append(ddl.replace(f"`{database}`.", "`{db}`."))
            continue
        tables.append(connection.execute(text(f"SHOW CREATE TABLE `{database}`.`{name}`")).one()[1])
        if connection.execute(text(f"SELECT COUNT(*) FROM `{database}`.`{name}`")).scalar():
            filled.append(name)
    return tables, views, filled


@pytest.fixture(scope="session")
def _mariadb_template() -> Iterator[_MariaDBTemplate]:
    """A MariaDB database Alembic migrated to head, once per session; a probe copy of it
    must have the same tables, views, rows and revision, or every MariaDB test fails."""
    server = _mariadb_server()
    name = f"vtg_test_template_{uuid.uuid4().hex[:12]}"
    probe = f"vtg_test_{uuid.uuid4().hex[:12]}"
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        connection.execute(text(f"CREATE DATABASE `{probe}` CHARACTER SET utf8mb4"))
    try:
        engine = make_engine(_database_url(name))
        migrate.upgrade(engine)
        engine.dispose()
        with server.connect() as connection:
            template = _MariaDBTemplate(name, *_schema_of(connection, name))
            template.clone_into(probe)
            copied = _schema_of(connection, probe)

            def rows(db: str) -> list:
                return [
                    connection.execute(text(f"SELECT * FROM `{db}`.`{table}`")).all()
                    for table in template.filled
                ]

            same_rows = rows(name) == rows(probe)
        probe_engine = make_engine(_database_url(probe))
        up_to_date = migrate.status(probe_engine).up_to_date
        probe_engine.dispose()
        if copied != (template.tables, template.views, template.filled) or not same_rows:
            pytest.fail("a copy of the migrated MariaDB template differs from it", pytrace=False)
        if not up_to_date:
            pytest.fail("a copy of the migrated MariaDB template is not up to date")
        yield template
    finally:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{probe}`"))
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        server.dispose()


def _test_key(node: pytest.Item) -> str:
    return f"{node.path.name}::{getattr(node, 'originalname', node.name)}"


@pytest.fixture
def engine(request, db_url) -> Iterator[Engine]:
    """A migrated database on each engine in turn: a copy of the session's template."""
    url = make_url(db_url)
    if _test_key(request.node) in MIGRATION_TESTS:
        eng = make_engine(db_url)
        migrate.upgrade(eng)
    elif url.get_backend_name() == "sqlite":
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), url.database)
        eng = make_engine(db_url)
    else:
        request.getfixturevalue("_mariadb_template").clone_into(url.database)
        eng = make_engine(db_url)
    yield eng
    eng.dispose()


# --- VirusTotal emulator ------------------------------------------------------------

SEEDS = Path(__file__).resolve().parents[1] / "src/vtguardian/testing/vt_seeds.json"


@pytest.fixture
def vt_emulator() -> Iterator[EmulatorServer]:
    """The emulator on a free loopback port, seeded with known answers."""
    emulator = VirusTotalEmulator(seeds=load_seed_file(SEEDS))
    with EmulatorServer(emulator) as server:
        yield server


# --- markers ----------------------------------------------------------------------------

#: Campaigns of real processes, servers and many iterations (each 5 s or more on the 2-core
#: machine): whole modules (None) or the named tests of a module. Longest first: they are
#: also run first, in this order.
SLOW: dict[str, set[str] | None] = {
    "test_benchmarks.py": None,  # the benchmark scripts end to end
    "test_ingest_robustness.py": {
        "test_memory_kept_across_batches_does_not_grow_with_distinct_iocs",  # 40,000 IoCs
        "test_a_log_rotated_twice_while_down_loses_no_generation",  # kill -9, 20,000 lines
        "test_a_one_off_ingest_stops_on_sigterm_and_resumes_exactly",
    },
    "test_kill_nine.py": None,  # kill -9 at 20 points of an ingest and of a worker
    "test_kill_nine_run.py": None,  # kill -9 of run at 10 points while it follows a log
    "test_db_restart.py": None,  # a private MariaDB server installed, stopped, restarted
    "test_db_restart_run.py": None,  # the same under `vtguardian run`
    "test_api_under_load.py": None,  # 300 requests while an ingest writes
    "test_api_schemathesis.py": None,  # generated requests against every operation
    "test_lookup.py": {
        "test_three_worker_processes_share_the_quota_on_mariadb",
        "test_faults_lose_nothing_and_repeat_no_success",
    },
    "test_cli.py": {"test_demo_runs_the_pipeline_offline_to_the_served_page"},
    "test_ingest_crash.py": {"test_kill_minus_9_then_resume_gives_identical_counts"},
    "test_concurrency.py": {"test_four_processes_lose_no_increment"},
    "test_vt_fault_campaign.py": None,  # fault storms through vt-py, per engine
    "test_daemon.py": None,  # `vtguardian run` as a process: follow, look up, serve, SIGTERM
}

#: Fixtures that reach a MariaDB server (the shared one, or a private one it starts).
_MARIADB_FIXTURES = {"mariadb_url", "private_mariadb"}


def _slow_rank(item: pytest.Item) -> int | None:
    """The place of ``item``'s module in SLOW if it is a slow test, else None."""
    names = SLOW.get(item.path.name, set())
    if names is None or getattr(item, "originalname", item.name) in names:
        return list(SLOW).index(item.path.name)
    return None


def _uses_chromium(function: object, module: types.ModuleType, seen: set[int]) -> bool:
    """Whether ``function``, or a function of its module it calls (however deep), names
    Chromium: the ``chromium`` helper, a ``CHROMIUM`` path, a ``_browser`` wrapper of them."""
    function = getattr(function, "__wrapped__", function)
    code = getattr(function, "__code__", None)
    if code is None or id(code) in seen:
        return False
    seen.add(id(code))
    codes = [code]
    while codes:
        current = codes.pop()
        codes += [c for c in current.co_consts if isinstance(c, types.CodeType)]
        for name in current.co_names:
            if "chromium" in name.lower():
                return True
            value = getattr(module, name, None)
            if getattr(value, "__module__", None) == module.__name__ and _uses_chromium(
                value, module, seen
            ):
                return True
    return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if (callspec and callspec.params.get("db_url") == "mariadb") or (
            fixtures & _MARIADB_FIXTURES
        ):
            item.add_marker(pytest.mark.mariadb)
        function = getattr(item, "function", None)
        if function is not None and _uses_chromium(function, item.module, set()):
            item.add_marker(pytest.mark.browser)
        if _slow_rank(item) is not None:
            item.add_marker(pytest.mark.slow)
    # The long campaigns first, longest first: with several workers (-n) the many short
    # tests then fill in around them, instead of a campaign starting last.
    ranks = {item.nodeid: _slow_rank(item) for item in items}
    items.sort(key=lambda item: len(SLOW) if ranks[item.nodeid] is None else ranks[item.nodeid])
