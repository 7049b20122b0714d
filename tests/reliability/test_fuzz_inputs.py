"""Fuzzing: mutated real samples through every parser, random text through the IoC
model. The promise: zero unhandled exceptions, only recorded bad lines."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import TEST_DATA
from vtguardian.ingest.totals import Totals
from vtguardian.ingest.writer import flush
from vtguardian.iocs import Classifier
from vtguardian.sources.base import ParseError
from vtguardian.sources.batch import Batch
from vtguardian.sources.registry import parser_factory
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine

# Real lines of every line format, as the sensors write them.
SAMPLES = {
    "suricata": TEST_DATA / "suricata" / "tenzir-ctu13-eve-sample.json",
    "zeek": TEST_DATA / "zeek" / "zed-sample-dns.log.tsv",
}
PIHOLE_LINES = [
    b"Dec 31 23:59:58 dnsmasq[612]: query[A] example.com from 192.168.1.10",
    b"Jan  1 00:00:02 dnsmasq[612]: 17 192.168.1.12/41234 cached cdn.example.org is 1.2.3.4",
    b"Jan  1 00:00:03 dnsmasq[612]: regex blocked phish.example.com is 0.0.0.0",
]
ECS_LINES = [
    b'{"@timestamp":"2024-05-01T10:00:00Z","source":{"ip":"192.168.1.5"},'
    b'"dns":{"question":{"name":"login.example-bank.com"}}}',
]


def _lines(source: str) -> list[bytes]:
    if source in SAMPLES:
        return [line for line in SAMPLES[source].read_bytes().splitlines() if line][:200]
    return PIHOLE_LINES if source in ("pihole-log", "dnsmasq") else ECS_LINES


def _mutate(line: bytes, rng: random.Random) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        at = rng.randrange(len(data) + 1)
        if choice < 0.3 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)  # flip a byte
        elif choice < 0.5:
            del data[at : at + rng.randint(1, 20)]  # cut
        elif choice < 0.7:
            data[at:at] = rng.choice([b'"', b"{", b"}", b"[", b"\\", b"\t", b"\x00", b"\xff"])
        elif choice < 0.85:
            data[at:at] = rng.choice([b"9" * 40, b"-1", b"null", b"true", b"1e999", b'""'])
        else:
            data = data[: rng.randrange(len(data) + 1)]  # truncated write
    return bytes(data)


@pytest.mark.parametrize("source", ["suricata", "zeek", "pihole-log", "ecs", "plain"])
def test_mutated_real_lines_are_parsed_or_recorded_never_crash(source, tmp_path):
    rng = random.Random(source)
    lines = _lines(source)
    path = tmp_path / ("dns.log" if source == "zeek" else "sample.log")
    parser = parser_factory(source)(str(path))
    batch = Batch(parser.source)
    if source == "zeek":  # the header lines give the fields; keep them intact
        header = [line for line in SAMPLES["zeek"].read_bytes().splitlines() if line[:1] == b"#"]
        for line in header:
            parser.feed(line, batch)
    for n in range(3000):
        line = _mutate(rng.choice(lines), rng)
        try:
            parser.feed(line, batch)
        except ParseError:
            batch.bad(str(path), n, "fuzz", line)
    assert batch.events + len(batch.errors) > 0


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=300))
def test_the_ioc_model_classifies_any_text_without_raising(text):
    result = Classifier().classify(text)
    assert result.eligible in (True, False)
    if result.eligible:
        assert result.type is not None and result.value


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.text(max_size=80), min_size=1, max_size=20))
def test_any_raw_values_flush_into_the_store(engine_sqlite, values):
    """Whatever a parser hands over, classification and the store take it or count it."""
    batch = Batch("fuzz")
    for value in values:
        batch.see("", value, "192.168.1.9", 1_714_557_600.0)
    totals = Totals()
    flush(engine_sqlite, batch, Classifier(), totals)
    assert totals.hits + totals.skipped_private + totals.invalid == len(values)


@pytest.fixture(scope="module")
def engine_sqlite(tmp_path_factory):
    engine = make_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'f.db'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
