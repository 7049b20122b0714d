"""``vtguardian db backup``: a consistent copy of a SQLite database while it is in use.

SQLite's online backup API copies the pages of one snapshot: writers (``run``
ingesting, a lookup worker) go on meanwhile, and the copy holds exactly what
was committed when it finished. The copy is written beside the target and
renamed into place, so a half-written backup never stands under the given name.
MariaDB has its own tool for this (``mariadb-dump --single-transaction``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from sqlalchemy import Engine

from vtguardian.errors import UserError
from vtguardian.store.retention import sqlite_file

MARIADB_DUMP = "mariadb-dump --single-transaction --routines --databases NAME > FILE.sql"
# Pages per step: the source is read-locked only while a step copies them.
STEP_PAGES = 4096


def backup_sqlite(engine: Engine, target: Path) -> int:
    """Copy the database to ``target``; returns its size in bytes."""
    source = sqlite_file(engine)
    if source is None:
        raise UserError("db backup copies a SQLite database; for MariaDB use: " + MARIADB_DUMP)
    if not source.is_file():
        raise UserError(f"no database at {source}")
    if target.resolve() == source.resolve():
        raise UserError("the backup must not overwrite the database itself")
    if not target.parent.is_dir():
        raise UserError(f"folder {target.parent} does not exist")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with (
            contextlib.closing(sqlite3.connect(source)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            src.execute("PRAGMA busy_timeout=60000")
            src.backup(dst, pages=STEP_PAGES)
            # A single file: the copy needs no WAL beside it.
            dst.execute("PRAGMA journal_mode=DELETE")
            (check,) = dst.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise UserError(f"the copy failed its check: {check}")
        partial.replace(target)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot back up {source} to {target}: {exc}") from None
    return target.stat().st_size
