"""A SQLite database on a small tmpfs that fills up during an ingest: one clear
line, the database stays valid, and once there is room a later run completes
with exactly the counts of a run that never ran out of space."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sources_helpers import reference_state, stored_state
from test_ingest_crash import _write_eve
from vtguardian.store.engine import make_engine


@pytest.fixture
def small_tmpfs():
    if os.geteuid() != 0:
        pytest.fail("needs root to mount a tmpfs")
    mountpoint = Path(tempfile.mkdtemp(prefix="vtg-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mountpoint)], check=True)
    yield mountpoint
    subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)
    mountpoint.rmdir()


def test_a_full_disk_is_one_clear_error_and_a_later_run_completes(small_tmpfs, tmp_path):
    path = tmp_path / "eve.json"
    _write_eve(path)
    expected = reference_state(tmp_path, path)
    database = small_tmpfs / "vtguardian.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")},
        "VTGUARDIAN_DATABASE__URL": f"sqlite:///{database}",
        "VTGUARDIAN_INGEST__BATCH_LINES": "1000",
        "VTGUARDIAN_INGEST__PARALLEL_MIN_MB": "1000",
    }
    command = [sys.executable, "-m", "vtguardian", "ingest", "-s", "suricata", str(path)]
    full = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert full.returncode == 3, full.stdout + full.stderr
    lines = full.stderr.strip().splitlines()
    assert lines[-1] == "vtguardian: database error: database or disk is full", lines
    assert "Traceback" not in full.stderr
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = connection.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
    assert stored > 0  # the batches before the disk filled are kept
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], check=True)
    later = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert later.returncode == 0, later.stderr
    engine = make_engine(f"sqlite:///{database}")
    assert stored_state(engine) == expected
    engine.dispose()
