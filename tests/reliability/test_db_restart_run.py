"""A MariaDB restart under ``vtguardian run`` (a follower on inotify, the worker,
blocking and alerts all woken by each other, their timers an hour long): it waits,
carries on, blocks and alerts on what came in while the database was down, counts
every line once, and stops cleanly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import orjson
from aiohttp import web
from sqlalchemy.exc import DBAPIError
from test_db_restart import private_mariadb  # noqa: F401 - the fixture

from helpers import gravity_db, wait_for
from sources_helpers import stored_hits
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine
from vtguardian.testing.server import BackgroundServer
from vtguardian.testing.vt_emulator import DEFAULT_KEY

FIRST, SECOND = "malware-c2.example.net", "phish-login.example.org"


def _query(name: str, n: int) -> bytes:
    event = {
        "timestamp": f"2026-12-05T06:{n // 60 % 60:02d}:{n % 60:02d}.000000+0000",
        "event_type": "dns",
        "src_ip": "192.168.1.23",
        "dest_ip": "192.168.1.1",
        "dns": {"type": "query", "rrname": name, "rrtype": "A"},
    }
    return orjson.dumps(event) + b"\n"


def _hits(engine) -> Counter | None:
    """The stored hits, or None while this test's own connections find the server gone."""
    try:
        return stored_hits(engine)
    except DBAPIError:
        return None


def _denied(gravity) -> set[str]:
    with sqlite3.connect(gravity) as connection:
        return {
            row[0]
            for row in connection.execute(
                "SELECT domain FROM domainlist WHERE type = 1 AND comment LIKE 'vtguardian:%'"
            )
        }


def test_run_waits_out_a_database_restart_and_still_blocks_and_alerts(
    private_mariadb,  # noqa: F811
    vt_emulator,
    tmp_path,
):
    received: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.json())["ioc"]["value"])
        return web.Response(status=204)

    def app() -> web.Application:
        application = web.Application()
        application.router.add_post("/hook", hook)
        return application

    engine = make_engine(private_mariadb.url)
    migrate.upgrade(engine)
    eve = tmp_path / "eve.json"
    eve.write_bytes(b"")
    gravity = gravity_db(tmp_path / "gravity.db")
    config = tmp_path / "vtguardian.toml"
    expected: Counter = Counter()

    def write(names: list[str]) -> None:
        with eve.open("ab") as handle:
            for name in names:
                handle.write(_query(name, sum(expected.values())))
                expected[("domain", name)] += 1

    with BackgroundServer(app) as receiver:
        config.write_text(
            f"""
[database]
url = "{private_mariadb.url}"

[virustotal]
api_key = "{DEFAULT_KEY}"
host = "{vt_emulator.url}"
per_minute = 100000
per_day = 1000000
per_month = 10000000

[ingest]
poll_seconds = 3600

[[ingest.sources]]
source = "suricata"
path = "{eve}"

[pihole]
gravity_db = "{gravity}"
reload_command = "true"

[alerts]
webhook_url = "{receiver.url}/hook"

[run]
web = false
pihole_blocking = true
actions_every_seconds = 3600
"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")}
        env.pop("VT_API_KEY", None)
        log = tmp_path / "run.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "vtguardian", "--config", str(config), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        try:
            write([f"site{n}.example.com" for n in range(10)] + [FIRST])
            wait_for(lambda: FIRST in _denied(gravity), what="the first block")
            wait_for(lambda: FIRST in received, what="the first alert")
            private_mariadb.stop()
            write([f"late{n}.example.com" for n in range(10)] + [SECOND, FIRST])
            time.sleep(3)  # read while the database is down: stored once it is back
            private_mariadb.start()
            wait_for(lambda: SECOND in _denied(gravity), what="the block after the restart")
            wait_for(lambda: SECOND in received, what="the alert after the restart")
            wait_for(lambda: _hits(engine) == expected, what="every line stored once")
            assert process.poll() is None, log.read_text()
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    assert stored_hits(engine) == expected
    # Each alert posted once (the emulator calls a generated name suspicious now and then).
    assert {FIRST, SECOND} <= set(received) and len(received) == len(set(received))
    engine.dispose()
