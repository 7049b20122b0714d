"""kill -9 of ``vtguardian run`` while its follower reads a growing log on inotify's
word, at 6 seeded points, each followed by a restart: the final state must equal one
uninterrupted ingest of the whole file, on both engines."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from sources_helpers import reference_state, stored_state
from test_ingest_crash import _position, _write_eve
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine

KILLS = 6
BURST_LINES = 300


def _start(config) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")}
    env.pop("VT_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "vtguardian", "--config", str(config), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _append(path, lines: list[bytes]) -> None:
    """Written the way a logger does: bursts of lines, a few milliseconds apart."""
    for start in range(0, len(lines), BURST_LINES):
        with path.open("ab") as handle:
            handle.write(b"".join(lines[start : start + BURST_LINES]))
        time.sleep(0.005)


def _until(done, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_run_killed_while_following_a_growing_log_ends_identical(db_url, tmp_path):
    whole = tmp_path / "whole.json"
    _write_eve(whole)
    lines = whole.read_bytes().splitlines(keepends=True)
    eve = tmp_path / "eve.json"
    eve.write_bytes(b"")
    config = tmp_path / "vtguardian.toml"
    config.write_text(
        f"""
[database]
url = "{db_url}"

[ingest]
batch_lines = 500

[[ingest.sources]]
source = "suricata"
path = "{eve}"

[run]
web = false
lookups = false

# The log is from 2024: run's daily prune would rightly remove its hourly rows,
# which an uninterrupted ingest (the reference) keeps.
[retention]
enabled = false
"""
    )
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    rng = random.Random(30)
    cuts = sorted(rng.sample(range(1, len(lines)), KILLS))
    rounds = [lines[a:b] for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    kills = 0
    for part in rounds[:-1]:
        before = eve.stat().st_size
        process = _start(config)
        _append(eve, part)
        grown = sum(map(len, part))
        target = before + int(grown * rng.uniform(0.05, 0.95))
        _until(lambda t=target, p=process: _position(engine) >= t or p.poll() is not None)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    process = _start(config)
    _append(eve, rounds[-1])
    size = eve.stat().st_size
    assert _until(lambda: _position(engine) >= size), "the last follower never caught up"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert kills >= KILLS - 2, kills
    assert stored_state(engine) == reference_state(tmp_path, eve)
    engine.dispose()
