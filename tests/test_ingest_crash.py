"""kill -9 in the middle of a large ingest, then restart: the same result as no crash."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import orjson
import pytest
from sqlalchemy import text

from sources_helpers import ingest, stored_state
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine

LINES = 60_000


def _write_eve(path) -> None:
    rng = random.Random(5)
    with path.open("wb") as handle:
        for n in range(LINES):
            hour = 10 + n * 6 // LINES
            event = {
                "timestamp": f"2024-05-01T{hour:02d}:{n % 60:02d}:00.000000+0000",
                "event_type": "dns",
                "src_ip": f"192.168.1.{rng.randrange(10, 60)}",
                "dest_ip": "192.168.1.1",
                "dns": {
                    "type": "query",
                    "rrname": f"d{int(rng.paretovariate(1.2)) % 5000}.example.com",
                },
            }
            if n % 997 == 0:
                handle.write(b"{broken json\n")
            handle.write(orjson.dumps(event) + b"\n")


def _position(engine) -> int:
    with engine.connect() as connection:
        try:
            value = connection.execute(text("SELECT MAX(position) FROM source_offsets")).scalar()
        except Exception:
            return 0
    return int(value or 0)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "parse-in-child"])
def test_kill_minus_9_then_resume_gives_identical_counts(db_url, tmp_path, parallel):
    path = tmp_path / "eve.json"
    _write_eve(path)
    reference = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate.upgrade(reference)
    ingest(reference, "suricata", path, batch_lines=2_000)
    expected = stored_state(reference)

    engine = make_engine(db_url)
    migrate.upgrade(engine)
    env = {
        **os.environ,
        "VTGUARDIAN_DATABASE__URL": db_url,
        "VTGUARDIAN_INGEST__BATCH_LINES": "2000",
        "VTGUARDIAN_INGEST__PARALLEL_MIN_MB": "0" if parallel else "1000",
    }
    command = [sys.executable, "-m", "vtguardian", "ingest", "--json", "-s", "suricata", str(path)]
    size = path.stat().st_size
    kills = 0
    for fraction in (0.2, 0.55):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while _position(engine) < size * fraction and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == 2, "the ingest finished before it could be killed"
    assert 0 < _position(engine) < size
    finish = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    actual = stored_state(engine)
    for got, want, name in zip(
        actual, expected, ("sightings", "queue", "errors", "alerts"), strict=True
    ):
        if got != want:
            extra = set(got) - set(want) if isinstance(got, list) else got
            missing = set(want) - set(got) if isinstance(want, list) else want
            raise AssertionError(f"{name}: extra {sorted(extra)[:3]} missing {sorted(missing)[:3]}")
    engine.dispose()
    reference.dispose()
