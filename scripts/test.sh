#!/usr/bin/env bash
# The test suite: unit, store (SQLite and MariaDB), CLI, browser and lint checks, in
# parallel (pytest-xdist, see pyproject.toml); pytest prints the total time at the end.
# Fast lane: bash scripts/test.sh -m "not mariadb and not browser and not slow"
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
# The suite starts some 300 Python processes (CLI runs, kill -9 campaigns, xdist workers):
# with their bytecode cached in __pycache__ (ignored by git) each starts 0.2 s sooner, and
# each worker collects the tests in 2.5 s instead of 5.5 s.
unset PYTHONDONTWRITEBYTECODE
exec "$VENV/bin/python" -m pytest --durations=15 "$@"
