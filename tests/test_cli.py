"""The command line as a user meets it: help for every command, the walkthrough."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import typing

import pytest

from helpers import VTGUARDIAN, chromium, cli_module, gravity_db, run_cli, stat_value

# Imported as run_cli imports it (without COLUMNS, which pytest-xdist's workers set), so
# its consoles size themselves from each run's environment.
cli = cli_module()

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
        # IoCs that were sighted (a CNAME target seen only in answers is not looked up)
        values = {
            row[0]
            for row in connection.execute(
                "SELECT value FROM iocs WHERE id IN (SELECT ioc_id FROM sightings)"
            )
        }
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
    # The device that reached the C2 server around Pi-hole: the DNS bypass panel and
    # its alert; the C2 address is on the firewall's list, for its domain.
    assert "dns-bypass" in dom and "91.215.85.17" in dom
    assert "91.215.85.17 (resolution of malware-c2.example.net)" in stdout


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


def _help_as_written(typer_app, path=()):
    """(command, its help texts as written in the code) for every command: the
    docstring and the help of each argument and option."""
    for info in typer_app.registered_commands:
        texts = [info.help or inspect.getdoc(info.callback) or ""]
        for hint in typing.get_type_hints(info.callback, include_extras=True).values():
            texts += [m.help for m in getattr(hint, "__metadata__", ()) if getattr(m, "help", None)]
        yield (*path, info.name), texts
    for group in typer_app.registered_groups:
        yield from _help_as_written(group.typer_instance, (*path, group.name))


BRACKETED = {
    command: words
    for command, texts in _help_as_written(cli.app)
    if (words := {w.rstrip(".,;:") for t in texts for w in re.findall(r"\S*\[\S*", t)})
}


def test_help_texts_with_brackets_are_found():
    assert BRACKETED[("run",)] == {"[[ingest.sources]]"}
    assert "[[ingest.sources]]" in BRACKETED[("ingest",)]


@pytest.mark.parametrize("command", sorted(BRACKETED), ids=" ".join)
def test_help_prints_brackets_as_written(command):
    """Rich read ``[[ingest.sources]]`` as markup: ``run --help`` printed ``follow []``."""
    result = run_cli(*command, "--help", env={"COLUMNS": "1000"})
    assert result.returncode == 0, result.stderr
    for word in BRACKETED[command]:
        assert word in result.stdout, (word, result.stdout)


def test_root_help_lists_run_with_its_sources():
    result = run_cli("--help", env={"COLUMNS": "1000"})
    assert "follow [[ingest.sources]], look up" in result.stdout


def test_vt_emulator_on_a_taken_port_is_one_line():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("vt-emulator", "--port", str(port), timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"vtguardian: --port {port}: cannot listen on 127.0.0.1: Address already in use"
    ]
    assert result.stdout == ""  # not announced on a port it never had


def test_ingest_reports_hits_and_new_iocs(sqlite_url, tmp_path):
    """``--json`` said ``sightings`` for the hits summed and ``iocs`` for the IoCs new
    to the database; the keys and the summary line now say what they count."""
    path = tmp_path / "iocs.txt"
    path.write_text("8.8.8.8\n8.8.8.8\nexample.com\nprinter.local\n")
    env = {"VTGUARDIAN_DATABASE__URL": sqlite_url}
    first = run_cli("ingest", "--json", "-s", "plain", str(path), env=env)
    assert first.returncode == 0, first.stderr
    totals = json.loads(first.stdout)
    assert list(totals) == [
        "lines",
        "events",
        "new_iocs",
        "hits",
        "skipped_private",
        "invalid",
        "errors",
        "held",
        "resolutions",
    ]
    assert (totals["hits"], totals["new_iocs"], totals["skipped_private"]) == (3, 2, 1)
    path.write_text(path.read_text() * 2)  # the same IoCs again: hits, nothing new
    again = run_cli("ingest", "-s", "plain", str(path), env=env)
    assert again.returncode == 0, again.stderr
    assert "4 lines, 4 events: 3 IoC hits, 0 new IoCs; 1 private/local skipped" in again.stdout


def test_demo_devices_are_counted_and_the_first_named():
    eight = ",".join(f"192.168.1.{n}" for n in range(20, 28))
    assert cli.demo.devices_summary(eight) == "8 devices: 192.168.1.20, 192.168.1.21, …"
    assert cli.demo.devices_summary("192.168.1.16") == "192.168.1.16"
    assert cli.demo.devices_summary("laptop,192.168.1.16") == "laptop, 192.168.1.16"
    assert cli.demo.devices_summary("") == ""
    hostile = "a\x1b[2J,b,c"  # a device name from Pi-hole's database
    assert cli.demo.devices_summary(hostile) == "3 devices: a\\x1b[2J, b, …"


def test_json_output_is_one_value_per_line(capsys):
    cli.output.print_json({"a": [1, "x\x1b"]})
    cli.output.print_json_lines([{"b": 1}, {"c": None}])
    cli.output.print_json({"d": 1}, indent=True)
    printed = capsys.readouterr().out
    assert printed == '{"a":[1,"x\\u001b"]}\n{"b":1}\n{"c":null}\n{\n  "d": 1\n}\n'
