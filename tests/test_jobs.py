"""Jobs on both engines: a real Suricata eve.json followed by a job, its IoCs looked up by
the lookup worker through vt-py against the emulator over HTTP, the events enriched
again when the verdicts land, and the NDJSON output given each event once, decided."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from helpers import settings_for
from vtguardian.intel.lookup import LookupService
from vtguardian.jobs.runner import JobRunner
from vtguardian.store.schema import job_event_iocs, job_events, jobs, lookup_queue
from vtguardian.testing.vt_content import Profile, load_seed_file, seed_key
from vtguardian.testing.vt_emulator import EmulatorServer, VirusTotalEmulator

SAMPLE = Path(__file__).parent / "data/real/suricata/eve-6.0-malware-traffic.json"
SEEDS = Path(__file__).resolve().parents[1] / "src/vtguardian/testing/vt_seeds.json"
#: The sample's alert "ET POLICY PE EXE or DLL Windows file download HTTP" names this host.
DROPPER = "www.ajaxmatters.com"


def _alerts(path: Path) -> list[dict]:
    events = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [e for e in events if e.get("event_type") == "alert"]


@pytest.fixture
def emulator():
    seeds = load_seed_file(SEEDS)
    seeds[seed_key("domain", DROPPER)] = Profile.from_seed(
        {"type": "domain", "value": DROPPER, "malicious": 9, "suspicious": 1, "harmless": 50,
         "undetected": 20, "labels": ["malware"]}
    )  # fmt: skip
    with EmulatorServer(VirusTotalEmulator(seeds=seeds)) as server:
        yield server


def _settings(engine, vt_url: str, eve: Path, out: Path):
    url = engine.url.render_as_string(hide_password=False)
    job = {
        "id": "alerts",
        "title": "Suricata alerts",
        "input": {"type": "suricata", "path": str(eve)},
        "outputs": {"file": str(out)},
        "flow": [{"provider": "allowlist"}, {"provider": "virustotal"}],
    }
    return settings_for(url, vt_url, jobs=[job])


def test_pending_events_are_enriched_again_and_output_once_decided(engine, emulator, tmp_path):
    eve = tmp_path / "eve.json"
    shutil.copyfile(SAMPLE, eve)
    out = tmp_path / "out" / "alerts.ndjson"
    settings = _settings(engine, emulator.url, eve, out)
    alerts = _alerts(SAMPLE)
    runner = JobRunner(settings, engine)
    from vtguardian.jobs.runner import sync_config_jobs

    sync_config_jobs(engine, settings)
    runner.round()
    with engine.connect() as c:
        stored = c.execute(select(func.count()).select_from(job_events)).scalar()
        pending = c.execute(
            select(func.count()).select_from(job_events).where(job_events.c.pending > 0)
        ).scalar()
        queued = c.execute(select(func.count()).select_from(lookup_queue)).scalar()
        state = c.execute(select(jobs.c.state, jobs.c.reason)).one()
    assert stored == len(alerts)  # alerts only, every one of them
    assert state == ("running", None)
    assert pending > 0 and queued > 0  # nobody has answered yet: queued for the worker
    # Out at once: only events with nothing to wait for (their IoCs are all private).
    early = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(early) == stored - pending
    assert all(doc["vtguardian"]["ioc"]["global"]["result"] != "pending" for doc in early)

    worker = LookupService(settings, engine)
    asyncio.run(worker.run_worker(once=True))
    runner.round()
    runner.round()  # a second round sends nothing again

    with engine.connect() as c:
        left = c.execute(
            select(func.count()).select_from(job_events).where(job_events.c.pending > 0)
        ).scalar()
        still = c.execute(
            select(func.count())
            .select_from(job_event_iocs)
            .where(job_event_iocs.c.state == "pending")
        ).scalar()
    assert left == 0 and still == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) == len(alerts)
    written = [orjson.loads(line) for line in lines]
    numbers = [doc["vtguardian"]["job"]["event"] for doc in written]
    assert len(set(numbers)) == len(numbers)  # each event once
    assert all(doc["vtguardian"]["ioc"]["global"]["result"] != "pending" for doc in written)
    flagged = [doc for doc in written if doc["vtguardian"]["is_malicious"]]
    assert flagged, "the dropper's alert is malicious"
    assert all(doc.get("http", {}).get("hostname") == DROPPER for doc in flagged)
    match = next(
        e for e in flagged[0]["threat"]["enrichments"] if e["matched"]["atomic"] == DROPPER
    )
    assert match["matched"]["field"] == "http.hostname"
    assert match["indicator"]["provider"] == "virustotal"
    assert match["vtguardian"]["verdict"] == "malicious"
    # The event as received is kept byte for byte inside the output.
    assert {k: v for k, v in flagged[0].items() if k not in ("threat", "vtguardian")} in alerts


def test_a_crash_after_writing_the_output_does_not_write_twice(engine, emulator, tmp_path):
    """The file is longer than recorded (written, then killed before the commit): the
    next round cuts it back and writes those events again, once."""
    eve = tmp_path / "eve.json"
    shutil.copyfile(SAMPLE, eve)
    out = tmp_path / "alerts.ndjson"
    settings = _settings(engine, emulator.url, eve, out)
    runner = JobRunner(settings, engine)
    from vtguardian.jobs.runner import sync_config_jobs

    sync_config_jobs(engine, settings)
    runner.round()
    asyncio.run(LookupService(settings, engine).run_worker(once=True))
    runner.round()
    first = out.read_bytes()
    assert first
    # As if the process died after the write: the marks and the length are undone.
    with engine.begin() as c:
        c.execute(job_events.update().values(emitted=job_events.c.emitted.op("&")(2)))
        c.execute(jobs.update().values(output_position=0))
    runner.round()
    again = out.read_bytes().splitlines()
    assert len(again) == len(first.splitlines())  # cut back, then written once more
    assert sorted(again) == sorted(first.splitlines())


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_runs_the_enabled_jobs_and_the_cli_starts_and_stops_them(tmp_path, vt_emulator):
    """``vtguardian run`` as a user starts it: the job follows eve.json, the worker looks
    the C2 domain up, the output gets the alert decided; the HTTP job takes events with
    the token; ``job stop`` stops a job at the runner's next round."""
    import os
    import signal
    import subprocess

    import httpx

    from helpers import VTGUARDIAN, wait_for
    from vtguardian.testing.vt_emulator import DEFAULT_KEY

    eve = tmp_path / "eve.json"
    eve.write_bytes(b"")
    out = tmp_path / "alerts.ndjson"
    port = _free_port()
    config = tmp_path / "vtguardian.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "vtguardian.db"}"

