"""``vtguardian demo``: the whole pipeline offline, no API key, no network.

It writes a week of a household's Pi-hole log and Suricata eve.json (real
formats: devices, popular and rare domains, local names, a few malicious
domains, an IDS alert, a downloaded file), ingests them, starts the built-in
VirusTotal emulator, looks every eligible IoC up through vt-py over HTTP, and
returns what a user would want to see first.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import orjson
from sqlalchemy import Engine, text

from vtguardian.actions.pihole import sync_gravity
from vtguardian.config import FollowedSource, Settings, settings_from_values
from vtguardian.demo_intel import DemoIntel, gather
from vtguardian.ingest.run import ingest
from vtguardian.ingest.totals import Totals
from vtguardian.intel.lookup import LookupService, WorkerReport
from vtguardian.iocs import Classifier
from vtguardian.jobs.runner import JobRunner, sync_config_jobs
from vtguardian.jobs.service import status
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine
from vtguardian.testing.demo_dns import after_lookups, answer_lines, bypass_events, shared_cdn_lines
from vtguardian.testing.vt_content import load_seed_file
from vtguardian.testing.vt_emulator import DEFAULT_KEY, EmulatorServer, VirusTotalEmulator

DEVICES = {
    "192.168.1.10": "laptop-anna",
    "192.168.1.11": "phone-ben",
    "192.168.1.12": "smart-tv",
    "192.168.1.13": "tablet-kids",
    "192.168.1.14": "nas",
    "192.168.1.15": "thermostat",
    "192.168.1.16": "desktop-office",
    "192.168.1.17": "phone-anna",
}
POPULAR = [
    "www.google.com", "connectivitycheck.gstatic.com", "api.spotify.com", "www.youtube.com",
    "graph.facebook.com", "www.wikipedia.org", "outlook.office365.com", "time.apple.com",
    "netflix.com", "updates.example-os.com", "weather.example.org", "news.example.com",
]  # fmt: skip
LOCAL = ["printer.local", "nas.home.arpa", "router", "wpad.lan", "10.1.168.192.in-addr.arpa"]
MALICIOUS = {
    "malware-c2.example.net": "192.168.1.13",
    "phish-login.example.org": "192.168.1.11",
}
SUSPICIOUS = ["one-engine-fp.example.com", "grayware.example.com"]
# The C2 domain answers with the address Suricata saw it beacon to (a relationship).
DAYS = 7
EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


# The tables of Pi-hole's gravity.db that blocking touches, as Pi-hole creates them
# (its schema, trimmed to these): a new domain joins the Default group by trigger.
DEMO_GRAVITY_SCHEMA = """
CREATE TABLE "group" (
    id INTEGER PRIMARY KEY AUTOINCREMENT, enabled BOOLEAN NOT NULL DEFAULT 1,
    name TEXT UNIQUE NOT NULL,
    date_added INTEGER NOT NULL DEFAULT (cast(strftime('%s', 'now') as int)),
    date_modified INTEGER NOT NULL DEFAULT (cast(strftime('%s', 'now') as int)),
    description TEXT);
INSERT INTO "group" (id, enabled, name, description) VALUES (0, 1, 'Default', 'The default group');
CREATE TABLE domainlist (
    id INTEGER PRIMARY KEY AUTOINCREMENT, type INTEGER NOT NULL DEFAULT 0,
    domain TEXT NOT NULL, enabled BOOLEAN NOT NULL DEFAULT 1,
    date_added INTEGER NOT NULL DEFAULT (cast(strftime('%s', 'now') as int)),
    date_modified INTEGER NOT NULL DEFAULT (cast(strftime('%s', 'now') as int)),
    comment TEXT, UNIQUE(domain, type));
