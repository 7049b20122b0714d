"""Jobs on both engines: a real Suricata eve.json followed by a job, its IoCs looked up by
the lookup worker through vt-py against the emulator over HTTP, the events enriched
again when the verdicts land, and the NDJSON output given each event once, decided."""

from __future__ import annotations

import asyncio
import shutil
import time
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
    with engine.connect() as c:
        counts = c.execute(select(jobs.c.flow_counts)).scalar()
    decided_later = queued  # every IoC queued was decided by VirusTotal afterwards
    assert counts["virustotal"][1] >= decided_later, counts  # the Flows page's decisions
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


TOKEN = "jobs-api-token"


def _record(engine, kind: str, value: str, verdict: str, engines: list[str]) -> None:
    from datetime import timedelta

    from vtguardian.clock import utcnow
    from vtguardian.store.answers import ReportRow, record_answer
    from vtguardian.store.engine import write_transaction
    from vtguardian.store.entities import ensure_iocs

    now = utcnow()
    with write_transaction(engine) as c:
        ioc_id = ensure_iocs(c, {(kind, value): (None, now, now)})[(kind, value)]
        report = ReportRow("virustotal", "found", verdict, ratio=0.1, total=90,
                           stats={"malicious": len(engines)}, engines=engines)  # fmt: skip
        record_answer(c, ioc_id, report, timedelta(days=1), now)


