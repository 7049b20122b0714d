"""Run the real console script, the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

VTGUARDIAN = [sys.executable, "-m", "vtguardian"]


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
