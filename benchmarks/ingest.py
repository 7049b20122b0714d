"""Ingest speed of Suricata eve.json against a bare JSON read (issue: Collectors).

Generates a 1M-event eve.json (a busy household: 50 clients, Zipf-popular
domains, answers, TLS, HTTP, a few alerts) and prints, measured in one run:
- events/s of a bare ``orjson.loads`` loop over the same file (the ceiling);
- events/s of ``vtguardian ingest`` into SQLite and into MariaDB, and the ratio
  to the bare loop (target >= 0.5; >= 0.45 since resolutions are stored too),
  with each run's peak RSS (target < 200 MB), and the resolutions (DNS answers
  per name, address, device and hour) it stored per second;
- the CPU each ingest used (the writing process, the parser processes and, for a
  MariaDB on this machine, the server): divided among the cores, it is the least
  time any schedule could take, so it shows the best ratio that work allows;
- events/s of the naive approach of the original Home Network Guardian scripts,
  one SELECT + INSERT per line on MariaDB (measured on a slice, it is slow).

Each phase runs in its own process so its peak memory is its own. Each ingest is
compared with the fastest of bare loops run just before and just after it: this
machine's speed drifts, and the fastest errs the ratio low, never high.
Usage: python benchmarks/ingest.py [--events 1000000] [--scattered-answers]

Each site answers with its own addresses, as real resolvers do. With
``--scattered-answers`` every DNS answer names an address unrelated to its
question instead (the file this benchmark generated until 2026-12-03): about
four times as many hourly rows to store, a worst case for the writer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson

MARIADB = os.environ.get("VTGUARDIAN_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


def generate(path: Path, events: int, seed: int = 3, scattered: bool = False) -> None:
    rng = random.Random(seed)
    domains = [f"www.site{n}.example.com" for n in range(20_000)]
    # Each site has its own 1 to 4 addresses (a CDN's behind a CNAME), and an answer names
    # them all, as a resolver answers a name with the same records for their TTL.
    addresses = [
        [f"93.{184 + k}.{n // 250}.{n % 250 + 1}" for k in range((1, 1, 2, 1, 3, 1, 2, 4)[n % 8])]
        for n in range(len(domains))
    ]
    clients = [f"192.168.1.{n}" for n in range(10, 60)]
    with path.open("wb") as handle:
        for n in range(events):
            second = n * 86_400 // events
            clock = f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
            ts = f"2024-05-01T{clock}.{n % 1_000_000:06d}+0200"
            client = clients[int(rng.paretovariate(1.5)) % len(clients)]
            site = int(rng.paretovariate(1.1)) % len(domains)
            domain, address = domains[site], addresses[site]
            if scattered:
                address = [f"93.184.{n % 200}.{n % 250 + 1}"]
            roll = rng.random()
            base = {"timestamp": ts, "flow_id": n, "src_ip": client, "dest_ip": "192.168.1.1"}
            if roll < 0.55:
                event = {
                    **base,
                    "event_type": "dns",
                    "proto": "UDP",
                    "dns": {
                        "type": "query",
                        "id": n % 65536,
                        "rrname": domain,
                        "rrtype": "A",
                        "tx_id": 0,
                    },
                }
            elif roll < 0.8:
                event = {
                    **base,
                    "event_type": "dns",
                    "src_ip": "192.168.1.1",
                    "dest_ip": client,
                    "proto": "UDP",
                    "dns": {
                        "version": 2,
                        "type": "answer",
                        "id": n % 65536,
                        "rrname": domain,
                        "rrtype": "A",
                        "rcode": "NOERROR",
                        "grouped": (
                            {"A": address}
                            if len(address) == 1
                            else {"CNAME": [f"{domain}.cdn.example.net"], "A": address}
                        ),
                    },
                }
            elif roll < 0.95:
                event = {
                    **base,
                    "event_type": "tls",
                    "dest_ip": "93.184.216.34" if scattered else address[0],
                    "dest_port": 443,
                    "proto": "TCP",
                    "tls": {"sni": domain, "version": "TLS 1.3"},
                }
            elif roll < 0.999:
                event = {
                    **base,
                    "event_type": "http",
                    "dest_ip": "93.184.216.34" if scattered else address[0],
                    "dest_port": 80,
                    "proto": "TCP",
                    "http": {
                        "hostname": domain,
                        "url": f"/index{n % 50}.html",
                        "http_method": "GET",
                    },
                }
            else:
                event = {
                    **base,
                    "event_type": "alert",
                    "dest_ip": f"185.220.{n % 100}.{n % 200 + 1}",
                    "proto": "TCP",
                    "alert": {
                        "signature_id": 2013028,
                        "signature": "ET POLICY curl User-Agent Outbound",
                        "category": "Attempted Information Leak",
                        "severity": 2,
                    },
                }
            handle.write(orjson.dumps(event) + b"\n")


def phase_bare(path: str) -> dict:
    started = time.perf_counter()
    count = 0
    with open(path, "rb") as handle:
        for line in handle:
            orjson.loads(line)
            count += 1
    return {"events": count, "seconds": time.perf_counter() - started}


def phase_ingest(path: str, url: str) -> dict:
    from vtguardian.config import FollowedSource
    from vtguardian.ingest.run import ingest
    from vtguardian.iocs import Classifier
    from vtguardian.store import migrate
    from vtguardian.store.engine import make_engine

    engine = make_engine(url)
    migrate.upgrade(engine)
    self_before, children_before = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    server_before = _server_cpu(url)
    started = time.perf_counter()
    totals = ingest(engine, Classifier(), [FollowedSource(source="suricata", path=path)])
    seconds = time.perf_counter() - started
    server_after = _server_cpu(url)
    return {
        "events": totals.events,
        "resolutions": getattr(totals, "resolutions", 0),
        "seconds": seconds,
        "cpu_writer": _cpu(resource.RUSAGE_SELF) - self_before,
        "cpu_parsers": _cpu(resource.RUSAGE_CHILDREN) - children_before,
        "cpu_server": (
            None if server_before is None or server_after is None else server_after - server_before
        ),
    }


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _server_cpu(url: str) -> float | None:
    """CPU seconds of the MariaDB/MySQL server at ``url`` if it runs on this machine."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return None  # no server
    if parsed.host not in (None, "localhost", "127.0.0.1", "::1"):
        return None  # a local server, if any, is not the one being written to
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in ("mariadbd", "mysqld"):
                fields = comm.with_name("stat").read_text().rsplit(")", 1)
                utime, stime = fields[1].split()[11:13]
                return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            continue
    return None


