"""How well vtguardian spends the VirusTotal quota (issue: VirusTotal lookups).

Prints, in one run:
1. requests made per distinct eligible IoC for a realistic household mix
   (Zipf-distributed domains, 50 clients, repeats, private addresses), ours
   against the naive one-request-per-log-line approach of the original scripts
   (target for ours: 1.00);
2. the time until an IoC that Suricata alerted on gets its verdict when 5,000
   new benign domains are queued ahead of it, at the real public rate of
   4 requests/minute (target: within the first minute), and where a FIFO queue
   would have put it.

Runs against the built-in emulator over real HTTP with vt-py, on SQLite.
Usage: python benchmarks/quota.py [--events 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from vtguardian.clock import utcnow
from vtguardian.config import Settings
from vtguardian.intel.lookup import LookupService
from vtguardian.iocs import Classifier
from vtguardian.store import migrate, queue
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.store.schema import verdicts
from vtguardian.testing.vt_emulator import DEFAULT_KEY, EmulatorServer, Quota, VirusTotalEmulator


def household_events(count: int, seed: int = 1) -> list[tuple[str, str]]:
    """(client, value) pairs: Zipf popularity, 50 clients, local names and addresses."""
    rng = random.Random(seed)
    domains = [f"site{n}.example.com" for n in range(3000)]
    weights = [1 / (rank + 1) for rank in range(len(domains))]
    local = ["printer.local", "nas.home.arpa", "router", "192.168.1.1", "10.0.0.2", "fe80::1"]
    public_ips = [f"185.{rng.randrange(1, 250)}.{rng.randrange(0, 255)}.{n}" for n in range(200)]
    clients = [f"192.168.1.{n}" for n in range(10, 60)]
    events = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.1:
            value = rng.choice(local)
        elif roll < 0.2:
            value = rng.choice(public_ips)
        else:
            value = rng.choices(domains, weights)[0]
        events.append((rng.choice(clients), value))
    return events


def ingest(engine, classifier: Classifier, events) -> set[tuple[str, str]]:
    """What a collector does with each value: classify, store, queue if eligible."""
    now = utcnow()
    eligible = {}
    for _client, value in events:
        result = classifier.classify(value)
        if result.eligible and result.type and result.value:
            eligible[(str(result.type), result.value)] = (result.registered_domain, now, now)
    with write_transaction(engine) as connection:
        ids = ensure_iocs(connection, eligible)
        queue.enqueue(
            connection, [queue.QueueRequest(i, queue.TIER_NEW) for i in ids.values()], now
        )
    return set(eligible)


def settings(db_url: str, vt_url: str, per_minute: int) -> Settings:
    return Settings(
        database={"url": db_url},
        virustotal={
            "api_key": DEFAULT_KEY,
            "host": vt_url,
            "per_minute": per_minute,
            "per_day": 1_000_000,
            "per_month": 10_000_000,
        },
    )


def requests_per_ioc(folder: Path, events: int) -> None:
    emulator = VirusTotalEmulator()
    with EmulatorServer(emulator) as server:
        url = f"sqlite:///{folder / 'mix.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        service = LookupService(settings(url, server.url, 100_000), engine)
        classifier = Classifier()
        all_events = household_events(events)
        half = len(all_events) // 2
        distinct: set[tuple[str, str]] = set()
        for batch in (all_events[:half], all_events[half:], all_events):  # repeats on purpose
            distinct |= ingest(engine, classifier, batch)
            asyncio.run(service.run_worker(once=True))
        requests = len(emulator.looked_up())
        naive = sum(1 for _c, v in all_events * 2 if classifier.classify(v).eligible)
        private = sum(1 for _c, v in all_events if not classifier.classify(v).eligible)
        print(
            f"events: {len(all_events) * 2} (two passes), private/local never sent: {private * 2}"
        )
        print(f"distinct eligible IoCs: {len(distinct)}")
        print(f"vtguardian: {requests} requests -> {requests / len(distinct):.2f} per IoC")
        print(
            f"naive (one request per eligible line): {naive} requests -> "
            f"{naive / len(distinct):.2f} per IoC; ratio naive/ours = {naive / requests:.1f}x"
        )
        engine.dispose()


def planted_alert(folder: Path, backlog: int) -> None:
    emulator = VirusTotalEmulator(quota=Quota(per_minute=4))
    with EmulatorServer(emulator) as server:
        url = f"sqlite:///{folder / 'planted.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        now = utcnow()
        benign = {("domain", f"new{n}.example.org"): (None, now, now) for n in range(backlog)}
        with write_transaction(engine) as connection:
            ids = ensure_iocs(connection, benign)
            queue.enqueue(
                connection, [queue.QueueRequest(i, queue.TIER_NEW) for i in ids.values()], now
            )
            planted = ensure_iocs(
                connection, {("domain", "malware-c2.example.net"): (None, now, now)}
            )[("domain", "malware-c2.example.net")]
            queue.enqueue(connection, [queue.QueueRequest(planted, queue.TIER_ALERT)], now)
        service = LookupService(settings(url, server.url, 4), engine)
        started = time.monotonic()

        async def until_planted() -> float:
            task = asyncio.create_task(service.run_worker())
            while True:
                with engine.connect() as connection:
                    done = connection.execute(
                        verdicts.select().where(verdicts.c.ioc_id == planted)
                    ).first()
                if done is not None:
                    elapsed = time.monotonic() - started
                    task.cancel()
                    return elapsed
                await asyncio.sleep(0.05)

        elapsed = asyncio.run(until_planted())
        position = [v for _k, v in emulator.looked_up()].index("malware-c2.example.net") + 1
        fifo_minutes = (backlog + 1 - 4) / 4
        print(f"backlog: {backlog} new benign domains queued before the alerted IoC, 4 req/min")
        print(f"vtguardian: alerted IoC was request #{position}, verdict after {elapsed:.2f} s")
        print(
            f"FIFO queue: it would be request #{backlog + 1}, verdict after about "
            f"{fifo_minutes:.0f} min ({fifo_minutes / 60:.1f} h); "
            f"ratio FIFO/ours = {fifo_minutes * 60 / max(elapsed, 1e-3):.0f}x"
        )
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--backlog", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print("== requests per distinct eligible IoC ==")
        requests_per_ioc(Path(folder), args.events)
        print("== time to verdict for an IoC Suricata alerted on ==")
        planted_alert(Path(folder), args.backlog)


if __name__ == "__main__":
    main()
