"""Followers read when inotify says their file changed (vtguardian/ingest/watch.py).

The followers here poll once an hour: a line stored while the test runs was read
because of a notification. Offsets still commit with the rows, so stopping and
rotating lose and double nothing; without notifications (or without the folder)
the follower polls, and still takes in everything when it stops.
"""

from __future__ import annotations

import os
import threading

import orjson
import pytest

from helpers import wait_for
from sources_helpers import ingest, stored_hits
from vtguardian.ingest.watch import ChangeWait

HOUR = 3600.0


def _line(n: int) -> bytes:
    event = {
        "timestamp": f"2026-12-05T06:{n // 60 % 60:02d}:{n % 60:02d}.000000+0000",
        "event_type": "dns",
        "src_ip": "192.168.1.23",
        "dest_ip": "192.168.1.1",
        "dns": {"type": "query", "rrname": f"host{n}.example.org", "rrtype": "A"},
    }
    return orjson.dumps(event) + b"\n"


def _follow(engine, path, stop: threading.Event, **options) -> threading.Thread:
    follower = threading.Thread(
        target=ingest,
        args=(engine, "suricata", path),
        kwargs={"follow": True, "stop": stop, "poll_seconds": HOUR, **options},
    )
    follower.start()
    return follower


def _total(engine) -> int:
    return sum(stored_hits(engine).values())


def test_a_follower_polling_hourly_reads_each_new_line_on_notification(engine, tmp_path):
    path = tmp_path / "eve.json"
    path.write_bytes(_line(0))
    stop = threading.Event()
    follower = _follow(engine, path, stop)
    try:
        wait_for(lambda: _total(engine) == 1, what="the first line")
        for n in range(1, 4):  # each after the last one was stored
            with path.open("ab") as handle:
                handle.write(_line(n))
            wait_for(lambda n=n: _total(engine) == n + 1, what=f"line {n}")
        with path.open("ab") as handle:  # half a line: held back, then completed
            handle.write(_line(4)[:30])
        with path.open("ab") as handle:
            handle.write(_line(4)[30:])
        wait_for(lambda: _total(engine) == 5, what="the completed line")
    finally:
        stop.set()
        follower.join(timeout=60)
    assert not follower.is_alive()
    assert stored_hits(engine) == {("domain", f"host{n}.example.org"): 1 for n in range(5)}


def test_an_hourly_follower_sees_a_rename_and_create_rotation(engine, tmp_path):
    path = tmp_path / "eve.json"
    path.write_bytes(b"")
    stop = threading.Event()
    follower = _follow(engine, path, stop, poll_seconds=HOUR)
    try:
        with path.open("ab") as handle:
            handle.write(_line(0))
        wait_for(lambda: _total(engine) == 1, what="the first line")
        with path.open("ab") as handle:
            handle.write(_line(1))
        os.rename(path, f"{path}.1")  # the line may not be read yet when rotated away
        path.write_bytes(_line(2))
        wait_for(lambda: _total(engine) == 3, what="both generations")
    finally:
        stop.set()
        follower.join(timeout=60)
    assert stored_hits(engine) == {("domain", f"host{n}.example.org"): 1 for n in range(3)}


def test_without_notifications_a_follower_polls_and_loses_nothing_on_stop(engine, tmp_path):
    path = tmp_path / "eve.json"
    path.write_bytes(_line(0))
    stop = threading.Event()
    follower = _follow(engine, path, stop, file_notifications=False)
    try:
        wait_for(lambda: _total(engine) == 1, what="the first read")
        with path.open("ab") as handle:
            handle.write(_line(1))
        # Polling hourly, the follower has not looked again; asked to stop, it does.
        assert not stop.wait(1.0)
        assert _total(engine) == 1
    finally:
        stop.set()
        follower.join(timeout=60)
    assert stored_hits(engine) == {("domain", f"host{n}.example.org"): 1 for n in range(2)}


@pytest.mark.parametrize("notifications", [True, False])
def test_a_wait_ends_when_asked_to_stop(tmp_path, notifications):
    stop = threading.Event()
    with ChangeWait(str(tmp_path / "x.log"), stop, HOUR, notifications) as changes:
        assert changes.notified is notifications
        threading.Timer(0.2, stop.set).start()
        assert changes.wait() is True


def test_a_missing_folder_means_polling(tmp_path):
    stop = threading.Event()
    with ChangeWait(str(tmp_path / "absent" / "x.log"), stop, 0.01) as changes:
        assert changes.notified is False
        assert changes.wait() is False  # one poll interval, then read again


def test_other_files_in_the_folder_do_not_wake_a_follower(tmp_path):
    stop = threading.Event()
    with ChangeWait(str(tmp_path / "x.log"), stop, 0.0) as changes:
        (tmp_path / "other.log").write_text("noise\n")
        (tmp_path / "x.log.1").write_text("rotated\n")  # a generation of ours does
        changes.read_now()  # what happened so far is covered by a read starting now
        (tmp_path / "other.log").write_text("more noise\n")
        threading.Timer(0.5, stop.set).start()
        assert changes.wait() is True  # only the stop ended it
