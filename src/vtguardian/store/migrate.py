"""Alembic, driven from code: the migrations ship inside the package.

Users run ``vtguardian db upgrade``; there is no alembic.ini to find or edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from vtguardian.store.engine import unavailable

MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class Status:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(connection: object | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def status(engine: Engine) -> Status:
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise unavailable(engine, exc) from None
    return Status(current=current, head=head_revision())


def upgrade(engine: Engine, revision: str = "head") -> Status:
    """Create or migrate the schema; running it again on an up-to-date database is a no-op."""
    _run(engine, command.upgrade, revision)
    return status(engine)


def downgrade(engine: Engine, revision: str) -> Status:
    _run(engine, command.downgrade, revision)
    return status(engine)


def _run(engine: Engine, action: object, revision: str) -> None:
    try:
        with engine.begin() as connection:
            action(_config(connection), revision)  # type: ignore[operator]
    except DBAPIError as exc:
        raise unavailable(engine, exc) from None
