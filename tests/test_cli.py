"""The command line as a user meets it: help for every command, the walkthrough."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest

from helpers import VTGUARDIAN, chromium, gravity_db, run_cli, stat_value

COMMANDS = [
    [],
    ["ioc"],
    ["config"],
    ["config", "show"],
    ["db"],
    ["db", "upgrade"],
    ["db", "downgrade"],
    ["db", "status"],
    ["db", "grant-readonly"],
    ["demo"],
    ["ingest"],
    ["lookup"],
    ["worker"],
    ["quota"],
    ["vt-emulator"],
    ["flow"],
    ["flow", "show"],
    ["alerts"],
    ["enrich"],
    ["hunt"],
    ["dashboard"],
    ["dashboard", "export"],
    ["serve"],
    ["block"],
    ["block", "sync"],
    ["block", "list"],
    ["block", "add"],
    ["block", "remove"],
    ["block", "firewall"],
    ["run"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert len(result.stdout.strip().splitlines()) > 4


def test_root_help_lists_commands():
    result = run_cli("--help")
    for name in ("ioc", "config", "db", "demo", "ingest", "lookup", "worker", "enrich", "hunt"):
        assert name in result.stdout


def test_demo_runs_the_pipeline_offline_to_the_served_page(tmp_path):
    """The README's first command: the pipeline, a dry run on a gravity.db, the page."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")}
    env.pop("VT_API_KEY", None)
    env["COLUMNS"] = "200"
    # A user's own key and settings must not leak into the demo (the emulator would refuse).
    env["VT_API_KEY"] = "the-users-real-key"
    env["VTGUARDIAN_VIRUSTOTAL__PER_MINUTE"] = "1"
    process = subprocess.Popen(
        [*VTGUARDIAN, "demo", "--dir", str(tmp_path / "demo"), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "http://127.0.0.1:" in line:
                break
        stdout = "".join(lines)
        url = re.search(r"http://127\.0\.0\.1:\d+/", stdout)
        assert url, stdout + process.stderr.read() if process.poll() is not None else stdout
        page = chromium(url.group(0), tmp_path, "--dump-dom")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    database = tmp_path / "demo" / "vtguardian-demo.db"
    with sqlite3.connect(database) as connection:
        values = {row[0] for row in connection.execute("SELECT value FROM iocs")}
        typed = connection.execute(
            "SELECT i.type, i.value, v.verdict FROM verdicts v JOIN iocs i ON i.id = v.ioc_id"
        ).fetchall()
        verdicts = {value: verdict for _type, value, verdict in typed}
        queued = connection.execute("SELECT COUNT(*) FROM lookup_queue").fetchone()[0]
        alerts = connection.execute("SELECT COUNT(*) FROM ids_alerts").fetchone()[0]
        dry_blocks = {
            row[0]
            for row in connection.execute(
                "SELECT i.value FROM actions a JOIN iocs i ON i.id = a.ioc_id "
                "WHERE a.action = 'block' AND a.dry_run"
            )
        }
    assert verdicts["malware-c2.example.net"] == "malicious"
    assert verdicts["phish-login.example.org"] == "malicious"
    assert verdicts["www.google.com"] == "harmless"
    assert set(verdicts) == values and queued == 0  # every IoC answered
    assert alerts == 2
    assert verdicts["http://malware-c2.example.net/gate.php"] == "malicious"
    for private in ("printer.local", "nas.home.arpa", "router", "wpad.lan"):
        assert private not in values
    assert "malware-c2.example.net" in stdout
    assert "requests, one per eligible IoC" in stdout
    # Pi-hole as a dry run: recorded, but the demo gravity.db keeps only the user's entry.
    malicious = {v for v, level in verdicts.items() if level == "malicious"}
    domains = {v for kind, v, level in typed if level == "malicious" and kind == "domain"}
    assert dry_blocks == domains
    with sqlite3.connect(tmp_path / "demo" / "gravity.db") as connection:
        denied = [row[0] for row in connection.execute("SELECT domain FROM domainlist")]
    assert denied == ["ads.example-tracker.com"]
    # The served page, in a real browser, shows the demo's numbers.
    dom = page.stdout
    assert 'data-loaded="yes"' in dom, page.stderr[-2000:]
    assert stat_value(dom, "malicious") == str(len(malicious))
    assert "malware-c2.example.net" in dom


def test_dashboard_export_writes_grafana_json(tmp_path):
    target = tmp_path / "virus_total.json"
    result = run_cli("dashboard", "export", "--out", str(target))
    assert result.returncode == 0, result.stderr
    import json

    model = json.loads(target.read_text())
    assert model["uid"] == "vtguardian-virus-total" and len(model["panels"]) > 20


def test_block_add_and_remove_from_the_command_line(tmp_path):
    gravity = tmp_path / "gravity.db"
    gravity_db(gravity)
    env = {
        "VTGUARDIAN_DATABASE__URL": f"sqlite:///{tmp_path / 'v.db'}",
        "VTGUARDIAN_PIHOLE__GRAVITY_DB": str(gravity),
        "VTGUARDIAN_PIHOLE__RELOAD_COMMAND": "",
    }
    added = run_cli("block", "add", "tracker.example.com", env=env)
    assert added.returncode == 0, added.stderr
    assert "blocked by you: tracker.example.com" in added.stdout

    def denied() -> set[str]:
        with sqlite3.connect(gravity) as connection:
            rows = connection.execute("SELECT domain FROM domainlist WHERE type = 1")
            return {row[0] for row in rows}

    assert "tracker.example.com" in denied()
    listed = run_cli("block", "list", env=env)
    assert "tracker.example.com" in listed.stdout and "manual" in listed.stdout
    removed = run_cli("block", "remove", "tracker.example.com", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "tracker.example.com" not in denied()
    refused = run_cli("block", "add", "printer.local", env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


def test_demo_real_without_a_key_is_one_clear_line(tmp_path):
    result = run_cli("demo", "--real", "--no-serve", "--dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "vtguardian: --real needs your VirusTotal API key in VT_API_KEY"
    ]
