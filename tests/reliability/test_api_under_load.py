"""The API under a bounded local load while an ingest writes: no errors, the
ingest loses nothing, and the latency figures are printed (not asserted)."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson

from helpers import served, settings_for
from sources_helpers import ingest, stored_hits
from test_api import AUTH, TOKEN, _seed
from vtguardian.web.app import create_app

REQUESTS = 300
WORKERS = 8


def test_cached_lookups_and_pages_under_load_while_ingesting(engine, db_url, tmp_path):
    _seed(engine)
    app = create_app(settings_for(db_url, "http://127.0.0.1:9", web={"token": TOKEN}), engine)
    log = tmp_path / "eve.json"
    lines = 10_000
    log.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "timestamp": f"2024-05-01T10:{n // 60 % 60:02d}:{n % 60:02d}.000000+0000",
                    "event_type": "dns",
                    "src_ip": f"192.168.1.{10 + n % 40}",
                    "dest_ip": "192.168.1.1",
                    "dns": {"type": "query", "rrname": f"load{n % 500}.example.com"},
                }
            )
            + b"\n"
            for n in range(lines)
        )
    )
    ingested: list = []
    writer = threading.Thread(
        target=lambda: ingested.append(ingest(engine, "suricata", log, batch_lines=500))
    )

    def call(n: int) -> tuple[float, int]:
        started = time.perf_counter()
        with httpx.Client(base_url=base, timeout=30) as client:
            if n % 10 == 0:
                response = client.get("/api/v1/panels", params={"range": "24h"})
            else:
                response = client.post(
                    "/api/v1/lookup", json={"values": ["known-bad.example.com"]}, headers=AUTH
                )
        return time.perf_counter() - started, response.status_code

    with served(app) as base:
        writer.start()
        with ThreadPoolExecutor(WORKERS) as pool:
            results = list(pool.map(call, range(REQUESTS)))
        writer.join(timeout=300)
    statuses = [status for _t, status in results]
    lookups = sorted(t for n, (t, _s) in enumerate(results) if n % 10)
    p99 = lookups[int(0.99 * len(lookups)) - 1] * 1000
    print(
        f"\n{engine.dialect.name}: {REQUESTS} requests, {WORKERS} at a time, while ingesting "
        f"{lines} lines: errors {sum(s != 200 for s in statuses)}, cached lookup p50 "
        f"{statistics.median(lookups) * 1000:.0f} ms, p99 {p99:.0f} ms"
    )
    assert statuses.count(200) == REQUESTS
    assert ingested and ingested[0].events == lines
    hits = stored_hits(engine)
    assert sum(v for (_k, value), v in hits.items() if value.startswith("load")) == lines
