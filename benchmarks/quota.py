"""How well vtguardian spends the VirusTotal quota (issue: VirusTotal lookups).

Prints, in one run:
1. requests made per distinct eligible IoC for a realistic household mix
   (Zipf-distributed domains, 50 clients, repeats, private addresses), ours
   against the naive one-request-per-log-line approach of the original scripts
   (target for ours: 1.00);
2. the time until an IoC that Suricata alerted on gets its verdict when 5,000
   new benign domains are queued ahead of it, at the real public rate of
   4 requests/minute (target: within the first minute), and where a FIFO queue
   would have put it;
3. requests per IoC with fresh analyses and relationships included: a share of the
   IoCs has a stale analysis (re-analysed: a POST, its polls, the object again) and
   the malicious ones have their relationships fetched;
4. that with the real public limits (4 a minute, a shortened minute so it runs in
   seconds) and small daily budgets, nothing exceeds the minute, day or month
   window, the daily re-analysis cap or the relationship budget, as the emulator
   (which enforces the same limits) saw it;
5. that an alerted IoC is still the next request behind a backlog of re-analyses.

Runs against the built-in emulator over real HTTP with vt-py, on SQLite.
Usage: python benchmarks/quota.py [--events 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select

from vtguardian.clock import utcnow
from vtguardian.config import Settings
from vtguardian.intel.lookup import LookupService
from vtguardian.iocs import Classifier
from vtguardian.store import migrate, queue
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.store.schema import lookup_queue, verdicts
from vtguardian.testing.vt_content import generated_profile, seed_key
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


def settings(db_url: str, vt_url: str, per_minute: int, **virustotal: object) -> Settings:
    return Settings(
        database={"url": db_url},
        virustotal={
            "api_key": DEFAULT_KEY,
            "host": vt_url,
            "per_minute": per_minute,
            "per_day": 1_000_000,
            "per_month": 10_000_000,
            # Parts 1 and 2 measure lookups alone; part 3 adds these.
            "relationship_requests_per_day": 0,
            **virustotal,
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


def stale_and_malicious(
    emulator: VirusTotalEmulator, values, share: float, seed: int = 3, malicious: float = 0.1
) -> None:
    """Seed a ``share`` of ``values`` with a stale analysis (90 days old) and make a
    ``malicious`` share of those malicious, so re-analyses and relationships have work."""
    rng = random.Random(seed)
    for kind, value in sorted(values):
        if rng.random() < share:
            profile = replace(generated_profile(kind, value), analysed_days_ago=90)
            if rng.random() < malicious and profile.found:
                profile = replace(profile, malicious=12, labels=["malware"])
            emulator.seeds[seed_key(kind, value)] = profile


def _by_path(emulator: VirusTotalEmulator) -> dict[str, int]:
    kinds = {"analyse": 0, "poll": 0, "relationship": 0, "submit": 0, "object": 0}
    for call in emulator.calls():
        if not call.key_valid:
            continue
        if call.path.endswith("/analyse"):
            kinds["analyse"] += 1
        elif call.path.startswith("/api/v3/analyses/"):
            kinds["poll"] += 1
        elif call.method == "POST":
            kinds["submit"] += 1
        elif call.path.count("/") > 4:
            kinds["relationship"] += 1
        else:
            kinds["object"] += 1
    return kinds


def with_fresh_analyses(folder: Path, events: int) -> None:
    emulator = VirusTotalEmulator()
    emulator.configure({"analysis": {"polls_to_complete": 2}})
    with EmulatorServer(emulator) as server:
        url = f"sqlite:///{folder / 'fresh.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        classifier = Classifier()
        all_events = household_events(events)
        eligible = {
            (str(c.type), c.value)
            for c in (classifier.classify(v) for _c, v in all_events)
            if c.eligible and c.value
        }
        stale_and_malicious(emulator, eligible, share=0.2)
        service = LookupService(
            settings(url, server.url, 100_000, poll_seconds=0.01, reanalyses_per_day=1_000,
                     relationship_requests_per_day=1_000),
            engine,
        )  # fmt: skip
        distinct = ingest(engine, classifier, all_events)
        asyncio.run(service.run_worker(once=True, idle_seconds=0.01))
        kinds = _by_path(emulator)
        total = sum(kinds.values())
        print(f"distinct eligible IoCs: {len(distinct)}, 20% with a stale analysis")
        print(
            f"requests: {kinds['object']} object lookups (first answers and re-fetches), "
            f"{kinds['analyse']} re-analyses, {kinds['poll']} polls, "
            f"{kinds['relationship']} relationship requests"
        )
        print(
            f"vtguardian with fresh analyses and relationships: {total} requests -> "
            f"{total / len(distinct):.2f} per IoC (lookups alone: 1.00)"
        )
        engine.dispose()


def within_every_budget(folder: Path, iocs: int = 30) -> None:
    """The real public limits per minute (a 1 s "minute"), small day and month budgets,
    ``iocs`` new domains of which half are stale and some of those malicious."""
    minute = 1.0
    budget = {"per_minute": 4, "per_day": 60, "per_month": 70}
    caps = {"reanalyses_per_day": 8, "relationship_requests_per_day": 3}
    emulator = VirusTotalEmulator(quota=Quota(**budget, minute_seconds=minute))
    emulator.configure({"analysis": {"polls_to_complete": 2}})
    with EmulatorServer(emulator) as server:
        url = f"sqlite:///{folder / 'budget.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        names = [("domain", f"b{n}.example.net") for n in range(iocs)]
        stale_and_malicious(emulator, names, share=0.5, malicious=0.4)
        service = LookupService(
            Settings(
                database={"url": url},
                virustotal={"api_key": DEFAULT_KEY, "host": server.url, **budget, **caps,
                            "minute_seconds": minute, "safety_seconds": 0.25,
                            "poll_seconds": 0.05},
            ),
            engine,
        )  # fmt: skip
        now = utcnow()
        with write_transaction(engine) as connection:
            ids = ensure_iocs(connection, {key: (None, now, now) for key in names})
            queue.enqueue(
                connection, [queue.QueueRequest(i, queue.TIER_NEW) for i in ids.values()], now
            )

        async def until_spent() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(service.run_worker(stop=stop, idle_seconds=0.05))
            deadline = time.monotonic() + 120
            empty_since = None  # the queue is briefly empty between a step and the next
            while time.monotonic() < deadline:
                usage = service.quota.usage()
                with engine.connect() as connection:
                    left = queue.queue_length(connection)
                empty_since = (empty_since or time.monotonic()) if left == 0 else None
                if usage.day >= budget["per_day"] or (
                    empty_since and time.monotonic() - empty_since > 1.0
                ):
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await task

        asyncio.run(until_spent())
        calls = [c.at for c in emulator.calls() if c.key_valid]
        busiest = max(
            (sum(1 for t in calls if start <= t < start + minute) for start in calls), default=0
        )
        kinds = _by_path(emulator)
        refused = emulator.over_budget()
        checks = [
            ("requests in any sliding minute", busiest, budget["per_minute"]),
            ("requests today", len(calls), budget["per_day"]),
            ("requests this month", len(calls), budget["per_month"]),
            ("re-analyses today", kinds["analyse"] + kinds["submit"], caps["reanalyses_per_day"]),
            ("relationship requests today", kinds["relationship"],
             caps["relationship_requests_per_day"]),
        ]  # fmt: skip
        for name, used, limit in checks:
            verdict = "ok" if used <= limit else "EXCEEDED"
            print(f"{name}: {used} of {limit} -> {verdict}")
        print(f"429s from the emulator (which enforces the same limits): {refused}")
        engine.dispose()


def alert_behind_reanalyses(folder: Path, backlog: int) -> None:
    emulator = VirusTotalEmulator()
    with EmulatorServer(emulator) as server:
        url = f"sqlite:///{folder / 'behind.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        now = utcnow()
        names = [("domain", f"stale{n}.example.org") for n in range(backlog)]
        stale_and_malicious(emulator, names, share=1.0)
        with write_transaction(engine) as connection:
            ids = ensure_iocs(connection, {key: (None, now, now) for key in names})
            queue.enqueue(
                connection, [queue.QueueRequest(i, queue.TIER_NEW) for i in ids.values()], now
            )
        service = LookupService(
            settings(url, server.url, 100_000, reanalyses_per_day=backlog), engine
        )
        asyncio.run(service.run_worker(max_requests=backlog))
        with engine.connect() as connection:
            waiting = connection.execute(
                select(func.count()).where(lookup_queue.c.reason == "reanalyse")
            ).scalar_one()
        with write_transaction(engine) as connection:
            planted = ensure_iocs(
                connection, {("domain", "malware-c2.example.net"): (None, now, now)}
            )[("domain", "malware-c2.example.net")]
            queue.enqueue(connection, [queue.QueueRequest(planted, queue.TIER_ALERT)], now)
        before = len(emulator.calls())
        asyncio.run(service.run_worker(max_requests=1))
        following = [c.value for c in emulator.calls()[before:]]
        position = following.index("malware-c2.example.net") + 1
        print(f"backlog: {waiting} re-analyses waiting in the queue when Suricata alerted")
        print(f"vtguardian: the alerted IoC was request #{position} after it was queued")
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
        print("== requests per IoC with fresh analyses and relationships ==")
        with_fresh_analyses(Path(folder), args.events)
        print("== the three quota windows and the daily caps ==")
        within_every_budget(Path(folder))
        print("== an alerted IoC behind a backlog of re-analyses ==")
        alert_behind_reanalyses(Path(folder), min(args.backlog, 200))


if __name__ == "__main__":
    main()
