"""Reading files like a daemon must: bad lines, resuming, rotation, restarts."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
import time

import orjson
from sqlalchemy import text

from sources_helpers import ingest, stored_hits, stored_state


def _dns_query(n: int, client: str = "192.168.1.10") -> bytes:
    event = {
        "timestamp": "2024-05-01T10:15:00.123456+0000",
        "event_type": "dns",
        "src_ip": client,
        "dest_ip": "192.168.1.1",
        "dns": {"type": "query", "rrname": f"host{n}.example.com", "rrtype": "A"},
    }
    return orjson.dumps(event) + b"\n"


def test_bad_lines_are_recorded_with_their_offset_and_valid_ones_kept(engine, tmp_path):
    bad_lines = [
        b'{"timestamp": "2024-05-01T10:15:00+0000", "event_type": "dns", "dns": {',  # truncated
        b"this is not json at all",
        b'{"timestamp": "2024-05-01T10:15:00+0000", "event_type": "dns", "src_ip": "\xff\xfe"}',
        bytes(range(256)).replace(b"\n", b""),  # binary garbage
        b'{"timestamp": "2024-05-01T10:15:00+0000", "event_type": "dns", "dns": "oops"}',
        b'{"timestamp": 12, "event_type": "tls", "tls": {"sni": "x.example.com"}}',
        b'{"timestamp": "2024-05-01T10:15:00+0000", "event_type": "tls", "tls": {"sni": 7}}',
        b"[1, 2, 3]",
        b"x" * (10 * 1024 * 1024),  # a 10 MB line
    ]
    content = bytearray()
    bad_offsets = []
    valid = 0
    for n, bad in enumerate(bad_lines):
        content += _dns_query(n)
        valid += 1
        bad_offsets.append(len(content))
        content += bad + b"\n"
    content += _dns_query(99)
    valid += 1
    path = tmp_path / "eve.json"
    path.write_bytes(bytes(content))
    totals = ingest(engine, "suricata", path)
    assert totals.hits == valid and totals.events >= valid
    assert totals.errors == len(bad_lines)
    assert sum(stored_hits(engine).values()) == valid
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT position, reason, sample, path FROM ingest_errors ORDER BY position")
        ).all()
    assert [r.position for r in rows] == bad_offsets
    reasons = [r.reason for r in rows]
    assert reasons[0].startswith("invalid JSON") and reasons[1].startswith("invalid JSON")
    assert "1 MiB" in reasons[-1]
    assert all(r.path == str(path) and len(r.sample) <= 255 for r in rows)
    assert "\\xff" in rows[2].sample or "invalid" in rows[2].reason


def test_second_run_resumes_and_appended_lines_are_read_once(engine, tmp_path):
    path = tmp_path / "eve.json"
    path.write_bytes(b"".join(_dns_query(n) for n in range(10)))
    assert ingest(engine, "suricata", path).hits == 10
    assert ingest(engine, "suricata", path).lines == 0
    with path.open("ab") as handle:
        handle.write(b"".join(_dns_query(n) for n in range(10, 15)))
    again = ingest(engine, "suricata", path)
    assert (again.lines, again.hits) == (5, 5)
    assert sum(stored_hits(engine).values()) == 15


def test_partial_last_line_waits_while_following(engine, tmp_path):
    path = tmp_path / "eve.json"
    line = _dns_query(1)
    path.write_bytes(_dns_query(0) + line[:30])
    ingest(engine, "suricata", path, follow=True, stop=_stopped())
    assert sum(stored_hits(engine).values()) == 1
    with path.open("ab") as handle:
        handle.write(line[30:])
    ingest(engine, "suricata", path, follow=True, stop=_stopped())
    assert sum(stored_hits(engine).values()) == 2


def _stopped() -> threading.Event:
    event = threading.Event()
    event.set()  # one poll, then stop
    return event


def test_rotation_while_following_loses_and_doubles_nothing(engine, tmp_path):
    path = tmp_path / "eve.json"
    path.write_bytes(b"")
    stop = threading.Event()
    follower = threading.Thread(
        target=ingest,
        args=(engine, "suricata", path),
        kwargs={"follow": True, "stop": stop, "poll_seconds": 0.05},
    )
    follower.start()
    written = 0

    def write(count: int) -> None:
        nonlocal written
        with path.open("ab") as handle:
            for _ in range(count):
                handle.write(_dns_query(written))
                written += 1

    try:
        write(50)
        time.sleep(0.3)
        write(20)  # not read yet when the file is renamed away
        os.rename(path, f"{path}.1")  # rename-and-create (logrotate's default)
        path.write_bytes(b"")
        write(30)
        time.sleep(0.3)
        write(25)
        shutil.copyfile(path, f"{path}.1")  # copytruncate
        with path.open("r+b") as handle:
            handle.truncate(0)
        write(40)
        time.sleep(0.5)
    finally:
        stop.set()
        follower.join(timeout=30)
    hits = stored_hits(engine)
    assert sum(hits.values()) == written == 165
    assert all(count == 1 for count in hits.values())


def test_rotated_files_are_backfilled_once_on_first_sight(engine, tmp_path):
    path = tmp_path / "eve.json"
    with gzip.open(f"{path}.2.gz", "wb") as handle:
        handle.write(b"".join(_dns_query(n) for n in range(0, 5)))
    (tmp_path / "eve.json.1").write_bytes(b"".join(_dns_query(n) for n in range(5, 12)))
    path.write_bytes(b"".join(_dns_query(n) for n in range(12, 20)))
    assert ingest(engine, "suricata", path).hits == 20
    assert ingest(engine, "suricata", path).hits == 0
    assert sum(stored_hits(engine).values()) == 20


def test_parsing_in_a_child_process_stores_exactly_the_same(engine, tmp_path):
    path = tmp_path / "eve.json"
    path.write_bytes(b"".join(_dns_query(n % 37, f"192.168.1.{n % 9}") for n in range(5000)))
    reference = tmp_path / "reference.db"
    from vtguardian.store import migrate
    from vtguardian.store.engine import make_engine

    single = make_engine(f"sqlite:///{reference}")
    migrate.upgrade(single)
    ingest(single, "suricata", path, batch_lines=700, parallel_min_bytes=1 << 40)
    ingest(engine, "suricata", path, batch_lines=700, parallel_min_bytes=0)
    assert stored_state(engine) == stored_state(single)
    assert sum(stored_hits(engine).values()) == 5000


def test_a_half_written_last_line_waits_for_the_rest(engine, tmp_path):
    """A log cut mid-line (``...189.174`` read as ``...189.1``) must not store a wrong
    address: a one-off ingest holds an unfinished last line back while the file is
    still being written, and takes it whole once it is complete."""
    path = tmp_path / "pihole.log"
    head = (
        "Dec  4 09:00:00 dnsmasq[612]: query[A] support.google.com from 192.168.1.10\n"
        "Dec  4 09:00:00 dnsmasq[612]: reply support.google.com is 142.250.189.1"
    )
    path.write_text(head)
    totals = ingest(engine, "pihole-log", path)
    assert totals.held == 1
    assert stored_hits(engine) == {("domain", "support.google.com"): 1}
    with open(path, "a") as handle:
        handle.write("74\n")
    totals = ingest(engine, "pihole-log", path)
    assert totals.held == 0 and totals.errors == 0
    assert stored_hits(engine) == {
        ("domain", "support.google.com"): 1,
        ("ip", "142.250.189.174"): 1,
    }


def test_a_last_line_without_newline_in_a_settled_file_is_read(engine, tmp_path):
    path = tmp_path / "pihole.log"
    path.write_text(
        "Dec  4 09:00:00 dnsmasq[612]: query[A] support.google.com from 192.168.1.10\n"
        "Dec  4 09:00:00 dnsmasq[612]: reply support.google.com is 142.250.189.174"
    )
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    totals = ingest(engine, "pihole-log", path)
    assert totals.held == 0
    assert stored_hits(engine)[("ip", "142.250.189.174")] == 1
