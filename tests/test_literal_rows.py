"""Bulk upserts to MariaDB with values written into the statement (store/literal_rows.py).

Whatever the values, what is read back must be exactly what was written: rows that
are safe to write as literals are, and any other row goes through the driver's own
escaping, so no value can change the statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, String, Table, select

from vtguardian.store.engine import make_engine
from vtguardian.store.literal_rows import execute_as_literals
from vtguardian.store.schema import Timestamp
from vtguardian.store.upsert import _statement, upsert_rows

probe = Table(
    "literal_probe",
    MetaData(),
    Column("k", Integer, primary_key=True, autoincrement=False),
    Column("n", BigInteger),
    Column("s", String(64)),
    Column("d", Timestamp),
)
COLUMNS = ("k", "n", "s", "d")


@pytest.fixture
def maria(mariadb_url) -> Iterator[Engine]:
    engine = make_engine(mariadb_url)
    probe.create(engine)
    yield engine
    engine.dispose()


def _stored(engine: Engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(probe).order_by(probe.c.k))]


def _clear(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(probe.delete())


texts = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from(["'", "\\", "\0", "%", '"']),
    max_size=20,
)
values = st.tuples(
    st.integers(-(2**63), 2**63 - 1) | st.none(),
    texts | st.none(),
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)) | st.none(),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(values, min_size=1, max_size=30))
def test_whatever_the_values_they_are_stored_exactly(maria, rows):
    _clear(maria)
    keyed = [(k, *row) for k, row in enumerate(rows)]
    with maria.begin() as connection:
        upsert_rows(connection, probe, COLUMNS, keyed, keys=1, replace=["n", "s", "d"])
    assert _stored(maria) == keyed


def _run_as_literals(engine: Engine, rows: list[tuple]) -> bool:
    with engine.begin() as connection:
        statement = _statement(connection, probe, ["k"], [], ["n", "s", "d"], [], [], [])
        sql = str(statement.compile(dialect=connection.dialect, column_keys=list(COLUMNS)))
        return execute_as_literals(connection, sql, COLUMNS, rows) is not None


def test_returning_reads_back_every_row_written_across_statements(maria, monkeypatch):
    """Inserted and updated rows alike, from each of the statements a large upsert is
    cut into: what ensure_iocs takes its ids from instead of a query."""
    monkeypatch.setattr("vtguardian.store.literal_rows.MAX_STATEMENT_BYTES", 200)
    with maria.begin() as connection:
        upsert_rows(connection, probe, COLUMNS, [(k, k, "old", None) for k in range(0, 40, 2)], 1)
    rows = [(k, 100 + k, "new", None) for k in range(40)]
    with maria.begin() as connection:
        returned = upsert_rows(
            connection, probe, COLUMNS, rows, keys=1, increment=["n"], returning=["k", "n"]
        )
    stored = [(k, n) for k, n, _s, _d in _stored(maria)]
    assert sorted(returned) == stored
    assert stored == [(k, 100 + k + (k if k % 2 == 0 else 0)) for k in range(40)]


def test_without_returning_on_the_server_the_caller_is_told(maria, monkeypatch):
    monkeypatch.setattr(maria.dialect, "insert_returning", False)  # as on MySQL
    with maria.begin() as connection:
        returned = upsert_rows(
            connection, probe, COLUMNS, [(1, 1, "x", None)], keys=1, returning=["k"]
        )
    assert returned is None
    assert _stored(maria) == [(1, 1, "x", None)]


def test_ingest_like_rows_are_written_as_literals(maria):
    rows = [
        (1, 2**63 - 1, "suricata", datetime(2024, 5, 1, 10, 0, 0, 250000)),
        (2, None, "2024-05-01 10:59:59.000001", None),
        (3, -5, "ünïcode 100%", datetime(2024, 5, 1)),
    ]
    assert _run_as_literals(maria, rows)
    assert _stored(maria) == rows


@pytest.mark.parametrize(
    "hostile",
    ["x'), (99, 1, 'pwned', NULL) -- ", "back\\slash", "nul\0byte", "it''s"],
)
def test_a_value_that_could_change_the_statement_is_left_to_the_driver(maria, hostile):
    rows = [(1, 1, "fine", None), (2, 2, hostile, None)]
    assert not _run_as_literals(maria, rows)
    assert _stored(maria) == []  # nothing was run
    with maria.begin() as connection:
        upsert_rows(connection, probe, COLUMNS, rows, keys=1, replace=["n", "s", "d"])
    assert _stored(maria) == rows


@pytest.mark.parametrize("odd", [True, 1.5, b"bytes", datetime(2024, 5, 1).astimezone()], ids=str)
def test_values_of_other_types_are_left_to_the_driver(maria, odd):
    assert not _run_as_literals(maria, [(1, 1, "fine", None), (2, 2, "fine", odd)])
    assert _stored(maria) == []
