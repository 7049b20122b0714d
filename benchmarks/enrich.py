"""Enrichment speed with a warm cache (issue: intelligence flow).

Prints events/s for 100k ECS events through the same path as
``vtguardian enrich`` (read NDJSON, enrich, write NDJSON) against a bare
``orjson`` read + write of the same file, and the ratio. Target: >= 50k events/s.

Then a job over the same file (issue: jobs and the Event Explorer): events/s from
the followed file to stored, enriched events with their IoC rows, with a warm cache
(target >= 20,000 events/s on 2 cores), and the database's growth per million events.
Usage: python benchmarks/enrich.py [--events 100000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import orjson

from vtguardian.clock import utcnow
from vtguardian.intel.enrich import Enricher
from vtguardian.iocs import Classifier
from vtguardian.store import migrate
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_iocs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(1)
    domains = [f"www.site{n}.example.com" for n in range(5_000)]
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        migrate.upgrade(engine)
        now = utcnow()
        with write_transaction(engine) as connection:  # a warm cache
            ids = ensure_iocs(connection, {("domain", d): (None, now, now) for d in domains})
            for n, ioc_id in enumerate(ids.values()):
                verdict = "malicious" if n % 100 == 0 else "harmless"
                report = ReportRow("virustotal", "found", verdict, ratio=0.0, total=90)
                record_answer(connection, ioc_id, report, timedelta(days=7), now)
        source = Path(folder) / "events.ndjson"
        with source.open("wb") as handle:
            for n in range(args.events):
                event = {
                    "@timestamp": "2026-11-20T10:00:00Z",
                    "source": {"ip": f"192.168.1.{n % 50 + 2}"},
                    "destination": {"ip": "192.168.1.1"},
                    "dns": {"question": {"name": domains[int(rng.paretovariate(1.2)) % 5000]}},
                    "event": {"kind": "event", "category": ["network"]},
                }
                handle.write(orjson.dumps(event) + b"\n")
        bare_out = Path(folder) / "bare.ndjson"
        started = time.perf_counter()
        with source.open("rb") as reader, bare_out.open("wb") as writer:
            for line in reader:
                writer.write(orjson.dumps(orjson.loads(line)) + b"\n")
        bare = time.perf_counter() - started
        enricher = Enricher(
            engine, Classifier(), None, ["source.ip", "destination.ip", "dns.question.name"]
        )
        out = Path(folder) / "enriched.ndjson"
        started = time.perf_counter()
        with source.open("rb") as reader, out.open("wb") as writer:
            writer.writelines(enricher.enrich_lines(reader))
        ours = time.perf_counter() - started
        print(f"{args.events} events, warm cache of {len(domains)} domains")
        print(f"bare orjson read+write: {args.events / bare:>10,.0f} events/s")
        print(
            f"vtguardian enrich:      {args.events / ours:>10,.0f} events/s  "
            f"ratio {bare / ours:.2f}  (target >= 50,000 events/s)"
        )
        engine.dispose()
        job_seconds, grown = _job(Path(folder), source, args.events)
        print(
            f"vtguardian job:         {args.events / job_seconds:>10,.0f} events/s  "
            f"ratio {bare / job_seconds:.2f}  (input to stored, enriched event; "
            "target >= 20,000 events/s)"
        )
        print(f"job store:              {grown / args.events:>10,.0f} MB per million events")


def _size(database: Path) -> int:
    """The database's bytes once its write-ahead log is folded in."""
    import sqlite3

    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return database.stat().st_size


def _job(folder: Path, source: Path, events: int) -> tuple[float, int]:
    """Seconds for a job to read ``source`` into stored, enriched events, and the bytes
    the database grew by."""
    from vtguardian.config import settings_from_values
    from vtguardian.jobs.runner import JobRunner, sync_config_jobs
    from vtguardian.store.jobs import load_jobs

    database = folder / "bench.db"
    job = {
        "id": "bench",
        "input": {"type": "ecs", "path": str(source)},
        "fields": ["source.ip", "destination.ip", "dns.question.name"],
        "flow": [{"provider": "virustotal"}],
    }
    settings = settings_from_values(database={"url": f"sqlite:///{database}"}, jobs=[job])
    engine = make_engine(settings.database.url)
    sync_config_jobs(engine, settings)
    before = _size(database)
    runner = JobRunner(settings, engine, Classifier())
    size = source.stat().st_size
    started = time.perf_counter()
    while True:
        runner.round()
        with engine.connect() as connection:
            row = load_jobs(connection, "bench")[0]
        if row.position >= size:
            break
    seconds = time.perf_counter() - started
    assert row.events_in == events, (row.events_in, row.reason)
    engine.dispose()
    return seconds, _size(database) - before


if __name__ == "__main__":
    main()
