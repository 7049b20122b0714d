"""Helpers the tests share: the real console script run the way a user does, settings
pointed at the emulator, headless Chromium, and a real uvicorn serving an app."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import text

from vtguardian.config import Settings
from vtguardian.testing.vt_emulator import DEFAULT_KEY

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VTGUARDIAN = [sys.executable, "-m", "vtguardian"]
#: Real sample files the tests read, with their sources and licences (tests/data/SOURCES.md).
TEST_DATA = Path(__file__).resolve().parent / "data"


def gravity_db(path: Path) -> Path:
    """A Pi-hole gravity.db at ``path``, built from Pi-hole FTL's own test SQL."""
    with sqlite3.connect(path) as connection:
        connection.executescript((TEST_DATA / "pihole" / "FTL-test-gravity.db.sql").read_text())
    return path


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``vtguardian ARGS`` with a clean VTGUARDIAN_* environment plus ``env``."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VTGUARDIAN_") and key != "VT_API_KEY"
    }
    clean.update(env or {})
    return subprocess.run(
        [*VTGUARDIAN, *args],
        env=clean,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
