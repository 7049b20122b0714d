"""The ingest's fast paths: lines fed to the parser in blocks, and files cut into
byte segments parsed side by side by worker processes.

Both must see exactly what feeding one line at a time sees: every line once, every
bad line recorded at its own byte offset, whatever the block or segment edges.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import threading
import time
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import TEST_DATA
from vtguardian.errors import InvalidInput
from vtguardian.ingest.lines import MAX_LINE, LineStarts, no_long_lines, parse_batches
from vtguardian.ingest.offsets import Offset
from vtguardian.ingest.parallel import BACKLOG_THREAD, prepared_in_workers, segment_bounds
from vtguardian.ingest.prepare import prepare
from vtguardian.iocs import Classifier
from vtguardian.sources.base import ParseError
from vtguardian.sources.batch import Batch
from vtguardian.sources.suricata import SuricataParser
from vtguardian.tally import Tally

REAL_EVENTS = [
    line
    for name in ("tenzir-ctu13-eve-sample.json", "output-eve-fileinfo.expected.eve.json")
    for line in (TEST_DATA / "suricata" / name).read_bytes().splitlines()
    if line.strip()
]

BAD_LINES = {
    b'{"timestamp": "2024-05-01T10:15:00.123456+0000", "event_type": "dns", "dns": {': "invalid",
    b"\xff\xfe garbage \x00\x01": "invalid",
    b'{"timestamp": "2024-05-01T10:15:00.123456+0000", "event_type": "dns", "dns": "x"}': "type",
    b'{"timestamp": "2024-05-01T25:15:00.123456+0000", "event_type": "tls", "tls": {}}': "stamp",
    b'{"timestamp": "2024-05-01T10:15:00.123456+0000", "event_type": "tls", "tls": {"sni": 5}}': (
        "type"
    ),
    b"[1, 2, 3]": "type",
    b"   ": "invalid",
}


def _query(n: int) -> bytes:
    return orjson.dumps(
        {
            "timestamp": f"2024-05-01T{n % 24:02d}:15:00.123456+0200",
            "event_type": "dns",
            "src_ip": f"192.168.1.{n % 7}",
            "dns": {"type": "query", "rrname": f"host{n % 41}.example.com"},
        }
    )


def _mixed_file(lines: int, seed: int) -> tuple[bytes, list[int]]:
    """Real events and generated queries with every kind of bad line spread through,
    some blank and CRLF lines; returns the bytes and the offsets of the bad lines."""
    content = bytearray()
    bad_offsets = []
    bad = list(BAD_LINES)
    for n in range(lines):
        pick = (n * 7919 + seed) % 97
        if pick < len(bad):
            bad_offsets.append(len(content))
            content += bad[pick] + b"\n"
        elif pick == 50:
            content += b"\n"
        elif pick == 51:
            content += _query(n) + b"\r\n"
        elif pick < 70:
            content += REAL_EVENTS[n % len(REAL_EVENTS)] + b"\n"
        else:
            content += _query(n) + b"\n"
    return bytes(content), bad_offsets


def _line_by_line(content: bytes) -> tuple[Counter, list[tuple[int, str]], int]:
    """The reference: one ``feed`` per line, offsets counted here."""
    parser, batch = SuricataParser(), Batch("suricata")
    position = 0
    for line in content.split(b"\n")[:-1]:
        text = line[:-1] if line.endswith(b"\r") else line
        if text:
            try:
                parser.feed(text, batch)
            except ParseError as exc:
                batch.bad("eve.json", position, str(exc), text)
        position += len(line) + 1
    return _hits(batch.counts), [(e.position, e.reason) for e in batch.errors], batch.events


def _hits(counts: dict) -> Counter:
    return Counter({key: entry.hits for key, entry in counts.items()})


@pytest.mark.parametrize("batch_lines", [70, 333, 100_000])
def test_blocks_see_what_single_lines_see(batch_lines):
    content, bad_offsets = _mixed_file(3_000, seed=batch_lines)
    expected_hits, expected_errors, expected_events = _line_by_line(content)
    assert [offset for offset, _ in expected_errors] == bad_offsets

    hits, errors, events, lines = Counter(), [], 0, 0
    batches = parse_batches(io.BytesIO(content), "eve.json", SuricataParser(), 0, True, batch_lines)
    for batch, _position, _state in batches:
        hits.update(_hits(batch.counts))
        errors += [(e.position, e.reason) for e in batch.errors]
        events += batch.events
        lines += batch.lines
    assert lines == content.count(b"\n")
    assert errors == expected_errors
    assert hits == expected_hits and events == expected_events
    want = {
        "invalid": ("invalid JSON",),
        "type": ("field type", "expected text"),
        "stamp": ("timestamp",),
    }
    for offset, reason in errors:
        kind = BAD_LINES[content[offset:].split(b"\n")[0]]
        assert any(words in reason for words in want[kind]), (offset, reason)


@pytest.mark.parametrize(
    ("segment_bytes", "smallest"),
    [
        (997, None),
        (60_000, None),
        (250_000, None),
        (1 << 30, None),
        (60_000, 700),  # segments that grow, then shrink
        (250_000, 5_000),
    ],
)
def test_segments_in_worker_processes_cover_every_line_once(
    tmp_path: Path, segment_bytes, smallest
):
    content, bad_offsets = _mixed_file(4_000, seed=segment_bytes)
    # an overlong line that crosses several segment edges, then more lines
    overlong_at = len(content)
    content += b'{"x": "' + b"a" * (MAX_LINE + 5_000) + b'"}\n'
    tail, tail_bad = _mixed_file(500, seed=3)
    content += tail
    bad_offsets += [overlong_at] + [len(content) - len(tail) + o for o in tail_bad]
    path = tmp_path / "eve.json"
    path.write_bytes(content)

    expected_hits, expected_errors, expected_events = _line_by_line(content)
    classifier = Classifier()
    positions, errors, lines, events, sightings = [], [], 0, 0, Counter()
    for prepared, position, _state in prepared_in_workers(
        lambda _path: SuricataParser(),
        classifier,
        str(path),
        Offset(),
        len(content),
        batch_lines=400,
        segment_bytes=segment_bytes,
        workers=3,
        smallest_bytes=smallest,
    ):
        positions.append(position)
        errors += [(e.position, e.reason) for e in prepared.errors]
        lines += prepared.lines
        events += prepared.events
        for ioc, client, hour, hits, *_stamps in prepared.sightings:
            sightings[(ioc, client, hour)] += hits
    assert positions == sorted(positions) and positions[-1] == len(content)
    assert lines == content.count(b"\n")
    assert [offset for offset, _ in errors] == bad_offsets
    assert dict(errors)[overlong_at] == "line longer than 1 MiB"
    assert [e for e in errors if e[0] != overlong_at] == expected_errors
    assert events == expected_events
    single = Counter()
    for ioc, client, hour, hits, *_stamps in _prepared_hits(expected_hits, classifier):
        single[(ioc, client, hour)] += hits
    assert sightings == single


def _in_workers(path: Path, size: int, parser=SuricataParser) -> Iterator:
    """Small segments of a few small batches each, on two workers."""
    return prepared_in_workers(
        lambda _path: parser(),
        Classifier(),
        str(path),
        Offset(),
        size,
        batch_lines=BATCH_LINES,
        segment_bytes=size // 12 + 1,
        workers=2,
    )


BATCH_LINES = 200


def _nothing_left_running() -> bool:
    return not mp.active_children() and BACKLOG_THREAD not in {
        t.name for t in threading.enumerate()
    }


def test_batches_that_wait_for_a_busy_writer_come_as_one_and_lose_nothing(tmp_path: Path):
    content, bad_offsets = _mixed_file(3_000, seed=11)
    path = tmp_path / "eve.json"
    path.write_bytes(content)
    expected_hits, _errors, expected_events = _line_by_line(content)
    classifier = Classifier()
    positions, errors, sizes, events, sightings = [], [], [], 0, Counter()
    for step, (prepared, position, _state) in enumerate(_in_workers(path, len(content))):
        if step == 0:
            time.sleep(1.0)  # the writer is busy storing: the next batches pile up
        positions.append(position)
        sizes.append(prepared.lines)
        errors += [e.position for e in prepared.errors]
        events += prepared.events
        for ioc, client, hour, hits, *_stamps in prepared.sightings:
            sightings[(ioc, client, hour)] += hits
    assert max(sizes) > BATCH_LINES  # no parsed batch is larger: these were merged
    assert positions == sorted(positions) and positions[-1] == len(content)
    assert sum(sizes) == content.count(b"\n")
    assert errors == bad_offsets
    assert events == expected_events
    single = Counter()
    for ioc, client, hour, hits, *_stamps in _prepared_hits(expected_hits, classifier):
        single[(ioc, client, hour)] += hits
    assert sightings == single
    assert _nothing_left_running()


class _FailingParser(SuricataParser):
    """A parser that breaks (not a bad line: a bug, a full disk) on one line."""

    def feed_block(self, lines: list[bytes], batch: Batch, bad) -> None:
        if any(b"disk-on-fire" in line for line in lines):
            raise RuntimeError("disk on fire")
        super().feed_block(lines, batch, bad)


def test_a_worker_that_breaks_stops_the_ingest_after_the_batches_before_it(tmp_path: Path):
    content, _bad = _mixed_file(3_000, seed=5)
    broken_at = len(content) * 2 // 3
    broken_at = content.index(b"\n", broken_at) + 1
    content = content[:broken_at] + b'{"event_type": "disk-on-fire"}\n' + content[broken_at:]
    path = tmp_path / "eve.json"
    path.write_bytes(content)
    positions = []
    with pytest.raises(InvalidInput, match="RuntimeError: disk on fire"):
        for _prepared, position, _state in _in_workers(path, len(content), _FailingParser):
            positions.append(position)
    assert positions and positions[-1] <= broken_at
    assert _nothing_left_running()


def test_a_writer_that_stops_early_leaves_no_worker_or_thread_behind(tmp_path: Path):
    content, _bad = _mixed_file(3_000, seed=7)
    path = tmp_path / "eve.json"
    path.write_bytes(content)
    batches = _in_workers(path, len(content))
    next(batches)
    time.sleep(0.5)  # the workers are blocked, their batches waiting to be taken
    batches.close()  # what an ingest does when storing fails
    assert _nothing_left_running()


def _prepared_hits(hits: Counter, classifier: Classifier) -> list:
    """The reference counts, prepared in this process."""
    batch = Batch("suricata")
    for (kind, raw, client, hour), count in hits.items():
        stamp = f"{hour[:13]}:00:00.000000{hour[13:]}" if isinstance(hour, str) else hour * 3600.0
        batch.counts[(kind, raw, client, hour)] = Tally(count, 0, stamp, stamp)
    return prepare(batch, classifier).sightings


@given(st.lists(st.integers(0, 40), min_size=1, max_size=60), st.integers(1, 25))
def test_a_chunk_said_to_hold_no_long_line_holds_none(lengths, limit):
    """The few-searches check may doubt a chunk without a long line (it is then
    measured), but must never pass one that holds a line longer than the limit."""
    data = b"".join(b"x" * n + b"\n" for n in lengths)
    if no_long_lines(data + b"pending", len(data), limit):
        assert max(lengths) <= limit


def test_a_chunk_of_short_lines_is_passed_without_measuring():
    data = b"".join(b"x" * (n % 300) + b"\n" for n in range(20_000))
    assert no_long_lines(data, len(data), limit=1000)
    assert not no_long_lines(data + b"y" * 1001 + b"\n", len(data) + 1002, limit=1000)


@given(
    st.lists(st.binary(max_size=12), min_size=1, max_size=40),
    st.lists(st.integers(0, 39), max_size=12),
    st.integers(0, 10_000),
)
def test_line_starts_are_file_positions_asked_in_any_order(lines, asked, position):
    starts = LineStarts(lines, position)
    for index in (i for i in asked if i < len(lines)):
        assert starts.at(index) == position + sum(len(line) + 1 for line in lines[:index])


@given(st.integers(0, 10_000), st.integers(0, 5_000_000), st.data())
def test_segments_cover_the_rest_of_the_file_and_ramp_up_and_down(first, rest, data):
    largest = data.draw(st.integers(max(1, rest // 1_000), max(1, rest * 2)), "largest")
    smallest = data.draw(st.one_of(st.none(), st.integers(1, largest * 2)), "smallest")
    bounds = segment_bounds(first, first + rest, largest, smallest)
    sizes = [b - a for a, b in pairwise(bounds)]
    assert bounds[0] == first and bounds[-1] == first + rest
    assert all(0 < size <= largest for size in sizes) or sizes == [0]
    peak = sizes.index(max(sizes))
    growing, shrinking = sizes[: peak + 1], sizes[peak:]
    assert growing == sorted(growing) and shrinking == sorted(shrinking, reverse=True)
    if smallest is None or 2 * smallest > largest:
        assert len(sizes) == max(1, -(-rest // largest))  # an even split
        assert max(sizes) - min(sizes) <= 1
    elif rest >= 4 * largest:  # room for the whole ramp: it starts and ends small
        assert sizes[0] == sizes[-1] == smallest
