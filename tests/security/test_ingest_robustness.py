"""Issue #24: what an attacker, or just a real installation, can do to the ingest.

Each test here failed on the code before its fix: a log rotated twice while the
follower was down lost a whole generation; the memory kept across batches grew
with every distinct IoC of the run; a rotated ``.gz`` was decompressed again from
its start for every batch; a one-off ``vtguardian ingest`` ignored SIGTERM.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from helpers import VTGUARDIAN, run_cli
from sources_helpers import ingest, reference_state, stored_hits, stored_state
from test_ingest_crash import LINES, _position, _write_eve
from vtguardian.ingest import offsets
from vtguardian.iocs import Classifier
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine

# --- 6. a log rotated twice while the follower is down -------------------------------

# Generation c is large enough, in batches of BATCH lines, for a restart to be
# killed while it is half read.
C_LINES = 20_000
BATCH = 200


def _pihole_lines(letter: str, count: int) -> bytes:
    return b"".join(
        f"Dec  4 09:{n % 60:02d}:00 dnsmasq[612]: query[A] {letter}{n}.example.com "
        "from 192.168.1.10\n".encode()
        for n in range(count)
    )


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def _compress(path: Path) -> None:
    """What logrotate's ``compress`` does to a rotated file."""
    with path.open("rb") as plain, gzip.open(f"{path}.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    path.unlink()


def _rotate_numbered(live: Path, _turn: int) -> None:
    """logrotate's default names with ``compress`` and ``delaycompress``: ``x.1``,
    ``x.2.gz``, ..."""
    folder = live.parent
    for n in range(8, 0, -1):
        for suffix in ("", ".gz"):
            older = folder / f"{live.name}.{n}{suffix}"
            if older.exists():
                os.rename(older, folder / f"{live.name}.{n + 1}{suffix}")
    if (folder / f"{live.name}.2").exists():
        _compress(folder / f"{live.name}.2")
    os.rename(live, folder / f"{live.name}.1")
    live.write_bytes(b"")


def _rotate_dated(live: Path, turn: int) -> None:
    """logrotate's ``dateext`` names with ``compress`` and ``delaycompress``:
    ``x-20261204.gz``, ``x-20261205``, ..."""
    for earlier in live.parent.glob(f"{live.name}-*[0-9]"):
        _compress(earlier)
    os.rename(live, live.parent / f"{live.name}-2026120{4 + turn}")
    live.write_bytes(b"")


def _stored_offset(engine: Engine, path: Path) -> tuple[str | None, int]:
    """(fingerprint, position) stored for ``path``; (None, 0) before the first batch."""
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT fingerprint, position FROM source_offsets WHERE path = :path"),
            {"path": str(path)},
        ).first()
    return (row.fingerprint, int(row.position)) if row else (None, 0)


