"""A year on a Raspberry Pi: ingest, database size, pruning and the panels (issue #29).

Generates a household's year of DNS queries as Suricata eve.json (``--per-day``
queries a day from ``--devices`` devices over Zipf-popular domains, plus a few
hundred never-seen domains a day), a few days per file, and ingests every file
through the real pipeline (``ingest()``, worker processes and all) with retention
on: after each file, the prune ``run`` would have done by then (default
``[retention]``: 90 days of hourly rows, two years of rollups). Then, per engine:

- ingest time and events/s, and the time all those prunes took;
- the database on disk before and after pruning a day's worth (the next day's
  prune), how long that prune took, and the longest a concurrent lookup (a
  report and verdict written in its own transaction, every 50 ms) waited;
- p50/p95 of every dashboard panel over the last 7, 30 and 365 days.

Targets (issue #29): panel p95 < 100 ms over 7 and 30 days, < 500 ms over 365
days (MariaDB); the SQLite file < 2 GB; a day's prune < 10 s with no lookup
waiting > 1 s. Timings on a shared machine are noisy.
Usage: python benchmarks/year.py [--engine sqlite|mariadb|both] [--days 365]
       [--per-day 100000] [--devices 50] [--chunk-days 5] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from vtguardian.clock import day_start, utcnow
from vtguardian.config import FollowedSource, RetentionSettings
from vtguardian.dashboards.dialect import render
from vtguardian.dashboards.macros import TimeRange, expand
from vtguardian.dashboards.panels import panels
from vtguardian.ingest.run import ingest
from vtguardian.iocs import Classifier
from vtguardian.store import migrate, retention
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import is_sqlite, make_engine, write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.store.footprint import file_bytes

MARIADB = os.environ.get("VTGUARDIAN_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")
POPULAR = 20_000
FRESH_PER_DAY = 300
RANGES = (7, 30, 365)


@dataclass
class Report:
    events: int = 0
    ingest_seconds: float = 0.0
    prunes_seconds: float = 0.0
    bytes_before: int = 0
    bytes_after: int = 0
    day_prune_seconds: float = 0.0
    day_prune_rows: int = 0
    longest_batch: float = 0.0
    lookup_waits: list[float] = field(default_factory=list)
    panels: dict[str, list[float]] = field(default_factory=dict)


def write_days(path: Path, first_day, days: int, per_day: int, devices: int, rng) -> int:
    """``days`` days of DNS queries from ``first_day`` as eve.json; returns the count."""
    clients = [f"192.168.{1 + n // 250}.{10 + n % 250}" for n in range(devices)]
    events = 0
    with path.open("w") as handle:
        for day in range(days):
            start = first_day + timedelta(days=day)
            stamp_day = start.strftime("%Y-%m-%dT")
            lines = []
            for n in range(per_day):
                second = n * 86_400 // per_day
                if rng.random() < 0.01:
                    name = f"new{rng.randrange(FRESH_PER_DAY)}-{start:%Y%m%d}.example.org"
                else:
                    name = f"www.site{int(rng.paretovariate(1.05)) % POPULAR}.example.com"
                client = clients[int(rng.paretovariate(1.3)) % devices]
                lines.append(
                    f'{{"timestamp":"{stamp_day}{second // 3600:02d}:{second // 60 % 60:02d}:'
                    f'{second % 60:02d}.{n % 1000:03d}000+0000","event_type":"dns",'
                    f'"src_ip":"{client}","src_port":{40000 + n % 20000},"dest_ip":"192.168.1.2",'
                    f'"dest_port":53,"proto":"UDP","dns":{{"type":"query","id":{n % 65536},'
                    f'"rrname":"{name}","rrtype":"A"}}}}\n'
                )
            handle.writelines(lines)
            events += per_day
    return events


def verdicts_for_popular(engine: Engine, now) -> None:
    """A verdict for every 7th popular domain, some malicious or suspicious."""
    with write_transaction(engine) as c:
        ids = ensure_iocs(
            c,
            {
                ("domain", f"www.site{n}.example.com"): ("example.com", now, now)
                for n in range(POPULAR)
            },
        )
        for n, ioc_id in enumerate(ids.values()):
            if n % 7:
                continue
            level = "malicious" if n % 997 == 0 else "suspicious" if n % 101 == 0 else "harmless"
            ratio = 0.1 if level == "malicious" else 0.02 if level == "suspicious" else 0.0
            report = ReportRow(
                "virustotal", "found", level, ratio=ratio, total=88,
                stats={"malicious": 9 if level == "malicious" else 0},
                labels=["malware"] if level == "malicious" else ["news"],
                analysis_date=now - timedelta(days=n % 60),
            )  # fmt: skip
            record_answer(c, ioc_id, report, timedelta(days=7), now - timedelta(hours=n % 160))


def load(engine: Engine, args: argparse.Namespace, report: Report, policy, end) -> None:
    rng = random.Random(29)
    first = day_start(end) - timedelta(days=args.days - 1)
    verdicts_for_popular(engine, first)
    classifier = Classifier()
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        day = 0
        while day < args.days:
            days = min(args.chunk_days, args.days - day)
            path = Path(folder) / f"eve-{day:03d}.json"
            report.events += write_days(
                path, first + timedelta(days=day), days, args.per_day, args.devices, rng
            )
            started = time.perf_counter()
            ingest(engine, classifier, [FollowedSource(source="suricata", path=str(path))])
            report.ingest_seconds += time.perf_counter() - started
            path.unlink()
            day += days
            # The prune run would have done at the end of the last of these days.
            started = time.perf_counter()
            retention.prune(engine, policy, min(first + timedelta(days=day), end))
            report.prunes_seconds += time.perf_counter() - started
            print(
                f"  day {day:3d}: {report.events:,} events, ingest "
                f"{report.ingest_seconds:.0f} s, prunes {report.prunes_seconds:.0f} s",
                flush=True,
            )


def size(engine: Engine) -> int:
    path = retention.sqlite_file(engine)
    if path is not None:
        wal = path.with_name(path.name + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    with engine.connect() as c:
        for table in ("sightings", "ioc_days", "reports", "iocs"):
            c.execute(text(f"ANALYZE TABLE {table}")).all()
        return file_bytes(c)


def day_prune_with_lookups(engine: Engine, policy, end, report: Report) -> None:
    """Prune the next day's worth while a lookup writes its answer every 50 ms."""
    with engine.connect() as c:
        ids = [row[0] for row in c.execute(text("SELECT id FROM iocs ORDER BY id LIMIT 2000"))]
    stop = threading.Event()

    def lookups() -> None:
        rng = random.Random(3)
        while not stop.is_set():
            started = time.perf_counter()
            with write_transaction(engine) as c:
                record_answer(
                    c, rng.choice(ids), ReportRow("virustotal", "found", "harmless", ratio=0.0),
                    timedelta(days=7), utcnow(),
                )  # fmt: skip
            report.lookup_waits.append(time.perf_counter() - started)
            time.sleep(0.05)

    thread = threading.Thread(target=lookups)
    report.bytes_before = size(engine)
    thread.start()
    try:
        time.sleep(0.3)
        result = retention.prune(engine, policy, end + timedelta(days=1))
    finally:
        time.sleep(0.3)
        stop.set()
        thread.join()
    report.day_prune_seconds = result.seconds
    report.day_prune_rows = sum(result.removed.values())
    report.longest_batch = result.longest_batch_seconds
    report.bytes_after = size(engine)


