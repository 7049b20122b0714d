#!/usr/bin/env bash
# The main job: the offline demo (no API key, no network).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
exec "$VENV/bin/vtguardian" demo "$@"
