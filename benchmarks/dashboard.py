"""Dashboard query speed on a busy household's month (issue: dashboards).

Loads 30 days of a busy household into MariaDB (100k DNS queries a day from 50
clients over a Zipf-popular set of domains), stored the vtguardian way (hourly
sightings, with the answers as hourly resolutions, a fifth of them followed by
connections, and a DNS bypass now and then) and, for comparison, the naive way
(one row per query, as the original scripts keep them). Prints p50/p95 of every
panel query over a 7-day and a 30-day range (target: every panel p95 < 100 ms),
and the same question ("domains seen, with hits and clients") asked of the
raw-events table, with the ratio.
Usage: python benchmarks/dashboard.py [--days 30] [--per-day 100000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from vtguardian.clock import utcnow
from vtguardian.dashboards.dialect import render
from vtguardian.dashboards.macros import TimeRange, expand
from vtguardian.dashboards.panels import panels
from vtguardian.store import migrate
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs
from vtguardian.store.resolutions import write_connections, write_resolutions
from vtguardian.store.schema import dns_bypasses
from vtguardian.store.sightings import add_sightings, hour_bucket
from vtguardian.store.threats import ThreatContext, record_context

MARIADB = os.environ.get("VTGUARDIAN_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


def load(url: str, days: int, per_day: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    engine = make_engine(url)
    migrate.upgrade(engine)
    domains = [f"www.site{n}.example.com" for n in range(20_000)]
    clients = [f"192.168.1.{n}" for n in range(10, 60)]
    now = hour_bucket(utcnow())
    start = now - timedelta(days=days)
    with write_transaction(engine) as c:
        ioc_ids = ensure_iocs(c, {("domain", d): ("example.com", start, now) for d in domains})
        client_ids = ensure_clients(c, {ip: (None, start, now) for ip in clients})
        # Each site's own address, as the local DNS answers it (the passive DNS panels).
        address_of = {
            ioc_id: f"93.{184 + n % 8}.{n // 250 % 250}.{n % 250 + 1}"
            for n, ioc_id in enumerate(ioc_ids.values())
        }
        address_ids = ensure_iocs(c, {("ip", a): (None, start, now) for a in address_of.values()})
        for n, (_key, ioc_id) in enumerate(ioc_ids.items()):
            if n % 7 == 0:  # a week of lookups
                level = (
                    "malicious" if n % 997 == 0 else "suspicious" if n % 101 == 0 else "harmless"
                )
                report = ReportRow(
                    "virustotal",
                    "found",
                    level,
                    ratio=0.1 if level == "malicious" else 0.0,
                    total=88,
                    stats={"malicious": 9 if level == "malicious" else 0},
                    labels=["malware"] if level == "malicious" else ["news"],
                    analysis_date=now - timedelta(days=n % 60),
                )
                recorded = record_answer(
                    c, ioc_id, report, timedelta(days=7), now - timedelta(hours=n % 160)
                )
                flagged = level != "harmless"
                context = ThreatContext(
                    threat_categories=["malware", "command-and-control"] if flagged else [],
                    site_categories=["news"],
                    families=["Emotet"] if level == "malicious" else [],
                )
                record_context(c, ioc_id, recorded.report_id, context, now)
                if n % 14 == 0 and flagged:  # verdicts that changed since: history to walk
                    later = ReportRow("virustotal", "found", "harmless", ratio=0.0, total=88)
                    record_answer(c, ioc_id, later, timedelta(days=7), now - timedelta(hours=2))
    raw = create_engine(url)
    with raw.begin() as c:
        c.execute(
            text(
                "CREATE TABLE raw_events (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                "ts DATETIME(6) NOT NULL, client VARCHAR(45), domain VARCHAR(255), "
                "INDEX (ts))"
            )
        )
    names = list(ioc_ids)
    ids = list(ioc_ids.values())
    client_list = list(client_ids.items())
    per_hour = per_day // 24
    for hour in range(days * 24):
        moment = start + timedelta(hours=hour)
        counts: Counter = Counter()
        raw_rows = []
        for _ in range(per_hour):
            d = int(rng.paretovariate(1.05)) % len(ids)
            ip, client_id = client_list[int(rng.paretovariate(1.3)) % len(client_list)]
            counts[(ids[d], client_id)] += 1
            raw_rows.append(
                {
                    "ts": moment + timedelta(seconds=rng.randrange(3600)),
                    "client": ip,
                    "domain": names[d][1],
                }
            )
        last = moment + timedelta(minutes=59)
        with write_transaction(engine) as c:
            add_sightings(
                c,
                {(i, cl, "pihole", moment): (n, n // 20, last) for (i, cl), n in counts.items()},
            )
            write_resolutions(
                c,
                [
                    (i, address_ids[("ip", address_of[i])], cl, "pihole", moment, n, last, moment)
                    for (i, cl), n in counts.items()
                ],
            )
            write_connections(
                c,
                [
                    (address_of[i], cl, "suricata", moment, n, last, moment)
                    for (i, cl), n in counts.items()
                    if i % 5 == 0
                ],
            )
            if hour % 4 == 0:  # now and then a device that went around the local DNS
                ip, client_id = client_list[hour % len(client_list)]
                c.execute(
                    insert(dns_bypasses).prefix_with("IGNORE"),
                    {
                        "kind": "dns-bypass" if hour % 8 else "doh",
                        "client_id": client_id,
                        "address": address_of[ids[hour % 50]],
                        "domain": names[hour % 50][1],
                        "first_seen": moment,
                        "last_seen": last,
                        "created_at": last,
                    },
                )
        with raw.begin() as c:
            c.execute(
                text("INSERT INTO raw_events (ts, client, domain) VALUES (:ts, :client, :domain)"),
                raw_rows,
            )
    engine.dispose()
    raw.dispose()


def timed(engine, sql: str, runs: int) -> list[float]:
    samples = []
    with engine.connect() as c:
        c.execute(text("SET time_zone = '+00:00'"))
        for _ in range(runs):
            started = time.perf_counter()
            c.execute(text(sql)).all()
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    server = create_engine(make_url(MARIADB).set(database=None), isolation_level="AUTOCOMMIT")
    name = f"vtg_dash_{uuid.uuid4().hex[:8]}"
    with server.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(MARIADB).set(database=name).render_as_string(hide_password=False)
    try:
        started = time.perf_counter()
        load(url, args.days, args.per_day)
        print(
            f"loaded {args.days} days x {args.per_day} DNS queries/day in "
            f"{time.perf_counter() - started:.0f} s (MariaDB, {os.cpu_count()} cores)"
        )
        engine = create_engine(url)
        now = int(time.time()) + 3600
        variables = {
            "threshold": "0.03",
            "ioc_type": ["domain", "ip", "url", "file"],
            "client": [f"192.168.1.{n}" for n in range(10, 60)],
        }
        worst = 0.0
        print(f"{'panel':28s} {'7d p50':>8s} {'7d p95':>8s} {'30d p50':>8s} {'30d p95':>8s}  (ms)")
        for panel in panels():
            figures = []
            for days in (7, 30):
                window = TimeRange(now - days * 86400, now, "1h" if days == 7 else "6h")
                samples = []
                for sql in panel.queries:
                    samples += timed(
                        engine, expand(render(sql, "mysql"), window, variables), args.runs
                    )
                samples.sort()
                p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
                figures += [statistics.median(samples), p95]
                worst = max(worst, p95)
            print(f"{panel.key:28s} " + " ".join(f"{f:8.1f}" for f in figures))
        print(f"worst p95: {worst:.1f} ms (target < 100 ms)")
        window = TimeRange(now - 30 * 86400, now)
        ours = expand(
            render(next(p for p in panels() if p.key == "reputation").sql, "mysql"),
            window,
            variables,
        )
        naive = (
            "SELECT domain, COUNT(*) AS hits, COUNT(DISTINCT client) AS clients, MAX(ts) "
            f"FROM raw_events WHERE ts BETWEEN FROM_UNIXTIME({window.start}) AND "
            f"FROM_UNIXTIME({window.end}) GROUP BY domain ORDER BY hits DESC LIMIT 500"
        )
        ours_ms = statistics.median(timed(engine, ours, 3))
        naive_ms = statistics.median(timed(engine, naive, 1))  # minutes per run
        print(
            f"domains seen over 30 days: hourly sightings {ours_ms:.0f} ms, raw events "
            f"{naive_ms:.0f} ms, ratio {naive_ms / ours_ms:.1f}x"
        )
        engine.dispose()
    finally:
        with server.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name}"))


if __name__ == "__main__":
    main()