def _kill_when(command: list[str], env: dict[str, str], reached) -> bool:
    """Start ``command``, SIGKILL it once ``reached()``; whether it was killed (it may
    end first)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not reached() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return killed


def _by_letter(engine: Engine) -> tuple[Counter, int]:
    """Hits per generation (the first letter of the name), and the most hits of any name."""
    hits = stored_hits(engine)
    letters: Counter = Counter()
    for (_kind, value), count in hits.items():
        letters[value[0]] += count
    return letters, max(hits.values())


@pytest.mark.parametrize("rotate", [_rotate_numbered, _rotate_dated], ids=["numbered", "dated"])
def test_a_log_rotated_twice_while_down_loses_no_generation(db_url, tmp_path, rotate):
    """100 ``a`` lines, kill -9, 50 ``b``, rotate, ``c``, rotate, 100 ``d``: the restart
    finishes the generation it was reading, then ``c``, then the live file; killed
    again half-way through ``c``, the next run resumes it exactly."""
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    live = tmp_path / "pihole.log"
    live.write_bytes(_pihole_lines("a", 100))
    env = {
        **os.environ,
        "VTGUARDIAN_DATABASE__URL": db_url,
        "VTGUARDIAN_INGEST__BATCH_LINES": str(BATCH),
        "VTGUARDIAN_INGEST__POLL_SECONDS": "0.05",
    }
    command = [*VTGUARDIAN, "ingest", "--json", "-s", "pihole-log", str(live)]
    size_a = live.stat().st_size
    follower = [*command, "--follow"]
    assert _kill_when(follower, env, lambda: _stored_offset(engine, live)[1] >= size_a)
    assert _stored_offset(engine, live)[1] == size_a

    _append(live, _pihole_lines("b", 50))
    rotate(live, 0)
    live.write_bytes(_pihole_lines("c", C_LINES))
    rotate(live, 1)
    live.write_bytes(_pihole_lines("d", 100))
    generation_c = next(p for p in tmp_path.iterdir() if p.name.endswith(("log.1", "05")))
    with generation_c.open("rb") as handle:
        head_c = offsets.fingerprint(handle)
    size_c = generation_c.stat().st_size

    def half_way_through_c() -> bool:
        head, position = _stored_offset(engine, live)
        return head == head_c and 0 < position < size_c

    killed = _kill_when(command, env, half_way_through_c)
    finish = run_cli("ingest", "--json", "-s", "pihole-log", str(live), env=env, timeout=300)
    assert finish.returncode == 0, finish.stderr
    again = run_cli("ingest", "--json", "-s", "pihole-log", str(live), env=env)
    assert json.loads(again.stdout)["lines"] == 0
    letters, most = _by_letter(engine)
    assert letters == {"a": 100, "b": 50, "c": C_LINES, "d": 100}
    assert most == 1, "a line was read twice"
    assert killed, "the restart read generation c before it could be killed half-way"
    engine.dispose()


# --- 7. memory bounded by the batch, not by the file or the uptime --------------------


def test_memory_kept_across_batches_does_not_grow_with_distinct_iocs(engine, tmp_path):
    """40,000 distinct public addresses in batches of 1,000: the objects alive after
    each stored batch must not pile up batch after batch (they did: every IoC of
    the run was kept in ``Totals.seen``, two objects each), and ``new_iocs`` still
    counts each IoC once.

    Addresses, not names: splitting a name caches its suffix in ``iocs.py`` (up to
    65,536 entries, bounded, and outside the ingest); the classifier gets a small
    cache for the same reason.
    """
    distinct = 40_000
    path = tmp_path / "list.txt"
    path.write_text("".join(f"23.{n >> 16}.{(n >> 8) & 255}.{n & 255}\n" for n in range(distinct)))
    alive: list[int] = []
    totals = ingest(
        engine,
        "plain",
        path,
        classifier=Classifier(cache_size=64),
        batch_lines=1_000,
        on_progress=lambda _done: alive.append(sys.getallocatedblocks()),
    )
    assert totals.hits == distinct and totals.new_iocs == distinct
    assert len(alive) == distinct // 1_000
    # After the first few batches (statement caches, the connection pool) nothing
    # should be added: today's bound is a tenth of an object per distinct IoC.
    growth = alive[-1] - alive[4]
    assert growth < (distinct - 5_000) // 10, f"{growth} objects kept across batches"

    # The count is of IoCs new to the database: a second list with 1,000 more of them.
    more = tmp_path / "more.txt"
    more.write_text("".join(f"23.{n >> 16}.{(n >> 8) & 255}.{n & 255}\n" for n in range(41_000)))
    again = ingest(engine, "plain", more, batch_lines=1_000)
    assert (again.hits, again.new_iocs) == (41_000, 1_000)


# --- 8. a rotated .gz backfilled in linear time; a one-off ingest that hears SIGTERM -----


def test_a_rotated_gz_is_decompressed_once_not_once_per_batch(engine, tmp_path):
    """A ``.1.gz`` of 100 batches: the gzip stream must not restart (decompress again
    from its first byte) for every batch, as it did when each stored batch took
    the file's fingerprint from its start again."""
    path = tmp_path / "list.txt"
    with gzip.open(f"{path}.1.gz", "wb") as handle:
        handle.write(b"".join(f"d{n}.example.net\n".encode() for n in range(5_000)))
    path.write_bytes(b"live.example.net\n")
    rewind = gzip._GzipReader._rewind.__code__
    restarts = 0

    def count(frame, event, _arg) -> None:
        nonlocal restarts
        if event == "call" and frame.f_code is rewind:
            restarts += 1

    sys.setprofile(count)
    try:
        totals = ingest(engine, "plain", path, batch_lines=50)
    finally:
        sys.setprofile(None)
    assert totals.hits == 5_001
    assert restarts <= 2, f"the gzip stream restarted {restarts} times for 100 batches"


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "parse-in-child"])
def test_a_one_off_ingest_stops_on_sigterm_and_resumes_exactly(db_url, tmp_path, parallel):
    """SIGTERM once some batches are stored: the ingest stores what it read, with its
    offset, and exits 0 long before the end; the next ingest ends with exactly what
    one uninterrupted ingest stores."""
    path = tmp_path / "eve.json"
    _write_eve(path)
    expected = reference_state(tmp_path, path)
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    env = {
        "VTGUARDIAN_DATABASE__URL": db_url,
        "VTGUARDIAN_INGEST__BATCH_LINES": "500" if parallel else "2000",
        "VTGUARDIAN_INGEST__PARALLEL_MIN_MB": "0" if parallel else "1000",
    }
    size = path.stat().st_size
    proc = subprocess.Popen(
        [*VTGUARDIAN, "ingest", "--json", "-s", "suricata", str(path)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while _position(engine) < size // 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    first = json.loads(out)
    stopped_at = _position(engine)
    assert 0 < stopped_at < size // 2, f"stopped at {stopped_at} of {size} bytes"

    rest = run_cli("ingest", "--json", "-s", "suricata", str(path), env=env, timeout=300)
    assert rest.returncode == 0, rest.stderr
    assert first["lines"] + json.loads(rest.stdout)["lines"] == LINES + LINES // 997 + 1
    assert stored_state(engine) == expected
    engine.dispose()


def test_a_batch_of_all_different_values_ends_at_the_key_limit(tmp_path):
    """A file whose every line is a new IoC (a scan, a hostile client) holds at most
    about MAX_BATCH_KEYS of them in memory at once, whatever the batch's line count."""
    from vtguardian.ingest.lines import MAX_BATCH_KEYS, parse_batches
    from vtguardian.sources.plain import PlainParser

    path = tmp_path / "iocs.txt"
    path.write_text("".join(f"host{n}.example.com\n" for n in range(2 * MAX_BATCH_KEYS + 5000)))
    with open(path, "rb") as handle:
        sizes = [
            (batch.lines, len(batch.counts))
            for batch, _position, _state in parse_batches(
                handle, str(path), PlainParser(), 0, True, batch_lines=1_000_000
            )
        ]
    assert len(sizes) >= 3
    assert all(keys <= MAX_BATCH_KEYS + 10_000 for _lines, keys in sizes)
    assert sum(lines for lines, _keys in sizes) == 2 * MAX_BATCH_KEYS + 5000
