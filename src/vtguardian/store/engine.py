"""Engines for both databases, write transactions, and clear errors when they are away.

SQLite runs in WAL mode so the web page can read while a collector writes;
write transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the
lock instead of failing halfway. MariaDB uses READ COMMITTED, which takes no gap
locks on upserts and so avoids most deadlocks between collectors; the few left
are retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from vtguardian.config import mask_url
from vtguardian.errors import ConfigError, DatabaseUnavailable, UserError
from vtguardian.retry import retrying

T = TypeVar("T")

_WRITE_OPTION = "vtguardian_write"
# MySQL: 1213 deadlock, 1205 lock wait timeout. Both roll back; the whole unit is redone.
_MYSQL_RETRYABLE = {1213, 1205}
# MySQL: server gone or unreachable.
_MYSQL_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 1045, 1049, 1053}


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def describe_url(url: str) -> str:
    """A database URL to show: password, user info and secret options masked."""
    return mask_url(make_url(url).render_as_string(hide_password=False), keep_user=True)


def make_engine(url: str) -> Engine:
    """Create the engine for a configured URL (no connection is made yet)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    query = dict(parsed.query)
    query.setdefault("charset", "utf8mb4")
    parsed = parsed.set(query=query)
    try:
        engine = create_engine(
            parsed,
            pool_pre_ping=True,
            pool_recycle=3600,
            isolation_level="READ COMMITTED",
        )
    except (ValueError, TypeError) as exc:  # e.g. connect_timeout=abc
        raise ConfigError(f"database.url: an option cannot be used: {exc}") from None
    event.listen(engine, "do_connect", _connect_or_explain)
    return engine


def _connect_or_explain(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    """Connect; options in the URL the driver cannot use (an unknown charset, a missing
    ``ssl_ca`` file, ``connect_timeout=abc``) fail there with a Python error, not a
    database one: they become one line naming the options, not a traceback."""
    from pymysql.charset import charset_by_name

    charset = cparams.get("charset")
    if charset and charset_by_name(charset) is None:
        raise ConfigError(f"database.url: unknown charset {charset!r}")
    try:
        return dialect.loaded_dbapi.connect(*cargs, **cparams)
    except dialect.loaded_dbapi.Error:
        raise  # a database error: SQLAlchemy reports it, and waits out a restart
    except (ValueError, TypeError, LookupError, OSError) as exc:
        options = ", ".join(sorted(k for k in cparams if k not in ("host", "user", "password")))
        raise ConfigError(
            f"database.url: the connection options cannot be used ({options}): "
            f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from None


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir():
            raise DatabaseUnavailable(f"cannot open database {url}: folder {parent} does not exist")
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); pysqlite's implicit transactions would
        # otherwise start too late to take the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # A new, empty file gives freed pages back (store/retention.py). Only then: on
        # an existing file the pragma would wait for the write lock, and change nothing.
        if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()
        # MySQL's bit functions, which the dashboard queries use on the client bit sets.
        dbapi_connection.create_function("bit_count", 1, _bit_count, deterministic=True)
        dbapi_connection.create_aggregate("bit_or", 1, _BitOr)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _bit_count(value: int | None) -> int | None:
    return None if value is None else (value & (2**64 - 1)).bit_count()


class _BitOr:
    def __init__(self) -> None:
        self.value = 0

    def step(self, value: int | None) -> None:
        if value is not None:
            self.value |= value

    def finalize(self) -> int:
        return self.value


def check_connection(engine: Engine) -> None:
    """Connect once, turning any failure into one line the user can act on."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise unavailable(engine, exc) from None


def unavailable(engine: Engine, exc: DBAPIError) -> UserError:
    """One line for a database failure: unreachable, or refused what we asked."""
    reason = str(exc.orig) if exc.orig is not None else str(exc)
    reason = " ".join(reason.split())
    url = describe_url(engine.url.render_as_string(hide_password=False))
    if isinstance(exc, OperationalError) and (is_disconnect(exc) or is_sqlite(engine)):
        return DatabaseUnavailable(f"cannot reach database {url}: {reason}")
    return UserError(f"database {url} refused the operation: {reason}")


def is_retryable(exc: DBAPIError) -> bool:
    """Deadlocks, lock timeouts and a locked SQLite file: redo the transaction."""
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    if code in _MYSQL_RETRYABLE:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(orig)


def is_disconnect(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    return bool(exc.connection_invalidated) or code in _MYSQL_UNREACHABLE


def wait_for_database(engine: Engine, patience: float) -> None:
    """After a lost connection: drop the pool and wait (backing off up to 10 s) until
    the server answers again; after ``patience`` seconds, one clear error.

    Callers then redo their unit of work from what is committed (a stored offset, a
    queue claim), never from what they believe they wrote: a commit that was cut
    off may or may not have happened.
    """
    engine.dispose()
    try:
        for attempt in retrying(
            lambda exc: isinstance(exc, DBAPIError), base=0.25, cap=10.0, within=patience
        ):
            with attempt, engine.connect() as connection:
                connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise unavailable(engine, exc) from None


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One atomic unit of writes (``BEGIN IMMEDIATE`` on SQLite)."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE_OPTION: True})
        with connection.begin():
            yield connection


@contextmanager
def foreign_keys_unchecked(connection: Connection) -> Iterator[None]:
    """MySQL skips its foreign-key checks for the writes inside, then checks again.

    Only for writes whose every reference the same transaction has just upserted
    (an ingest's sightings, rollups, queue entries and alerts, which point at the
    IoCs and clients it upserts first): the upsert locks those rows until the
    commit, so they cannot vanish meanwhile, and the checks would only look up
    what is known to be there. On MariaDB they were 5-15 % of the server's
    work in an ingest. SQLite cannot switch them inside a transaction and checks
    only when asked (``PRAGMA foreign_keys``), so it is left as it is.
    """
    if is_sqlite(connection):
        yield
        return
    # A session variable: put back whatever the pooled connection had, even on error.
    connection.exec_driver_sql(
        "SET @vtguardian_fk_checks = @@SESSION.foreign_key_checks, foreign_key_checks = 0"
    )
    try:
        yield
    finally:
        # A lost connection takes its session with it; trying to reset it would only
        # hide the disconnect that the caller waits out and retries.
        if not connection.invalidated:
            connection.exec_driver_sql("SET foreign_key_checks = @vtguardian_fk_checks")


def run_in_transaction(engine: Engine, work: Callable[[Connection], T], attempts: int = 8) -> T:
    """Run ``work`` atomically, redoing it after a deadlock or lock timeout.

    ``work`` must be safe to repeat: it runs in a fresh transaction each time and
    nothing of a failed attempt is committed.
    """
    for attempt in retrying(
        lambda exc: isinstance(exc, DBAPIError) and is_retryable(exc),
        base=0.04,
        cap=2.0,
        attempts=attempts,
        jitter=True,  # writers that deadlocked together try again apart
    ):
        with attempt, write_transaction(engine) as connection:
            return work(connection)
    raise AssertionError("unreachable: the last attempt returns or raises")
