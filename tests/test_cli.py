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
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert len(result.stdout.strip().splitlines()) > 4


def test_root_help_lists_commands():
    result = run_cli("--help")
    for name in ("ioc", "config", "db", "demo"):
        assert name in result.stdout


def test_demo_walkthrough_stores_only_eligible_indicators(tmp_path):
    result = run_cli("demo", "--dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    database = tmp_path / "demo" / "vtguardian-demo.db"
    with sqlite3.connect(database) as connection:
        values = {row[0] for row in connection.execute("SELECT value FROM iocs")}
    assert "example.com" in values and "8.8.8.8" in values
    assert "http://malware-c2.example.net/gate.php" in values
    for private in ("192.168.1.10", "printer.local", "router", "fe80::1", "100.64.1.1"):
        assert private not in values
