"""Helpers the tests share: the real console script run the way a user does, settings
pointed at the emulator, headless Chromium, and a real uvicorn serving an app."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import text

from vtguardian.config import Settings
from vtguardian.testing.vt_emulator import DEFAULT_KEY

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: The console script pip installed beside this Python (what a user runs), else ``-m``.
_SCRIPT = Path(sys.executable).with_name("vtguardian")
VTGUARDIAN = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "vtguardian"]
#: Real sample files the tests read, with their sources and licences (tests/data/SOURCES.md).
TEST_DATA = Path(__file__).resolve().parent / "data"


def gravity_db(path: Path) -> Path:
    """A Pi-hole gravity.db at ``path``, built from Pi-hole FTL's own test SQL."""
    with sqlite3.connect(path) as connection:
        connection.executescript((TEST_DATA / "pihole" / "FTL-test-gravity.db.sql").read_text())
    return path


#: Commands that serve or run until stopped: always a real process (with ``timeout``), so
#: one that wrongly starts serving stops there instead of holding up the whole run.
_UNTIL_STOPPED = {"serve", "run", "vt-emulator", "demo"}
#: Handlers a command may install (``ingest`` stops on SIGTERM), restored after it.
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: What ``__main__`` is when the console script runs: Click then names it ``vtguardian``
#: in usage lines, as the user sees it (under pytest it would say ``python -m pytest``).
_CONSOLE_SCRIPT = types.ModuleType("__main__")


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 120,
    process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``vtguardian ARGS`` with a clean VTGUARDIAN_* environment plus ``env``.

    In this process, through ``vtguardian.cli.main`` (what the console script calls):
    with that environment, ``cwd``, argv, ``input`` as stdin and its own stdout and
    stderr, all restored after, so the stdout, stderr and exit code are the ones a user
    gets, without starting Python for each run (0.6 s or more). ``timeout`` applies to a
    real process only (pytest-timeout bounds the rest). A real process (``python -m
    vtguardian``) with ``process=True``, for a command that serves or runs until stopped,
    for ``--follow``, or for every run when VTG_TESTS_CLI=process.
    """
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VTGUARDIAN_") and key != "VT_API_KEY"
    }
    clean.update(env or {})
    if process or _needs_a_process(args) or os.environ.get("VTG_TESTS_CLI") == "process":
        return subprocess.run(
            [*VTGUARDIAN, *args],
            env=clean,
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    return _run_in_process(list(args), clean, cwd, input)


def _needs_a_process(args: tuple[str, ...]) -> bool:
    if "--help" in args:
        return False
    words = iter(args)
    for word in words:
        if word in ("--config", "-c"):
            next(words, None)
        elif not word.startswith("-"):
            return word in _UNTIL_STOPPED or "--follow" in args
    return False


def cli_module() -> types.ModuleType:
    """``vtguardian.cli``, imported without COLUMNS and LINES: its Rich consoles then
    size themselves from each run's environment, as in a new process."""
    if "vtguardian.cli" not in sys.modules:
        sizes = {key: os.environ.pop(key) for key in ("COLUMNS", "LINES") if key in os.environ}
        try:
            importlib.import_module("vtguardian.cli")
        finally:
            os.environ.update(sizes)
    return sys.modules["vtguardian.cli"]


def _run_in_process(
    args: list[str], environ: dict[str, str], cwd: Path | None, input: str | None
) -> subprocess.CompletedProcess[str]:
    from typer.testing import CliRunner

    cli = cli_module()
    saved_environ = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_argv, saved_main = sys.argv, sys.modules["__main__"]
    saved_signals = {number: signal.getsignal(number) for number in _SIGNALS}
    try:
        os.environ.clear()
        os.environ.update(environ)
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["vtguardian", *args]
        sys.modules["__main__"] = _CONSOLE_SCRIPT
        with CliRunner().isolation(input=input) as (stdout, stderr, _both):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:  # what the interpreter does with it
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
                    code = 1
            except Exception:  # uncaught: a traceback on stderr and exit status 1
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            out, err = stdout.getvalue(), stderr.getvalue()
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        os.chdir(saved_cwd)
        sys.argv, sys.modules["__main__"] = saved_argv, saved_main
        for number, handler in saved_signals.items():
            signal.signal(number, handler)
    return subprocess.CompletedProcess(["vtguardian", *args], code, _as_text(out), _as_text(err))


def _as_text(data: bytes) -> str:
    """Bytes as ``subprocess.run(text=True)`` decodes them (universal newlines)."""
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


def wait_for(check, timeout: float = 60.0, what: str = "condition", interval: float = 0.2):
    """The first truthy result of ``check``, polled until ``timeout``; AssertionError after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def settings_for(db_url: str, vt_url: str, **sections: dict | list) -> Settings:
    """Settings as a user would write them, pointed at a database and the emulator."""
    data: dict = {
        "database": {"url": db_url},
        # Generous budgets: tests that are about the quota set their own.
        "virustotal": {
            "api_key": DEFAULT_KEY,
            "host": vt_url,
            "per_minute": 100_000,
            "per_day": 1_000_000,
            "per_month": 10_000_000,
            # Relationship fetches add requests; the tests about them turn them on.
            "relationship_requests_per_day": 0,
        },
        "queue": {"retry_base_seconds": 0.2},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values} if isinstance(values, dict) else values
    return Settings(**data)


def chromium(url: str, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    assert _CHROMIUM, (
        "headless Chromium is required (Debian package 'chromium'; .ci/run installs it)"
    )
    return subprocess.run(
        [_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=15000", "--window-size=1400,2000", *args, url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def stat_value(dom: str, key: str) -> str:
    start = dom.index(f'data-key="{key}"')
    stat = dom.index('class="stat">', start) + len('class="stat">')
    return dom[stat : dom.index("<", stat)].strip()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` served by a real uvicorn on a free loopback port, for as long as the
    block runs; yields its base URL (no trailing slash)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, f"uvicorn did not start on port {port}"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def lookup_outcomes(engine: Any) -> dict[str, int]:
    """The hourly lookup statistics summed per outcome (cache_hit, cache_miss, ...)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT outcome, SUM(count) FROM lookup_stats GROUP BY outcome")
        ).all()
    return {outcome: int(total) for outcome, total in rows}