CREATE TABLE domainlist_by_group (
    domainlist_id INTEGER NOT NULL REFERENCES domainlist (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES "group" (id) ON DELETE CASCADE,
    PRIMARY KEY (domainlist_id, group_id));
CREATE TRIGGER tr_domainlist_add AFTER INSERT ON domainlist
    BEGIN INSERT INTO domainlist_by_group (domainlist_id, group_id) VALUES (NEW.id, 0); END;
INSERT INTO domainlist (type, domain, comment) VALUES (1, 'ads.example-tracker.com', 'mine');
"""


@dataclass
class DemoResult:
    database: Path
    ingested: Totals
    lookups: WorkerReport
    verdicts: dict[str, int]
    findings: list[tuple[str, str, str, float | None, str]]
    requests_seen_by_emulator: int
    gravity: Path
    would_block: list[str]
    job: dict[str, object] | None = None  # the demo's job, as `vtguardian job show` has it
    #: what `block firewall --check` would block: address -> why
    firewall_would_block: dict[str, str] = field(default_factory=dict)
    dns_bypass_alerts: int = 0
    # Re-analyses, submissions, threat context and relationships (demo_intel.py).
    intel: DemoIntel | None = None


def write_household(folder: Path, now: datetime, seed: int = 7) -> tuple[Path, Path]:
    """A week of pihole.log and eve.json, ending ``now`` (local time for syslog)."""
    rng = random.Random(seed)
    rare = [f"cdn{n}.example-cdn.net" for n in range(40)]
    pihole_lines: list[str] = []
    start = now - timedelta(days=DAYS)
    serial = 100
    for minute in range(0, DAYS * 24 * 60, 3):
        moment = (start + timedelta(minutes=minute)).astimezone()
        stamp = f"{moment:%b} {moment.day:>2} {moment:%H:%M:%S}"
        client = rng.choice(list(DEVICES))
        roll = rng.random()
        if roll < 0.6:
            name = rng.choice(POPULAR)
        elif roll < 0.8:
            name = rng.choice(rare)
        elif roll < 0.9:
            name = rng.choice(LOCAL)
        elif roll < 0.95:
            name = rng.choice(SUSPICIOUS)
        else:
            name, client = rng.choice(list(MALICIOUS.items()))
        serial += 1
        pihole_lines.append(f"{stamp} dnsmasq[612]: query[A] {name} from {client}")
        if name.startswith("ads.") or rng.random() < 0.08:
            pihole_lines.append(f"{stamp} dnsmasq[612]: gravity blocked {name} is 0.0.0.0")
        elif "." in name and not name.endswith((".local", ".lan", ".arpa")):
            digest = zlib.crc32(name.encode())  # each name resolves to its own address
            address = f"93.184.{digest % 200}.{digest // 200 % 250 + 1}"
            pihole_lines += [
                f"{stamp} dnsmasq[612]: {line}" for line in answer_lines(name, address)
            ]
    pihole_lines += shared_cdn_lines(stamp, "192.168.1.10")
    pihole = folder / "pihole.log"
    pihole.write_text("\n".join(pihole_lines) + "\n")

    events: list[bytes] = []
    for hour in range(0, DAYS * 24, 2):
        moment = start + timedelta(hours=hour, minutes=rng.randrange(0, 60))
        ts = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000"
        client = rng.choice(list(DEVICES))
        sni = rng.choice(POPULAR)
        events.append(_eve(ts, "tls", client, "93.184.216.34", tls={"sni": sni}))
    alert_time = (now - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000"
    events.append(
        _eve(
            alert_time,
            "alert",
            MALICIOUS["malware-c2.example.net"],
            "185.220.101.66",
            alert={
                "signature_id": 2030000,
                "signature": "ET MALWARE Possible C2 beacon (demo)",
                "category": "A Network Trojan was detected",
                "severity": 1,
            },
            tls={"sni": "malware-c2.example.net"},
        )
    )
    beacon = (now - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000"
    events.append(
        _eve(
            beacon,
            "http",
            MALICIOUS["malware-c2.example.net"],
            "185.220.101.66",
            http={"hostname": "malware-c2.example.net", "url": "/gate.php", "http_method": "POST"},
        )
    )
    phish_time = (now - timedelta(days=2, hours=3)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000"
    events.append(
        _eve(
            phish_time,
            "alert",
            MALICIOUS["phish-login.example.org"],
            "198.18.7.20",
            alert={
                "signature_id": 2030001,
                "signature": "ET PHISHING Credential phishing landing page (demo)",
                "category": "Possible Social Engineering Attempted",
                "severity": 2,
            },
            tls={"sni": "phish-login.example.org"},
        )
    )
    events.append(
        _eve(
            alert_time,
            "fileinfo",
            "203.0.113.200",
            "192.168.1.16",
            http={"hostname": "downloads.example.net", "url": "/eicar.com"},
            fileinfo={"filename": "eicar.com", "sha256": EICAR_SHA256, "size": 68},
        )
    )
    events += bypass_events(now)
    # A download from a URL VirusTotal has never seen: submitted (the demo allows it).
    events.append(
        _eve(
            beacon,
            "http",
            "192.168.1.16",
            "203.0.113.201",
            http={"hostname": "dl.example-files.net", "url": "/setup.exe", "http_method": "GET"},
        )
    )
    eve = folder / "eve.json"
    eve.write_bytes(b"".join(events))
    return pihole, eve


def _eve(ts: str, event_type: str, src: str, dest: str, **fields: object) -> bytes:
    event = {"timestamp": ts, "event_type": event_type, "src_ip": src, "dest_ip": dest}
    return orjson.dumps({**event, "proto": "TCP", **fields}) + b"\n"


def run_demo(
    folder: Path,
    on_lookup: Callable[[WorkerReport, int], None] | None = None,
    real_key: str | None = None,
) -> DemoResult:
    """The demo against the built-in emulator, or with ``real_key`` against VirusTotal
    itself within the public API's quota (4 requests a minute: it takes a while)."""
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "vtguardian-demo.db"
    for leftover in folder.glob("vtguardian-demo.db*"):
        leftover.unlink()
    engine = make_engine(f"sqlite:///{database}")
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    pihole, eve = write_household(folder, now)
    classifier = Classifier()
    totals = ingest(
        engine,
        classifier,
        [
            FollowedSource(source="pihole-log", path=str(pihole)),
            FollowedSource(source="suricata", path=str(eve)),
        ],
    )
    with _virustotal(real_key) as (virustotal, emulator):
        settings = settings_from_values(
            database={"url": f"sqlite:///{database}"},
            virustotal=virustotal,
            jobs=[demo_job(eve, folder / "alerts-enriched.ndjson")],
        )
        jobs = _start_demo_job(settings, engine, classifier)
        if emulator is not None:  # analyses answer "queued" once, then "completed"
            emulator.configure({"analysis": {"polls_to_complete": 2}})
        report = asyncio.run(
            LookupService(settings, engine, classifier).run_worker(once=True, on_progress=on_lookup)
        )
        jobs.round()  # the verdicts landed: the job's pending alerts are enriched again
        job = status(engine, settings, DEMO_JOB)[0]
        requests = len(emulator.looked_up()) if emulator else report.requests
    gravity = _demo_gravity(folder)
    blocking = settings.model_copy(
        update={
            "pihole": settings.pihole.model_copy(
                update={"gravity_db": gravity, "dry_run": True, "reload_command": ""}
            )
        }
    )
    would_block = sync_gravity(engine, blocking).added
    firewall, bypass_alerts = after_lookups(engine, settings, classifier)
    result = DemoResult(
        database=database,
        ingested=totals,
        lookups=report,
        verdicts=_verdict_counts(engine),
        findings=_findings(engine),
        requests_seen_by_emulator=requests,
        gravity=gravity,
        would_block=would_block,
        job=job,
        firewall_would_block=firewall,
        dns_bypass_alerts=bypass_alerts,
        intel=gather(
            engine,
            settings.virustotal.max_analysis_age_days,
            settings.verdict.young_domain_days,
        ),
    )
    engine.dispose()
    return result


@contextlib.contextmanager
def _virustotal(real_key: str | None) -> Iterator[tuple[dict, VirusTotalEmulator | None]]:
    if real_key:
        yield {"api_key": real_key}, None  # the real host and the public API's quota
        return
    seeds = resources.files("vtguardian.testing").joinpath("vt_seeds.json")
    emulator = VirusTotalEmulator(seeds=load_seed_file(Path(str(seeds))))
    with EmulatorServer(emulator) as server:
        # The emulator's quota is raised for the demo; the real public API allows 4/min.
        yield (
            {
                "api_key": DEFAULT_KEY,
                "host": server.url,
                "per_minute": 10_000,
                "per_day": 100_000,
                "per_month": 1_000_000,
                # The emulator's URLs are invented: submitting one shows how it works.
                "submit_unknown_urls": True,
                "poll_seconds": 0.2,
            },
            emulator,
        )


def _demo_gravity(folder: Path) -> Path:
    """A fresh Pi-hole gravity.db for the dry run (one entry of the user's own)."""
    path = folder / "gravity.db"
    path.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.executescript(DEMO_GRAVITY_SCHEMA)
        connection.commit()
    return path


def _verdict_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT verdict, COUNT(*) FROM verdicts GROUP BY verdict ORDER BY verdict")
        ).all()
    return {verdict: int(count) for verdict, count in rows}