def report(label: str, result: dict, bare_rate: float) -> float:
    """Print an ingest's speed against the bare loop and the CPU it used; its events/s."""
    rate = result["events"] / result["seconds"]
    print(f"bare orjson.loads loop:     {bare_rate:>10,.0f} events/s")
    print(
        f"{f'vtguardian -> {label}:':<28}{rate:>10,.0f} events/s  ratio {rate / bare_rate:.2f}"
        f"  peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    stored = result.get("resolutions", 0)
    print(
        f"{'':<28}{stored / result['seconds']:>10,.0f} resolutions stored/s"
        f"  ({stored:,} rows of DNS answers per name, address, device and hour)"
    )
    print(report_cpu(result, bare_rate))
    return rate


def report_cpu(result: dict, bare_rate: float) -> str:
    """The CPU an ingest used and the best ratio it allows on this machine's cores."""
    parts = [f"writer {result['cpu_writer']:.2f} s", f"parsers {result['cpu_parsers']:.2f} s"]
    total = result["cpu_writer"] + result["cpu_parsers"]
    server = result.get("cpu_server")
    if server is not None:
        parts.append(f"MariaDB server {server:.2f} s")
        total += server
    cores = os.cpu_count() or 1
    floor = total / cores
    best = result["events"] / floor / bare_rate
    return (
        f"  CPU: {' + '.join(parts)} = {total:.2f} s; on {cores} cores no schedule takes"
        f" less than {floor:.2f} s: a ratio of at most {best:.2f}"
    )


def phase_naive(path: str, url: str, limit: int) -> dict:
    """The original scripts: for each line, SELECT the domain, INSERT it when new."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE IF NOT EXISTS naive_domains (id INT AUTO_INCREMENT PRIMARY KEY, "
                "domain VARCHAR(255), client VARCHAR(45), ts VARCHAR(40), INDEX (domain))"
            )
        )
    started = time.perf_counter()
    count = 0
    with open(path, "rb") as handle, engine.connect() as connection:
        for line in handle:
            if count >= limit:
                break
            event = orjson.loads(line)
            count += 1
            name = event.get("dns") or event.get("tls") or event.get("http") or {}
            domain = name.get("rrname") or name.get("sni") or name.get("hostname")
            if not domain:
                continue
            found = connection.execute(
                text("SELECT id FROM naive_domains WHERE domain = :d"), {"d": domain}
            ).first()
            if found is None:
                connection.execute(
                    text("INSERT INTO naive_domains (domain, client, ts) VALUES (:d, :c, :t)"),
                    {"d": domain, "c": event["src_ip"], "t": event["timestamp"]},
                )
            connection.commit()
    return {"events": count, "seconds": time.perf_counter() - started}


def run_phase(*args: str) -> dict:
    """Run one phase in a child process; add its peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    output = subprocess.run(
        [sys.executable, __file__, "--phase", *args], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mb"] = max(peak, before) / 1024
    return result


def _bare_rate(eve: Path, runs: int) -> float:
    """The fastest of ``runs`` runs: the ceiling, so the ratio errs low, never high."""
    results = [run_phase("bare", str(eve)) for _ in range(runs)]
    return max(run["events"] / run["seconds"] for run in results)


def compared(eve: Path, ingest: Callable[[], dict]) -> tuple[dict, float]:
    """An ingest and the bare loop it is compared with: the fastest of two runs just
    before it and one just after. The machine's speed drifts over minutes, and a bare
    loop measured in a slow moment alone would make the ratio look better than it is."""
    before = _bare_rate(eve, 2)
    result = ingest()
    return result, max(before, _bare_rate(eve, 1))


def temporary_database() -> tuple[str, Callable[[], None]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = create_engine(make_url(MARIADB).set(database=None), isolation_level="AUTOCOMMIT")
    name = f"vtg_bench_{uuid.uuid4().hex[:8]}"
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))

    return make_url(MARIADB).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--naive-events", type=int, default=20_000)
    parser.add_argument(
        "--scattered-answers",
        action="store_true",
        help="every DNS answer a different address: the writer's worst case",
    )
    parser.add_argument("--phase", nargs="*")
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        result = {"bare": phase_bare, "ingest": phase_ingest, "naive": phase_naive}[name](
            *[int(x) if x.isdigit() else x for x in rest]
        )
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as folder:
        eve = Path(folder) / "eve.json"
        generate(eve, args.events, scattered=args.scattered_answers)
        os.sync()  # the file's write-back would otherwise slow whichever phase runs first
        size = eve.stat().st_size / 1e6
        shape = "scattered answers" if args.scattered_answers else "answers per site"
        print(
            f"eve.json: {args.events} events ({shape}), {size:.0f} MB"
            f" (machine: {os.cpu_count()} cores)"
        )
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.db'}"
        report("SQLite", *compared(eve, lambda: run_phase("ingest", str(eve), sqlite_url)))
        url, drop = temporary_database()
        try:
            maria = compared(eve, lambda: run_phase("ingest", str(eve), url))
            rate_m = report("MariaDB", *maria)
            naive = run_phase("naive", str(eve), url, str(args.naive_events))
            rate_n = naive["events"] / naive["seconds"]
            print(
                f"naive SELECT+INSERT/line:   {rate_n:>10,.0f} events/s  "
                f"(on {naive['events']} events; vtguardian is {rate_m / rate_n:.0f}x faster)"
            )
        finally:
            drop()


if __name__ == "__main__":
    main()