def time_panels(engine: Engine, runs: int, devices: int, report: Report) -> None:
    dialect = engine.dialect.name
    now = int(time.time()) + 3600
    variables = {
        "threshold": "0.03",
        "ioc_type": ["domain", "ip", "url", "file"],
        "client": [f"192.168.{1 + n // 250}.{10 + n % 250}" for n in range(devices)],
    }
    with engine.connect() as c:
        if not is_sqlite(engine):
            c.execute(text("SET time_zone = '+00:00'"))
        for panel in panels():
            figures = []
            for days in RANGES:
                interval = {7: "1h", 30: "6h"}.get(days, "1d")
                window = TimeRange(now - days * 86400, now, interval)
                samples = []
                for sql in panel.queries:
                    query = text(expand(render(sql, dialect), window, variables, dialect))
                    for _ in range(runs):
                        started = time.perf_counter()
                        c.execute(query).all()
                        samples.append((time.perf_counter() - started) * 1000)
                samples.sort()
                p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
                figures += [statistics.median(samples), p95]
            report.panels[panel.key] = figures


def run_engine(url: str, args: argparse.Namespace) -> Report:
    engine = make_engine(url)
    migrate.upgrade(engine)
    policy = RetentionSettings()
    end = utcnow()
    report = Report()
    load(engine, args, report, policy, end)
    day_prune_with_lookups(engine, policy, end, report)
    time_panels(engine, args.runs, args.devices, report)
    engine.dispose()
    return report


