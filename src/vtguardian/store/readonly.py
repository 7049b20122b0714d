"""A read-only database account for Grafana: it can look, never change anything.

Grafana runs whatever SQL a dashboard contains; its account must not be able
to write, drop or read other databases.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from vtguardian.errors import InvalidInput
from vtguardian.store.engine import is_sqlite, unavailable

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_HOST = re.compile(r"[A-Za-z0-9_.%:-]{1,255}")


def grant_readonly(engine: Engine, user: str, password: str, host: str = "%") -> str:
    """Create or update ``user@host`` with SELECT on this database only; returns its name."""
    if is_sqlite(engine):
        raise InvalidInput(
            "grant-readonly needs MariaDB/MySQL; Grafana reads SQLite files read-only"
        )
    if not _NAME.fullmatch(user) or not _HOST.fullmatch(host):
        raise InvalidInput("--user and --host may only contain letters, digits and . _ - % :")
    database = engine.url.database
    if not database or not _NAME.fullmatch(database):
        raise InvalidInput("database.url must name a database")
    account = f"'{user}'@'{host}'"
    try:
        with engine.begin() as connection:
            connection.execute(
                text(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY :password"),
                {"password": password},
            )
            connection.execute(
                text(f"ALTER USER {account} IDENTIFIED BY :password"), {"password": password}
            )
            connection.execute(text(f"GRANT SELECT ON `{database}`.* TO {account}"))
    except DBAPIError as exc:
        raise unavailable(engine, exc) from None
    return database