[virustotal]
api_key = "{DEFAULT_KEY}"
host = "{vt_emulator.url}"
per_minute = 1000

[ingest]
poll_seconds = 0.2

[web]
port = {port}
token = "job-daemon-token"

[[jobs]]
id = "alerts"
input = {{ type = "suricata", path = "{eve}" }}
outputs = {{ file = "{out}" }}

[[jobs]]
id = "shipper"
input = {{ type = "http" }}
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")}
    env.pop("VT_API_KEY", None)
    log = tmp_path / "run.log"

    def cli(*args: str) -> str:
        done = subprocess.run([*VTGUARDIAN, "--config", str(config), "job", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    process = subprocess.Popen([*VTGUARDIAN, "--config", str(config), "run"], env=env,
                               stdout=subprocess.DEVNULL, stderr=log.open("ab"))  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{base}/healthz"), 30, "the web app")
        alert = {
            "timestamp": "2026-12-05T06:00:00.000000+0000", "event_type": "alert",
            "src_ip": "192.168.1.13", "dest_ip": "203.0.113.9", "proto": "TCP",
            "alert": {"signature_id": 1, "signature": "C2 beacon", "severity": 1},
            "tls": {"sni": "malware-c2.example.net"},
        }  # fmt: skip
        flow = {"timestamp": "2026-12-05T06:00:01+0000", "event_type": "flow",
                "src_ip": "192.168.1.13", "dest_ip": "203.0.113.9"}  # fmt: skip
        with eve.open("ab") as handle:
            handle.write(orjson.dumps(flow) + b"\n" + orjson.dumps(alert) + b"\n")
        written = wait_for(lambda: out.exists() and out.read_bytes(), 60, "the job's output")
        doc = orjson.loads(written.splitlines()[0])
        assert doc["vtguardian"]["is_malicious"] is True
        assert doc["alert"]["signature"] == "C2 beacon"
        auth = {"Authorization": "Bearer job-daemon-token"}
        refused = httpx.post(f"{base}/api/v1/jobs/shipper/events", json={"url": {"full": "x"}})
        assert refused.status_code == 401
        sent = httpx.post(
            f"{base}/api/v1/jobs/shipper/events",
            headers={**auth, "Content-Type": "application/x-ndjson"},
            content=b'{"dns":{"question":{"name":"malware-c2.example.net"}}}\nnot json\n',
        )
        assert sent.json() == {"accepted": 1, "skipped": 1, "malicious": 1, "pending": 0,
                               "first_event": 1}  # fmt: skip
        status = cli("status")
        assert "alerts: running" in status and "shipper: running" in status, status
        assert "events in 1" in status  # the alert; the flow record is not the job's kind
        assert "stops at the next round" in cli("stop", "shipper")
        wait_for(lambda: "shipper: stopped" in cli("status", "shipper"), 30, "the stop")
        stopped = httpx.post(f"{base}/api/v1/jobs/shipper/events", headers=auth, json={})
        assert stopped.status_code == 409
        metrics = httpx.get(f"{base}/metrics").text
        assert 'vtguardian_job_events{job="alerts",kind="malicious"} 1.0' in metrics
        assert 'vtguardian_job_state{job="shipper",state="stopped"} 1.0' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    assert len(out.read_bytes().splitlines()) == 1  # once


def _get(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
