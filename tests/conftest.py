"""Shared fixtures: every store test runs on SQLite and on the real MariaDB.

MariaDB is not optional: when it cannot be reached the tests fail with the
reason, they never skip, so CI cannot go green without the second engine.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from vtguardian.store import migrate
from vtguardian.store.engine import make_engine
from vtguardian.testing.vt_content import load_seed_file
from vtguardian.testing.vt_emulator import EmulatorServer, VirusTotalEmulator

MARIADB_URL = os.environ.get("VTGUARDIAN_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


def _mariadb_server() -> Engine:
    server = create_engine(make_url(MARIADB_URL).set(database=None), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"MariaDB at {MARIADB_URL} is unreachable: {exc}", pytrace=False)
    return server


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database, dropped after the test."""
    server = _mariadb_server()
    name = f"vtg_test_{uuid.uuid4().hex[:12]}"
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield make_url(MARIADB_URL).set(database=name).render_as_string(hide_password=False)
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


@pytest.fixture
def engine(db_url) -> Iterator[Engine]:
    """A migrated database on each engine in turn."""
    eng = make_engine(db_url)
    migrate.upgrade(eng)
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
