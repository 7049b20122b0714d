"""The command line as a user meets it: help for every command, the walkthrough."""

from __future__ import annotations

import sqlite3

import pytest

from helpers import run_cli

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


def test_demo_runs_the_pipeline_offline(tmp_path):
    result = run_cli("demo", "--dir", str(tmp_path / "demo"), timeout=300)
    assert result.returncode == 0, result.stderr
    database = tmp_path / "demo" / "vtguardian-demo.db"
    with sqlite3.connect(database) as connection:
        values = {row[0] for row in connection.execute("SELECT value FROM iocs")}
        verdicts = dict(
            connection.execute(
                "SELECT i.value, v.verdict FROM verdicts v JOIN iocs i ON i.id = v.ioc_id"
            ).fetchall()
        )
        queued = connection.execute("SELECT COUNT(*) FROM lookup_queue").fetchone()[0]
        alerts = connection.execute("SELECT COUNT(*) FROM ids_alerts").fetchone()[0]
    assert verdicts["malware-c2.example.net"] == "malicious"
    assert verdicts["phish-login.example.org"] == "malicious"
    assert verdicts["www.google.com"] == "harmless"
    assert set(verdicts) == values and queued == 0  # every IoC answered
    assert alerts == 1
    for private in ("printer.local", "nas.home.arpa", "router", "wpad.lan"):
        assert private not in values
    assert "malware-c2.example.net" in result.stdout
    assert "requests, one per eligible IoC" in result.stdout


def test_dashboard_export_writes_grafana_json(tmp_path):
    target = tmp_path / "virus_total.json"
    result = run_cli("dashboard", "export", "--out", str(target))
    assert result.returncode == 0, result.stderr
    import json

    model = json.loads(target.read_text())
    assert model["uid"] == "vtguardian-virus-total" and len(model["panels"]) > 20
