"""``vtguardian run`` as a user starts it: a real process, a followed log, the
emulator over HTTP, a real gravity.db, the API, and SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from helpers import VTGUARDIAN, gravity_db, wait_for
from sources_helpers import stored_hits
from vtguardian.store.engine import make_engine
from vtguardian.testing.vt_emulator import DEFAULT_KEY

MALICIOUS = "malware-c2.example.net"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _dns_query(name: str, n: int) -> bytes:
    event = {
        "timestamp": f"2024-05-01T10:{n // 60 % 60:02d}:{n % 60:02d}.000000+0000",
        "event_type": "dns",
        "src_ip": "192.168.1.23",
        "dest_ip": "192.168.1.1",
        "dns": {"type": "query", "rrname": name, "rrtype": "A"},
    }
    return orjson.dumps(event) + b"\n"


def _start(config: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")}
    env.pop("VT_API_KEY", None)
    return subprocess.Popen(
        [*VTGUARDIAN, "--config", str(config), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def _stop(process: subprocess.Popen, log: Path) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("vtguardian run did not stop within 20 s of SIGTERM") from None
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    return time.monotonic() - started


@pytest.fixture
def setup(tmp_path, vt_emulator):
    eve = tmp_path / "eve.json"
    eve.write_bytes(b"")
    gravity = tmp_path / "gravity.db"
    gravity_db(gravity)
    port = _free_port()
    database = tmp_path / "vtguardian.db"
    config = tmp_path / "vtguardian.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{database}"

[virustotal]
api_key = "{DEFAULT_KEY}"
host = "{vt_emulator.url}"
per_minute = 1000
per_day = 10000
per_month = 100000

[ingest]
poll_seconds = 0.2

[[ingest.sources]]
source = "suricata"
path = "{eve}"

[pihole]
gravity_db = "{gravity}"
reload_command = "touch {tmp_path / "reloaded"}"

[web]
port = {port}

[run]
pihole_blocking = true
actions_every_seconds = 0.5
"""
    )
    return {
        "eve": eve,
        "gravity": gravity,
        "config": config,
        "url": f"http://127.0.0.1:{port}",
        "database": database,
        "log": tmp_path / "run.log",
        "tmp": tmp_path,
    }


def _hits(database: Path) -> dict[str, int]:
    engine = make_engine(f"sqlite:///{database}")
    try:
        return {value: hits for (_kind, value), hits in stored_hits(engine).items()}
    finally:
        engine.dispose()


def _denied(gravity: Path) -> set[str]:
    with sqlite3.connect(gravity) as connection:
        return {
            row[0]
            for row in connection.execute(
                "SELECT domain FROM domainlist WHERE type = 1 AND comment LIKE 'vtguardian:%'"
            )
        }


def test_run_follows_looks_up_blocks_serves_and_stops_cleanly(setup):
    s = setup
    process = _start(s["config"], s["log"])
    try:
        wait_for(lambda: _get(s["url"] + "/healthz"), what="the web app", timeout=60)  # started
        with s["eve"].open("ab") as handle:  # written while the daemon follows the file
            for n in range(30):
                handle.write(_dns_query(MALICIOUS if n % 3 == 0 else "www.example.org", n))
        detail = wait_for(
            lambda: (d := _get(f"{s['url']}/api/v1/iocs/{MALICIOUS}")) and d.get("verdict") and d,
            what="the verdict on the API",
        )
        assert detail["verdict"]["verdict"] == "malicious"
        wait_for(lambda: MALICIOUS in _denied(s["gravity"]), what="the Pi-hole block")
        # The deny entry is committed to gravity.db before the reload command runs.
        wait_for(lambda: (s["tmp"] / "reloaded").exists(), what="Pi-hole's reload command")
        # A half-written last line must wait for its newline, across the restart.
        with s["eve"].open("ab") as handle:
            handle.write(_dns_query("late.example.org", 99)[:40])
        time.sleep(0.6)
    finally:
        seconds = _stop(process, s["log"])
    assert seconds < 10
    assert _hits(s["database"]) == {MALICIOUS: 10, "www.example.org": 20}

    # Restart: the rest of that line and new lines are read once; nothing is read twice.
    with s["eve"].open("ab") as handle:
        handle.write(_dns_query("late.example.org", 99)[40:])
        handle.write(_dns_query(MALICIOUS, 100))
    process = _start(s["config"], s["log"])
    try:
        wait_for(
            lambda: _hits(s["database"]).get("late.example.org") == 1,
            what="the lines written while stopped",
        )
        time.sleep(1.0)
    finally:
        _stop(process, s["log"])
    assert _hits(s["database"]) == {MALICIOUS: 11, "www.example.org": 20, "late.example.org": 1}
    assert _denied(s["gravity"]) == {MALICIOUS}


def test_run_with_a_taken_port_says_so_and_stores_what_it_read(setup):
    s = setup
    port = int(s["url"].rsplit(":", 1)[1])
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        s["eve"].write_bytes(_dns_query("www.example.org", 1))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")}
        completed = subprocess.run(
            [*VTGUARDIAN, "--config", str(s["config"]), "run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    assert f"127.0.0.1:{port}" in completed.stderr.splitlines()[-1]
    assert _hits(s["database"]) == {"www.example.org": 1}


def _get(url: str) -> dict | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def test_run_serves_on_an_ipv6_loopback_address(setup):
    s = setup
    port = int(s["url"].rsplit(":", 1)[1])
    config = s["config"].read_text().replace("[web]\n", '[web]\nhost = "::1"\n')
    s["config"].write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")}
    with open(s["log"], "w") as log:
        process = subprocess.Popen(
            [*VTGUARDIAN, "--config", str(s["config"]), "run"], env=env, stderr=log
        )
    try:
        wait_for(lambda: _get(f"http://[::1]:{port}/healthz"), what="the page on ::1", timeout=60)
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert f"http://[::1]:{port}/" in s["log"].read_text()


def test_run_blocks_and_alerts_on_the_verdict_without_waiting_for_its_timers(setup):
    """Blocking's timer is an hour and the follower polls hourly: the line is read on
    inotify's word, the verdict wakes the blocking round and the alert's delivery."""
    from aiohttp import web

    from vtguardian.testing.server import BackgroundServer

    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    def app() -> web.Application:
        application = web.Application()
        application.router.add_post("/hook", hook)
        return application

    s = setup
    with BackgroundServer(app) as receiver:
        config = s["config"].read_text()
        config = config.replace("poll_seconds = 0.2", "poll_seconds = 3600")
        config = config.replace("actions_every_seconds = 0.5", "actions_every_seconds = 3600")
        config += f'\n[alerts]\nwebhook_url = "{receiver.url}/hook"\n'
        s["config"].write_text(config)
        process = _start(s["config"], s["log"])
        try:
            wait_for(lambda: _get(s["url"] + "/healthz"), what="the web app", timeout=60)
            time.sleep(0.5)  # the first blocking round (at start) is over
            with s["eve"].open("ab") as handle:
                handle.write(_dns_query(MALICIOUS, 1))
            wait_for(lambda: MALICIOUS in _denied(s["gravity"]), what="the Pi-hole block")
            wait_for(lambda: received, what="the webhook alert")
        finally:
            _stop(process, s["log"])
    assert [(a["ioc"]["value"], a["verdict"]) for a in received] == [(MALICIOUS, "malicious")]
    assert [c["ip"] for c in received[0]["clients"]] == ["192.168.1.23"]
