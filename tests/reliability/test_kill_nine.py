"""kill -9 at 20 seeded points of an ingest and of a lookup worker, then let them
finish: the final state must equal an uninterrupted run, on both engines."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from sqlalchemy import text

from sources_helpers import ingest, lookup_outcome, stored_state
from test_ingest_crash import _position, _write_eve
from test_lookup import _queue_domains
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine
from vtguardian.testing.vt_emulator import DEFAULT_KEY

KILLS = 20


def _rollups(engine) -> tuple:
    with engine.connect() as connection:
        days = connection.execute(
            text(
                "SELECT i.value, d.source, d.client_word, d.clients_mask, d.hits, d.blocked "
                "FROM ioc_days d JOIN iocs i ON i.id = d.ioc_id"
            )
        ).all()
        hours = connection.execute(text("SELECT source, hits, blocked FROM source_hours")).all()
    return sorted(tuple(r) for r in days), sorted(tuple(r) for r in hours)


def _kill_when(command: list[str], env: dict[str, str], point_reached) -> int:
    """Start ``command`` and SIGKILL it once ``point_reached()``; 1 if it was killed."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not point_reached() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return int(killed)


def test_ingest_killed_at_20_points_ends_identical(db_url, tmp_path):
    path = tmp_path / "eve.json"
    _write_eve(path)
    reference = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate.upgrade(reference)
    ingest(reference, "suricata", path, batch_lines=1_000)  # kept open: rollups compared too
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    env = {
        **os.environ,
        "VTGUARDIAN_DATABASE__URL": db_url,
        "VTGUARDIAN_INGEST__BATCH_LINES": "1000",
        "VTGUARDIAN_INGEST__PARALLEL_MIN_MB": "1000",
    }
    command = [sys.executable, "-m", "vtguardian", "ingest", "--json", "-s", "suricata", str(path)]
    size = path.stat().st_size
    points = sorted(random.Random(20).uniform(0.02, 0.95) for _ in range(KILLS))
    kills = 0
    for fraction in points:
        kills += _kill_when(command, env, lambda f=fraction: _position(engine) >= size * f)
    assert kills >= KILLS - 2, kills  # neighbouring points can fall in one batch
    finish = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    assert stored_state(engine) == stored_state(reference)
    assert _rollups(engine) == _rollups(reference)
    engine.dispose()
    reference.dispose()


def test_worker_killed_at_20_points_answers_everything_once(db_url, vt_emulator, tmp_path):
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    names = [f"kill{n}.example.com" for n in range(40)]
    _queue_domains(engine, names)
    emulator = vt_emulator.emulator
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")},
        "VTGUARDIAN_DATABASE__URL": db_url,
        "VTGUARDIAN_VIRUSTOTAL__HOST": vt_emulator.url,
        "VTGUARDIAN_VIRUSTOTAL__PER_MINUTE": "100000",
        "VTGUARDIAN_VIRUSTOTAL__PER_DAY": "100000",
        "VTGUARDIAN_QUEUE__LEASE_SECONDS": "1",  # a killed worker's claim frees up fast
        "VT_API_KEY": DEFAULT_KEY,
    }
    command = [sys.executable, "-m", "vtguardian", "worker", "--once"]
    rng = random.Random(9)
    kills = 0
    for _ in range(KILLS):
        target = len(emulator.calls()) + rng.randint(0, 3)
        kills += _kill_when(command, env, lambda t=target: len(emulator.calls()) >= t)
    finish = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    assert kills >= KILLS // 2, kills
    answered, queued, counted = lookup_outcome(engine)
    assert answered == set(names) and queued == 0  # everything answered, once each
    # Every request that reached the service was counted; a kill between sending and
    # storing costs one more (counted) request for that IoC, never an uncounted one.
    assert counted == len(emulator.calls())
    engine.dispose()
