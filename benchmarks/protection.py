"""Time to protection: from a device's first query of a malicious domain to its block.

Runs ``vtguardian run`` as a user does (a real process following pihole.log and
Suricata's eve.json, blocking on in a copy of Pi-hole's gravity.db, a webhook for
alerts), against the built-in VirusTotal emulator over HTTP, and prints:

1. with quota to spare, over ``--trials`` first queries of malicious domains, p50
   and p95 of each stage: line written -> stored -> looked up -> verdict -> block
   written (the gravity.db entry) -> alert sent (the webhook received it), and of
   line -> block and line -> alert (targets: p95 under 5 s; before the wake-ups,
   blocking waited for a 60 s timer);
2. the CPU ``vtguardian run`` uses idle and at ``--rate`` queries/s (targets: under
   1% and under 2% of one core), idle beside the same daemon polling its files;
3. bound by the quota (``--per-minute`` 4, the public API's rate) with a backlog of
   new domains ahead of it: the stages for a domain Suricata alerted on, which is
   looked up first once the minute's requests free up.

The machine is shared with whatever else runs; the figures are one run's.
Usage: python benchmarks/protection.py [--trials 20] [--idle-seconds 60]
       [--load-seconds 60] [--rate 10] [--backlog 30] [--minute-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from sqlalchemy import select

from vtguardian.store.engine import make_engine
from vtguardian.store.schema import iocs, reports
from vtguardian.testing.server import BackgroundServer
from vtguardian.testing.vt_content import Profile
from vtguardian.testing.vt_emulator import DEFAULT_KEY, EmulatorServer, Quota, VirusTotalEmulator

REPO = Path(__file__).resolve().parent.parent
GRAVITY_SQL = REPO / "tests" / "data" / "pihole" / "FTL-test-gravity.db.sql"
DEVICE = "192.168.1.23"
STAGES = ("stored", "looked up", "verdict", "block written", "alert sent")
BAD = Profile(malicious=14, suspicious=2, harmless=40, undetected=30, labels=["phishing"])
GOOD = Profile(harmless=60, undetected=28, labels=["news"])


class Webhook:
    """A webhook that notes when each alert arrived, per IoC value."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.server = BackgroundServer(self._app)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        return app

    async def _post(self, request: web.Request) -> web.Response:
        at = time.time()
        body = await request.json()
        value = (body.get("ioc") or {}).get("value")
        if isinstance(value, str):
            self.arrived.setdefault(value, at)
        return web.Response(status=204)

    @property
    def url(self) -> str:
        return f"{self.server.url}/hook"


