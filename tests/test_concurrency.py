"""Several collectors on one MariaDB: no sighting increment may be lost."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta

from sqlalchemy import func, select

from vtguardian.store.engine import make_engine, run_in_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs
from vtguardian.store.schema import clients, iocs, sightings
from vtguardian.store.sightings import add_sightings

WORKERS = 4
BATCHES = 40
DOMAINS = [f"host{n}.example.com" for n in range(30)]
CLIENTS = [f"192.168.1.{n}" for n in range(1, 6)]
HOURS = [datetime(2026, 11, 20, h) for h in range(3)]


def _worker(url: str, seed: int, queue: multiprocessing.Queue) -> None:
    """Each batch creates entities (racing the other workers) and adds sightings."""
    engine = make_engine(url)
    sent = 0
    for batch in range(BATCHES):
        domain_slice = DOMAINS[(seed + batch) % 7 :: 2]
        hour = HOURS[(seed * batch) % len(HOURS)]

        def work(connection, domain_slice=domain_slice, hour=hour, batch=batch):
            ioc_ids = ensure_iocs(
                connection, {("domain", d): ("example.com", hour, hour) for d in domain_slice}
            )
            client_ids = ensure_clients(connection, {ip: (None, hour, hour) for ip in CLIENTS})
            counts = {}
            for d in domain_slice:
                for ip in CLIENTS:
                    key = (ioc_ids[("domain", d)], client_ids[ip], "pihole", hour)
                    counts[key] = (batch % 3 + 1, batch % 2, hour + timedelta(minutes=batch))
            add_sightings(connection, counts)
            return sum(hits for hits, _, _ in counts.values())

        sent += run_in_transaction(engine, work)
    engine.dispose()
    queue.put(sent)


def test_four_processes_lose_no_increment(mariadb_url):
    from vtguardian.store import migrate

    engine = make_engine(mariadb_url)
    migrate.upgrade(engine)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(mariadb_url, n, queue)) for n in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
        assert proc.exitcode == 0
    sent = sum(queue.get(timeout=5) for _ in procs)
    expected = sum(
        len(DOMAINS[(seed + batch) % 7 :: 2]) * len(CLIENTS) * (batch % 3 + 1)
        for seed in range(WORKERS)
        for batch in range(BATCHES)
    )
    assert sent == expected
    with engine.connect() as connection:
        stored = connection.execute(select(func.sum(sightings.c.hits))).scalar()
        ioc_count = connection.execute(select(func.count()).select_from(iocs)).scalar()
        client_count = connection.execute(select(func.count()).select_from(clients)).scalar()
    assert int(stored) == expected
    assert ioc_count == len(DOMAINS) and client_count == len(CLIENTS)
    engine.dispose()
