# Sourced by the other scripts: make .venv and install vtguardian into it, once.
# Re-installs only when pyproject.toml changed, so repeated runs start at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VTGUARDIAN_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "vtguardian: creating virtual environment in $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.vtguardian-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "vtguardian: installing vtguardian and its dependencies (first run only)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]"
  echo "$WANT" > "$STAMP"
fi