@dataclass
class Daemon:
    """One ``vtguardian run`` process and the files it follows."""

    folder: Path
    vt_url: str
    hook_url: str
    per_minute: int = 100_000
    minute_seconds: float = 60.0
    file_notifications: bool = True
    process: subprocess.Popen | None = None
    lines: int = field(default=0)

    @property
    def pihole_log(self) -> Path:
        return self.folder / "pihole.log"

    @property
    def eve(self) -> Path:
        return self.folder / "eve.json"

    @property
    def gravity(self) -> Path:
        return self.folder / "gravity.db"

    @property
    def database(self) -> Path:
        return self.folder / "vtguardian.db"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pihole_log.touch()
        self.eve.touch()
        if not self.gravity.exists():
            with sqlite3.connect(self.gravity) as connection:
                connection.executescript(GRAVITY_SQL.read_text())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = self.folder / "vtguardian.toml"
        config.write_text(
            f"""
[database]
url = "sqlite:///{self.database}"

[virustotal]
api_key = "{DEFAULT_KEY}"
host = "{self.vt_url}"
per_minute = {self.per_minute}
per_day = 1000000
per_month = 10000000
minute_seconds = {self.minute_seconds}

[ingest]
file_notifications = {str(self.file_notifications).lower()}

[[ingest.sources]]
source = "pihole-log"
path = "{self.pihole_log}"

[[ingest.sources]]
source = "suricata"
path = "{self.eve}"

[pihole]
gravity_db = "{self.gravity}"
reload_command = "true"

[alerts]
webhook_url = "{self.hook_url}"

[web]
port = {port}

[run]
pihole_blocking = true
"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")}
        env.pop("VT_API_KEY", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vtguardian", "--config", str(config), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "run.log").open("ab"),
        )
        _until(lambda: _up(f"http://127.0.0.1:{port}/healthz"), 120, "the web app")
        # The followers are reading once a line written now is stored.
        self.query("warmup.example.org")
        _until(lambda: self.stored("warmup.example.org") is not None, 60, "the first line")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)

    def query(self, domain: str) -> float:
        """Append one Pi-hole query line; the moment it was written."""
        self.lines += 1
        stamp = datetime.now().strftime("%b %e %H:%M:%S")
        line = f"{stamp} dnsmasq[612]: query[A] {domain} from {DEVICE}\n"
        with self.pihole_log.open("a") as handle:
            handle.write(line)
        return time.time()

    def alert(self, domain: str) -> float:
        """Append one Suricata alert on a TLS connection to ``domain``."""
        event = {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000"),
            "event_type": "alert",
            "src_ip": DEVICE,
            "src_port": 51000,
            "dest_ip": "203.0.113.9",
            "dest_port": 443,
            "proto": "TCP",
            "alert": {
                "signature_id": 2_000_001,
                "signature": "ET PHISHING known phishing domain in TLS SNI",
                "category": "Web Application Attack",
                "severity": 1,
            },
            "tls": {"sni": domain},
        }
        with self.eve.open("ab") as handle:
            handle.write(orjson.dumps(event) + b"\n")
        return time.time()

    def stored(self, domain: str) -> float | None:
        with closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as connection:
            found = connection.execute(
                "SELECT 1 FROM iocs WHERE type = 'domain' AND value = ?", (domain,)
            ).fetchone()
        return time.time() if found else None

    def blocked(self, domain: str) -> bool:
        with closing(sqlite3.connect(f"file:{self.gravity}?mode=ro", uri=True)) as connection:
            return (
                connection.execute(
                    "SELECT 1 FROM domainlist WHERE type = 1 AND domain = ?", (domain,)
                ).fetchone()
                is not None
            )

    def cpu_seconds(self) -> float:
        """User and system CPU time of the process so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _until(done: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def running(daemon: Daemon):
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def follow_one(
    daemon: Daemon, webhook: Webhook, emulator: VirusTotalEmulator, domain: str, alerted: bool
) -> dict[str, float]:
    """Write the first query of ``domain`` and time each stage after it, in seconds."""
    written = daemon.alert(domain) if alerted else daemon.query(domain)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + max(120.0, 3 * daemon.minute_seconds)
    while ("block written" not in seen or domain not in webhook.arrived) and (
        time.monotonic() < deadline
    ):
        if "stored" not in seen and (at := daemon.stored(domain)) is not None:
            seen["stored"] = at
        if "block written" not in seen and daemon.blocked(domain):
            seen["block written"] = time.time()
        time.sleep(0.01)
    if domain in webhook.arrived:
        seen["alert sent"] = webhook.arrived[domain]
    asked = [c.at for c in emulator.calls() if c.value == domain and c.status == 200]
    if asked:
        seen["looked up"] = asked[0]
    engine = make_engine(f"sqlite:///{daemon.database}")
    try:
        with engine.connect() as connection:
            fetched = connection.execute(
                select(reports.c.fetched_at)
                .join(iocs, iocs.c.id == reports.c.ioc_id)
                .where(iocs.c.value == domain, reports.c.verdict == "malicious")
            ).scalar()
    finally:
        engine.dispose()
    if fetched is not None:
        seen["verdict"] = fetched.replace(tzinfo=UTC).timestamp()
    return {stage: at - written for stage, at in seen.items()}


def _quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), cuts[18]


def print_stages(results: list[dict[str, float]]) -> None:
    """Each stage from the line written, and from the stage it waits for."""
    print(f"{'stage (from the line written)':32} {'p50':>8} {'p95':>8}  trials")
    for stage, after in zip(STAGES, (None, *STAGES[:3], "verdict"), strict=True):
        values = [r[stage] for r in results if stage in r]
        if not values:
            print(f"  -> {stage:27} {'-':>8} {'-':>8}  0")
            continue
        p50, p95 = _quantiles(values)
        print(f"  -> {stage:27} {p50:7.2f}s {p95:7.2f}s  {len(values)}")
        steps = [r[stage] - r[after] for r in results if after and stage in r and after in r]
        if steps:
            s50, s95 = _quantiles(steps)
            print(f"     ({after} -> {stage}: p50 {s50:.2f}s, p95 {s95:.2f}s)")


def with_quota(folder: Path, trials: int) -> list[dict[str, float]]:
    names = [f"phish{n}-login.example.net" for n in range(trials)]
    emulator = VirusTotalEmulator(seeds={("domain", n): BAD for n in names})
    webhook = Webhook()
    results = []
    with EmulatorServer(emulator) as vt, _serving(webhook):
        daemon = Daemon(folder, vt.url, webhook.url)
        with running(daemon):
            for name in names:
                results.append(follow_one(daemon, webhook, emulator, name, alerted=False))
                time.sleep(0.5)
    return results


@contextmanager
def _serving(webhook: Webhook):
    webhook.server.start()
    try:
        yield webhook
    finally:
        webhook.server.stop()


def cpu_use(folder: Path, idle_seconds: float, load_seconds: float, rate: float) -> None:
    """Per cent of one core, idle (notifications and polling) and at ``rate`` queries/s."""
    emulator = VirusTotalEmulator()
    webhook = Webhook()
    known = [f"site{n}.example.com" for n in range(200)]
    figures: dict[str, float] = {}
    with EmulatorServer(emulator) as vt, _serving(webhook):
        for notifications in (True, False):
            daemon = Daemon(
                folder / f"cpu-{notifications}",
                vt.url,
                webhook.url,
                file_notifications=notifications,
            )
            with running(daemon):
                asked = len(emulator.calls())
                for name in known:  # a household's usual names, answered once
                    daemon.query(name)
                _until(lambda d=daemon: d.stored(known[-1]) is not None, 60, "the usual names")
                enough = asked + len(known)
                _until(lambda n=enough: len(emulator.calls()) >= n, 120, "their lookups")
                time.sleep(3)  # the last answers and the blocking round settle
                label = "notifications" if notifications else "polling"
                figures[f"idle, {label}"] = _share(daemon, idle_seconds, lambda: None)
                if not notifications:
                    continue

                def one_query(d: Daemon = daemon, counter=iter(range(10**9))) -> None:
                    n = next(counter)
                    # Mostly names seen before, one in twenty new (looked up).
                    name = f"new{n}.example.org" if n % 20 == 0 else known[n % len(known)]
                    d.query(name)

                figures[f"{rate:g} queries/s"] = _share(daemon, load_seconds, one_query, rate)
    print(f"{'vtguardian run':32} {'CPU, % of one core':>20}")
    for what, share in figures.items():
        target = "< 2%" if "queries" in what else "< 1%"
        if "polling" in what:
            target = "(files polled every poll_seconds, 1 s)"
        print(f"  {what:30} {share:19.2f}%  {target}")
    polled, notified = figures["idle, polling"], figures["idle, notifications"]
    if notified > 0:
        print(f"  idle: polling / notifications = {polled / notified:.1f}x")


def _share(daemon: Daemon, seconds: float, tick: Any, rate: float = 1.0) -> float:
    """CPU used over ``seconds`` while ``tick`` runs ``rate`` times a second."""
    start_cpu, start = daemon.cpu_seconds(), time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        tick()
        n += 1
        time.sleep(max(0.0, n / rate - (time.monotonic() - start)))
    return 100 * (daemon.cpu_seconds() - start_cpu) / elapsed


def quota_bound(folder: Path, backlog: int, per_minute: int, minute_seconds: float) -> None:
    alerted = "phish-alerted.example.net"
    emulator = VirusTotalEmulator(
        quota=Quota(per_minute=per_minute, minute_seconds=minute_seconds),
        seeds={("domain", alerted): BAD},
    )
    webhook = Webhook()
    with EmulatorServer(emulator) as vt, _serving(webhook):
        daemon = Daemon(
            folder, vt.url, webhook.url, per_minute=per_minute, minute_seconds=minute_seconds
        )
        with running(daemon):
            for n in range(backlog):
                daemon.query(f"backlog{n}.example.org")
            # The minute's requests are spent on the backlog (the warm-up line's included).
            _until(lambda: len(emulator.calls()) >= per_minute, 120, "the minute's requests")
            result = follow_one(daemon, webhook, emulator, alerted, alerted=True)
            order = [value for _kind, value in emulator.looked_up()]
    print(
        f"backlog: {backlog} new domains queued, then Suricata alerts on a malicious one; "
        f"{per_minute} requests per {minute_seconds:g} s"
    )
    place = order.index(alerted) + 1 if alerted in order else None
    waited = len([v for v in order[: (place or 1) - 1] if v and v.startswith("backlog")])
    print(f"the alerted IoC was request #{place}, after {waited} of the backlog")
    fifo = 1 + backlog + 1  # behind the warm-up line and the whole backlog
    fifo_wait = (fifo - 1) // per_minute * minute_seconds
    print(f"first in, first out it would be request #{fifo}, about {fifo_wait:.0f} s later")
    print_stages([result])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--backlog", type=int, default=30)
    parser.add_argument("--per-minute", type=int, default=4)
    parser.add_argument("--minute-seconds", type=float, default=60.0)
    parser.add_argument("--skip", action="append", default=[], choices=["trials", "cpu", "quota"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if "trials" not in args.skip:
            print(f"== with quota to spare: {args.trials} first queries of malicious domains ==")
            results = with_quota(Path(folder) / "trials", args.trials)
            print_stages(results)
            for what, stage in (("block", "block written"), ("webhook alert", "alert sent")):
                values = [r[stage] for r in results if stage in r]
                if values:
                    p50, p95 = _quantiles(values)
                    print(f"line -> {what}: p50 {p50:.2f} s, p95 {p95:.2f} s (target p95 < 5 s)")
                missing = len(results) - len(values)
                if missing:
                    print(f"line -> {what}: {missing} of {len(results)} trials never got there")
        if "cpu" not in args.skip:
            print("== CPU of vtguardian run ==")
            cpu_use(Path(folder) / "cpu", args.idle_seconds, args.load_seconds, args.rate)
        if "quota" not in args.skip:
            print(f"== bound by the quota: {args.per_minute} requests/minute, with a backlog ==")
            quota_bound(Path(folder) / "quota", args.backlog, args.per_minute, args.minute_seconds)


if __name__ == "__main__":
    main()
