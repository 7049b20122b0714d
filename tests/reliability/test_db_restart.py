"""A MariaDB restart in the middle of an ingest and of a lookup worker.

The test runs its own MariaDB server (own data directory and port; the shared
one is never touched), stops it mid-run, keeps it down, starts it again. The
collector and the worker wait and carry on: exit 0, no traceback, and the same
final state as a run without the restart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wait_for
from sources_helpers import lookup_outcome, reference_state, stored_state
from test_ingest_crash import _position, _write_eve
from test_lookup import _queue_domains
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine
from vtguardian.testing.vt_emulator import DEFAULT_KEY

MARIADBD = "/usr/sbin/mariadbd"


class PrivateMariaDB:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen | None = None
        shutil.chown(folder, "mysql", "mysql")
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", "--user=mysql",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/vtg"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.data}", "--user=mysql",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.folder / 'mysqld.sock'}", "--skip-log-bin",
             "--innodb-buffer-pool-size=64M"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._accepting, 60, "the private MariaDB to start", interval=0.05)

    def _accepting(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


@pytest.fixture
def private_mariadb() -> Iterator[PrivateMariaDB]:
    if os.geteuid() != 0 or not Path(MARIADBD).exists():
        pytest.fail("needs root and the MariaDB server binary (Debian mariadb-server)")
    # Not under pytest's tmp_path: the server runs as user mysql, which cannot enter it.
    folder = Path(tempfile.mkdtemp(prefix="vtg-mariadb-"))
    server = PrivateMariaDB(folder)
    server.start()
    subprocess.run(
        ["mariadb", "-uroot", "-h127.0.0.1", f"-P{server.port}", "-e", "CREATE DATABASE vtg"],
        check=True,
        timeout=30,
    )
    yield server
    if server.process and server.process.poll() is None:
        server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _restart_when(server: PrivateMariaDB, ready, down_seconds: float = 2.0) -> None:
    deadline = time.monotonic() + 120
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    server.stop()
    time.sleep(down_seconds)
    server.start()


def test_ingest_waits_for_a_restarted_database_and_loses_nothing(private_mariadb, tmp_path):
    path = tmp_path / "eve.json"
    _write_eve(path)
    expected = reference_state(tmp_path, path)
    engine = make_engine(private_mariadb.url)
    migrate.upgrade(engine)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")},
        "VTGUARDIAN_DATABASE__URL": private_mariadb.url,
        "VTGUARDIAN_INGEST__BATCH_LINES": "1000",
        "VTGUARDIAN_INGEST__PARALLEL_MIN_MB": "1000",
    }
    command = [sys.executable, "-m", "vtguardian", "ingest", "--json", "-s", "suricata", str(path)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    size = path.stat().st_size
    _restart_when(
        private_mariadb, lambda: _position(engine) > size * 0.3 or proc.poll() is not None
    )
    assert proc.poll() is None, "the ingest finished before the restart"
    _stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    engine.dispose()
    assert stored_state(engine) == expected


def test_worker_waits_for_a_restarted_database_and_answers_everything(private_mariadb, vt_emulator):
    engine = make_engine(private_mariadb.url)
    migrate.upgrade(engine)
    names = [f"restart{n}.example.com" for n in range(40)]
    _queue_domains(engine, names)
    emulator = vt_emulator.emulator
    emulator.configure({"faults": {"slow_rate": 1.0, "slow_seconds": 0.05}})
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")},
        "VTGUARDIAN_DATABASE__URL": private_mariadb.url,
        "VTGUARDIAN_VIRUSTOTAL__HOST": vt_emulator.url,
        "VTGUARDIAN_VIRUSTOTAL__PER_MINUTE": "100000",
        "VTGUARDIAN_QUEUE__LEASE_SECONDS": "2",
        "VT_API_KEY": DEFAULT_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "vtguardian", "worker", "--once"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _restart_when(private_mariadb, lambda: len(emulator.calls()) >= 12 or proc.poll() is not None)
    assert proc.poll() is None, f"the worker finished before the restart: {proc.communicate()[1]!r}"
    _stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    engine.dispose()
    answered, queued, counted = lookup_outcome(engine)
    assert answered == set(names) and queued == 0
    assert counted == len(emulator.calls())  # nothing sent without being counted