def show(name: str, report: Report) -> None:
    waits = sorted(report.lookup_waits)
    print(f"== {name}")
    print(
        f"ingest: {report.events:,} events in {report.ingest_seconds:.0f} s "
        f"({report.events / max(report.ingest_seconds, 1e-9):,.0f} events/s); "
        f"the {report.prunes_seconds:.0f} s of pruning along the way not included"
    )
    print(
        f"size on disk: {report.bytes_before / 1e6:,.0f} MB before the day's prune, "
        f"{report.bytes_after / 1e6:,.0f} MB after (target SQLite < 2,000 MB)"
    )
    print(
        f"a day's prune: {report.day_prune_rows:,} rows in {report.day_prune_seconds:.1f} s "
        f"(target < 10 s), longest transaction {report.longest_batch * 1000:.0f} ms"
    )
    if waits:
        print(
            f"concurrent lookups: {len(waits)}, median {statistics.median(waits) * 1000:.0f} ms, "
            f"longest {waits[-1] * 1000:.0f} ms (target < 1,000 ms)"
        )
    header = " ".join(f"{d:>4d}d p50 {d:>4d}d p95" for d in RANGES)
    print(f"{'panel':22s} {header}  (ms)")
    worst = dict.fromkeys(RANGES, 0.0)
    for key, figures in report.panels.items():
        print(f"{key:22s} " + " ".join(f"{f:9.1f}" for f in figures))
        for n, days in enumerate(RANGES):
            worst[days] = max(worst[days], figures[2 * n + 1])
    print(
        "worst p95: "
        + ", ".join(f"{d} days {worst[d]:.1f} ms" for d in RANGES)
        + " (targets 100, 100, 500 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sqlite", "mariadb", "both"], default="both")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--chunk-days", type=int, default=5)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tmp", default=None, help="where the generated logs go")
    args = parser.parse_args()
    print(
        f"{args.days} days x {args.per_day:,} DNS queries/day from {args.devices} devices "
        f"({args.days * args.per_day:,} events), {os.cpu_count()} cores",
        flush=True,
    )
    if args.engine in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
            started = time.perf_counter()
            report = run_engine(f"sqlite:///{folder}/year.db", args)
            show(f"SQLite ({time.perf_counter() - started:.0f} s in all)", report)
    if args.engine in ("mariadb", "both"):
        server = create_engine(make_url(MARIADB).set(database=None), isolation_level="AUTOCOMMIT")
        name = f"vtg_year_{uuid.uuid4().hex[:8]}"
        with server.connect() as c:
            c.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        try:
            url = make_url(MARIADB).set(database=name).render_as_string(hide_password=False)
            started = time.perf_counter()
            report = run_engine(url, args)
            show(f"MariaDB ({time.perf_counter() - started:.0f} s in all)", report)
        finally:
            with server.connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            server.dispose()


if __name__ == "__main__":
    main()
