#!/usr/bin/env bash
# Installs whatever is missing for `make dev` and `make test`: uv, the workspace, ClickHouse.
# Safe to re-run; every step is skipped when its result is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv from PyPI"
  python3 -m pip install --quiet uv || python3 -m pip install --quiet --user uv
  export PATH="$HOME/.local/bin:$PATH"
fi

say "syncing the Python workspace (uv sync --locked)"
uv sync --all-packages --locked --quiet

have_clickhouse() {
  command -v clickhouse >/dev/null 2>&1 || command -v clickhouse-server >/dev/null 2>&1 \
    || [ -x /usr/sbin/clickhouse-server ] || [ -x /usr/bin/clickhouse ]
}

if ! have_clickhouse; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing clickhouse-server and clickhouse-client with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq clickhouse-server clickhouse-client </dev/null >/dev/null
  else
    say "ClickHouse is missing: install clickhouse-server (Debian: sudo apt-get install clickhouse-server clickhouse-client)"
    say "or put a 'clickhouse' binary on PATH (https://clickhouse.com/docs/install); then re-run"
    exit 1
  fi
fi
