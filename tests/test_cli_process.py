"""Smoke tests of the console script as a real process.

Most CLI tests run ``vtguardian.cli.main`` inside the test process (``helpers.run_cli``),
which saves starting Python for each run; these run a few commands both ways and require
the same exit status, stdout and stderr, so a difference between the two (state kept in
the process, a console sized at import, a signal handler left behind) fails here.
"""

from __future__ import annotations

import json

import pytest

from helpers import run_cli


def _both(*args: str, env: dict[str, str] | None = None):
    in_process = run_cli(*args, env=env)
    process = run_cli(*args, env=env, process=True)
    return in_process, process


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("ingest", "--help"),
        ("lookup", "not a domain!"),
        ("no-such-command",),
        ("--config", "/nonexistent/vtguardian.toml", "db", "status"),
    ],
    ids=["help", "ingest-help", "bad-ioc", "unknown-command", "missing-config"],
)
def test_in_process_and_real_process_agree(args, tmp_path):
    env = {"COLUMNS": "100", "VTGUARDIAN_DATABASE__URL": f"sqlite:///{tmp_path / 'v.db'}"}
    in_process, process = _both(*args, env=env)
    assert (in_process.returncode, in_process.stdout, in_process.stderr) == (
        process.returncode,
        process.stdout,
        process.stderr,
    )


def test_a_real_ingest_then_an_in_process_one_see_the_same_database(tmp_path):
    """A real process writes, the in-process run resumes from its offsets: nothing is
    counted twice whichever way the CLI ran."""
    log = tmp_path / "iocs.txt"
    log.write_text("example.com\n8.8.8.8\n")
    env = {"VTGUARDIAN_DATABASE__URL": f"sqlite:///{tmp_path / 'v.db'}"}
    first = run_cli("ingest", "--json", "-s", "plain", str(log), env=env, process=True)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["new_iocs"] == 2
    with log.open("a") as handle:
        handle.write("example.org\n")
    second = run_cli("ingest", "--json", "-s", "plain", str(log), env=env)
    assert second.returncode == 0, second.stderr
    assert (json.loads(second.stdout)["lines"], json.loads(second.stdout)["new_iocs"]) == (1, 1)