def _findings(engine: Engine) -> list[tuple[str, str, str, float | None, str]]:
    """Malicious and suspicious IoCs with the devices that contacted them."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT i.type, i.value, v.verdict, v.ratio, "
                "GROUP_CONCAT(DISTINCT COALESCE(c.name, c.ip)) "
                "FROM verdicts v JOIN iocs i ON i.id = v.ioc_id "
                "LEFT JOIN sightings s ON s.ioc_id = i.id "
                "LEFT JOIN clients c ON c.id = s.client_id "
                "WHERE v.verdict IN ('malicious', 'suspicious') "
                "GROUP BY i.type, i.value, v.verdict, v.ratio "
                "ORDER BY v.verdict, v.ratio DESC"
            )
        ).all()
    return [
        (kind, value, verdict, ratio, clients or "")
        for kind, value, verdict, ratio, clients in rows
    ]


DEMO_JOB = "suricata-alerts"


def demo_job(eve: Path, output: Path) -> dict[str, object]:
    """The demo's job: the Suricata alerts of its eve.json, triaged with VirusTotal
    context, kept for the Event Explorer and written enriched to an NDJSON file."""
    return {
        "id": DEMO_JOB,
        "title": "Suricata alerts with VirusTotal context",
        "input": {"type": "suricata", "path": str(eve)},
        # The names and files the alerts carry: the addresses are the devices' own or
        # the servers behind those names, which the demo's dashboard does not count.
        "fields": ["tls.sni", "http.hostname", "dns.rrname", "fileinfo.sha256"],
        "outputs": {"file": str(output)},
    }


def _start_demo_job(settings: Settings, engine: Engine, classifier: Classifier) -> JobRunner:
    """The job reads the alerts before the lookups: their IoCs wait as pending."""
    sync_config_jobs(engine, settings)
    runner = JobRunner(settings, engine, classifier)
    runner.round()
    return runner