def test_the_api_defines_a_job_takes_events_and_filters_them(engine, tmp_path):
    """A job made through the API; JSON and NDJSON events in with the token; the
    Explorer's filters (is_malicious, result, IoC value, field, time) and one event's
    Overview, Structured and Raw; hostile values come back as the same text."""
    import httpx

    from helpers import served
    from vtguardian.web.app import create_app

    url = engine.url.render_as_string(hide_password=False)
    settings = settings_for(url, "http://127.0.0.1:9", web={"token": TOKEN})
    _record(engine, "domain", "bad.example.net", "malicious", ["EngineA", "EngineB", "EngineC"])
    _record(engine, "domain", "fine.example.org", "harmless", [])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    hostile = "<img src=x onerror=alert(1)>"
    with served(create_app(settings, engine)) as base:
        job = {"id": "shipper", "title": "Vector", "input": {"type": "http"},
               "flow": [{"provider": "virustotal"}]}  # fmt: skip
        assert httpx.post(f"{base}/api/v1/jobs", json=job).status_code == 401
        made = httpx.post(f"{base}/api/v1/jobs", json=job, headers=auth)
        assert made.status_code == 200, made.text
        assert made.json()["origin"] == "api" and made.json()["flow"][0]["provider"] == "virustotal"
        bad_id = httpx.post(f"{base}/api/v1/jobs", json={**job, "id": "../x"}, headers=auth)
        assert bad_id.status_code == 400 and "id" in bad_id.json()["detail"]
        events = [
            {"message": hostile, "url": {"domain": "bad.example.net"}},
            {"message": "clean", "dns": {"question": {"name": "fine.example.org"}}},
            {"message": "new", "dns": {"question": {"name": "never-seen.example.com"}}},
        ]
        sent = httpx.post(f"{base}/api/v1/jobs/shipper/events", json=events, headers=auth)
        assert sent.json() == {"accepted": 3, "skipped": 0, "malicious": 1, "pending": 1,
                               "first_event": 1}  # fmt: skip
        broken = httpx.post(f"{base}/api/v1/jobs/shipper/events", content=b"{", headers=auth)
        assert broken.status_code == 400
        missing = httpx.post(f"{base}/api/v1/jobs/nope/events", json={}, headers=auth)
        assert missing.status_code == 404

        def seqs(**params) -> list[int]:
            answer = httpx.get(f"{base}/api/v1/jobs/shipper/events", params=params)
            assert answer.status_code == 200, answer.text
            return [item["seq"] for item in answer.json()["items"]]

        assert seqs() == [3, 2, 1]  # newest first
        assert seqs(is_malicious="true") == [1]
        assert seqs(result="pending") == [3]
        assert seqs(result="harmless") == [2]
        assert seqs(ioc="BAD.example.net.") == [1]  # normalised as the store has it
        assert seqs(ioc="unknown.example") == []
        assert seqs(field="dns.question.name") == [3, 2]
        assert seqs(since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []
        assert seqs(since="2000-01-01T00:00:00Z") == [3, 2, 1]
        assert seqs(before=3) == [2, 1]
        detail = httpx.get(f"{base}/api/v1/jobs/shipper/events/1").json()
        (ioc,) = detail["overview"]
        assert (ioc["field"], ioc["value"], ioc["verdict"]) == (
            "url.domain", "bad.example.net", "malicious"
        )  # fmt: skip
        assert ioc["engines"] == ["EngineA", "EngineB", "EngineC"]
        assert ioc["provider"] == "virustotal"
        assert detail["structured"]["vtguardian"]["is_malicious"] is True
        assert detail["raw"] == events[0]  # as received, hostile text and all
        listed = httpx.get(f"{base}/api/v1/jobs").json()["items"][0]
        assert (listed["events_in"], listed["malicious"], listed["pending"]) == (3, 1, 1)
        stop = httpx.post(f"{base}/api/v1/jobs/shipper/stop", headers=auth)
        assert stop.json()["enabled"] is False
        refused = httpx.post(f"{base}/api/v1/jobs/shipper/events", json={}, headers=auth)
        assert refused.status_code == 409
        bad_flow = httpx.post(f"{base}/api/v1/jobs/shipper/flow", headers=auth,
                             json={"flow": [{"provider": "nobody"}]})  # fmt: skip
        assert bad_flow.status_code == 422 or bad_flow.status_code == 400


def test_retention_keeps_the_newest_events_and_a_rotated_file_is_read_from_its_start(
    engine, tmp_path
):
    from vtguardian.jobs.runner import sync_config_jobs

    url = engine.url.render_as_string(hide_password=False)
    log = tmp_path / "events.ndjson"
    lines = [orjson.dumps({"message": f"event {n}"}) + b"\n" for n in range(10)]
    log.write_bytes(b"".join(lines[:6]) + b'{"message": "half')  # a line still being written
    job = {"id": "ecs", "input": {"type": "ecs", "path": str(log)},
           "retention": {"max_events": 4}, "flow": [{"provider": "allowlist"}]}  # fmt: skip
    settings = settings_for(url, "http://127.0.0.1:9", jobs=[job])
    sync_config_jobs(engine, settings)
    runner = JobRunner(settings, engine)
    runner.round()

    def kept() -> list[str]:
        with engine.connect() as c:
            rows = c.execute(select(job_events.c.raw).order_by(job_events.c.seq)).scalars()
            return [orjson.loads(raw)["message"] for raw in rows]

    assert kept() == [f"event {n}" for n in range(2, 6)]  # the newest 4 of 6; no half line
    log.write_bytes(b"".join(lines[6:8]))  # rotated: a new, shorter file
    runner.round()
    with engine.connect() as c:
        assert c.execute(select(jobs.c.events_in)).scalar() == 8
    runner.contexts["ecs"].pruned_at = 0  # the retention's next round, now
    runner.round()
    assert kept() == ["event 4", "event 5", "event 6", "event 7"]


def test_the_webhook_gets_each_decided_event_once_and_a_failed_post_again(engine, tmp_path):
    import http.server
    import threading

    from vtguardian.jobs.runner import sync_config_jobs

    received: list[bytes] = []
    failures = [1]  # the first POST fails

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if failures:
                failures.pop()
                self.send_response(503)
            else:
                received.append(body)
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = engine.url.render_as_string(hide_password=False)
        _record(engine, "domain", "bad.example.net", "malicious", ["A", "B", "C"])
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        job = {"id": "hooked", "input": {"type": "http"}, "outputs": {"webhook_url": hook},
               "flow": [{"provider": "virustotal"}]}  # fmt: skip
        settings = settings_for(url, "http://127.0.0.1:9", jobs=[job])
        sync_config_jobs(engine, settings)
        from vtguardian.iocs import Classifier
        from vtguardian.jobs.service import Receiver

        Receiver(settings, engine, Classifier()).receive(
            "hooked", b'{"url":{"domain":"bad.example.net"}}\n{"message":"none"}\n', True
        )
        runner = JobRunner(settings, engine)
        runner.round()
        with engine.connect() as c:
            state = c.execute(select(jobs.c.state, jobs.c.reason)).one()
        assert state[0] == "failed" and "webhook" in state[1]
        runner.round()  # within the pause: not tried again yet
        assert received == [] and failures == []
        time.sleep(1.1)
        runner.round()
        runner.round()
        with engine.connect() as c:
            assert c.execute(select(jobs.c.state)).scalar() == "running"
    finally:
        server.shutdown()
    assert len(received) == 1
    docs = [orjson.loads(line) for line in received[0].splitlines()]
    assert [d["vtguardian"]["is_malicious"] for d in docs] == [True, False]


def test_an_event_out_pending_after_its_wait_goes_out_again_decided(engine, emulator, tmp_path):
    """pending_timeout_seconds ran out: the output gets the event with what was known
    (pending); when the verdict lands it gets it once more, decided, and no more."""
    from vtguardian.jobs.runner import sync_config_jobs

    out = tmp_path / "out.ndjson"
    url = engine.url.render_as_string(hide_password=False)
    job = {"id": "quick", "input": {"type": "http"}, "outputs": {"file": str(out)},
           "pending_timeout_seconds": 0.001, "flow": [{"provider": "virustotal"}]}  # fmt: skip
    settings = settings_for(url, emulator.url, jobs=[job])
    sync_config_jobs(engine, settings)
    from vtguardian.iocs import Classifier
    from vtguardian.jobs.service import Receiver

    body = orjson.dumps({"url": {"domain": DROPPER}})
    assert Receiver(settings, engine, Classifier()).receive("quick", body, False).pending == 1
    runner = JobRunner(settings, engine)
    time.sleep(0.01)
    runner.round()
    first = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [d["vtguardian"]["ioc"]["global"]["result"] for d in first] == ["pending"]
    asyncio.run(LookupService(settings, engine).run_worker(once=True))
    runner.round()
    runner.round()
    both = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [d["vtguardian"]["ioc"]["global"]["result"] for d in both] == ["pending", "malicious"]
    assert both[1]["threat"]["enrichments"][0]["matched"]["field"] == "url.domain"


def test_a_followed_file_keeps_half_lines_back_and_skips_one_longer_than_a_read(tmp_path):
    from vtguardian.jobs.follow import read_chunk

    path = tmp_path / "events.ndjson"
    path.write_bytes(b'{"a":1}\n' + b"x" * 100 + b'\n{"b":2}\n{"c":')
    lines, position, skipped, print_ = [], 0, 0, None
    for _ in range(10):
        chunk = read_chunk(str(path), position, print_, limit=32)
        lines += chunk.lines
        skipped += chunk.overlong
        position, print_ = chunk.position, chunk.fingerprint
    assert lines[0] == b'{"a":1}' and lines[-1] == b'{"b":2}'
    assert skipped >= 1  # the long line: skipped, the job goes on past it
    assert position == path.stat().st_size - len(b'{"c":')  # the half line waits
    with path.open("ab") as handle:
        handle.write(b"3}\n")
    assert read_chunk(str(path), position, print_).lines == [b'{"c":3}']


def test_the_job_commands_list_show_and_list_events_as_text(tmp_path):
    """The demo's database through `vtguardian job`: a hostile value from an event is
    printed as text (control characters made visible), never read as markup."""
    from helpers import run_cli
    from vtguardian.demo import DEMO_JOB, run_demo

    result = run_demo(tmp_path / "demo")
    config = tmp_path / "vtguardian.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{result.database}"\n')
    from vtguardian.config import settings_from_values
    from vtguardian.iocs import Classifier
    from vtguardian.jobs.service import Receiver, save
    from vtguardian.store.engine import make_engine

    engine = make_engine(f"sqlite:///{result.database}")
    save(engine, {"id": "shipper", "input": {"type": "http"}})
    hostile = {
        "message": "[bold red]x[/] \x1b[31mred",
        "url": {"domain": "phish-login.example.org"},
    }
    settings = settings_from_values(database={"url": f"sqlite:///{result.database}"})
    Receiver(settings, engine, Classifier()).receive("shipper", orjson.dumps(hostile), False)
    engine.dispose()
    base = ["--config", str(config), "job"]
    listed = run_cli(*base, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs_seen = {job["id"]: job for job in orjson.loads(listed.stdout)}
    assert jobs_seen[DEMO_JOB]["malicious"] == 2 and jobs_seen[DEMO_JOB]["pending"] == 0
    shown_job = orjson.loads(run_cli(*base, "show", DEMO_JOB).stdout)
    assert shown_job["input"]["type"] == "suricata"
    events = run_cli(*base, "events", DEMO_JOB, "--malicious", "--json").stdout.splitlines()
    assert {orjson.loads(line)["summary"] for line in events} == {
        "ET MALWARE Possible C2 beacon (demo)",
        "ET PHISHING Credential phishing landing page (demo)",
    }
    table = run_cli(*base, "events", "shipper").stdout
    assert "[bold red]x[/]" in table and "\\x1b[31mred" in table and "\x1b" not in table
    missing = run_cli(*base, "show", "nope")
    assert missing.returncode != 0 and "no job 'nope'" in missing.stderr
