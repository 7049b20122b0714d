#!/usr/bin/env bash
# The test suite: unit, store (SQLite and MariaDB), CLI and lint checks.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
