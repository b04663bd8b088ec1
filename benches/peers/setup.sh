#!/usr/bin/env bash
# Installs the peers the e2e runner times with --peers into a virtualenv:
#   dlt (sql_database source, connectorx backend -> postgres destination)
#   reladiff (hash diff)
# Usage: benches/peers/setup.sh [VENV]   (default $SYNCHUB_PEERS_VENV, else
# $HOME/.cache/synchub-peers-venv). Uses the machine's `python3 -m venv` and
# PyPI. Does nothing when VENV already holds exactly these pins (stamp file).
set -euo pipefail

VENV="${1:-${SYNCHUB_PEERS_VENV:-$HOME/.cache/synchub-peers-venv}}"
PYTHON="${PYTHON:-python3}"

# Verified together on Python 3.11 (2026-11-25). SQLAlchemy (needed by
# sql_database; dlt has no extra for it) < 2.1: 2.1 makes
# postgresql:// mean psycopg 3, which dlt's sql_database would then need.
PINS=(
  "dlt[postgres,parquet]==1.31.0"
  "connectorx==0.4.6"
  "reladiff==0.6.0"
  "sqlalchemy==2.0.58"
  "psycopg2-binary==2.9.13"
  "pyarrow==26.0.1"
)
STAMP="$VENV/synchub-peers.stamp"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "peers: $VENV is up to date"
  exit 0
fi

export RUNTIME__DLTHUB_TELEMETRY=false PIP_DISABLE_PIP_VERSION_CHECK=1
echo "peers: creating $VENV with $("$PYTHON" --version 2>&1)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "${PINS[@]}"
"$VENV/bin/python" -c "import dlt, connectorx, reladiff, sqlalchemy, psycopg2, pyarrow; \
from dlt.sources.sql_database import sql_table; \
print('peers: dlt', dlt.__version__, '| connectorx', connectorx.__version__, '| sqlalchemy', sqlalchemy.__version__)"
printf '%s\n' "$WANT" > "$STAMP"
echo "peers: ready in $VENV"
