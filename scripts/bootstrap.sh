#!/usr/bin/env bash
# Installs whatever is missing for `make dev` and `make test`: uv, the workspace, ClickHouse.
#
#   scripts/bootstrap.sh         the workspace with the dev group (test tools: pytest, chdb, ...)
#   scripts/bootstrap.sh dev     the workspace only, for running the pipeline (`make dev`)
#
# Safe to re-run; every step is skipped when its result is already present. uv comes from PyPI
# without touching the system Python, which Debian 12 and Ubuntu 23.04+ mark externally managed
# (PEP 668: `pip install` into it is refused). In order: uv already on PATH; pipx; a private venv
# in ~/.local/share/ponix/uv linked from ~/.local/bin; as root on Debian, apt-get's python3-venv
# first, then that venv. Each fallback says so in one line.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
# The same uv as docker/Dockerfile and .mise.toml (tests/unit/deploy checks they agree).
UV_VERSION=0.13.9
UV_VENV="${XDG_DATA_HOME:-$HOME/.local/share}/ponix/uv"
BIN_DIR="$HOME/.local/bin"
export PATH="$BIN_DIR:$PATH"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

case "$mode" in
  dev | test) ;;
  *) die "bootstrap.unknown_mode: '$mode' (dev or test)" ;;
esac

apt_updated=""
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then
    apt-get update -qq </dev/null
    apt_updated=1
  fi
  apt-get install -y -qq "$@" </dev/null >/dev/null
}

is_root_with_apt() { [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; }

uv_in_private_venv() {
  rm -rf "$UV_VENV"
  python3 -m venv "$UV_VENV" >/dev/null 2>&1 || return 1
  "$UV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" \
    || return 1
  mkdir -p "$BIN_DIR"
  ln -sf "$UV_VENV/bin/uv" "$BIN_DIR/uv"
}

install_uv() {
  command -v python3 >/dev/null 2>&1 || die "bootstrap.python_missing: install python3 (3.11 or later) and re-run"
  if command -v pipx >/dev/null 2>&1; then
    say "uv is missing: installing uv $UV_VERSION with pipx"
    pipx install "uv==$UV_VERSION" >/dev/null 2>&1 && return
    say "pipx could not install uv: trying a private venv"
  fi
  say "uv is missing: installing uv $UV_VERSION into a private venv ($UV_VENV, linked from $BIN_DIR)"
  uv_in_private_venv && return
  if is_root_with_apt; then
    say "python3 cannot create a venv: installing Debian's python3-venv with apt-get"
    apt_install python3-venv
    uv_in_private_venv && return
  fi
  rm -rf "$UV_VENV"
  die "bootstrap.uv_missing: python3 cannot create a venv; install python3-venv (sudo apt-get install python3-venv) or pipx and re-run, or install uv yourself (https://docs.astral.sh/uv/)"
}

command -v uv >/dev/null 2>&1 || install_uv

if [ "$mode" = "dev" ]; then
  # --inexact keeps the test tools a previous `make test` installed.
  say "syncing the Python workspace without the dev group (uv sync --locked --no-dev)"
  uv sync --all-packages --locked --no-dev --inexact --quiet
else
  say "syncing the Python workspace (uv sync --locked)"
  uv sync --all-packages --locked --quiet
fi

have_clickhouse() {
  command -v clickhouse >/dev/null 2>&1 || command -v clickhouse-server >/dev/null 2>&1 \
    || [ -x /usr/sbin/clickhouse-server ] || [ -x /usr/bin/clickhouse ]
}

if ! have_clickhouse; then
  if is_root_with_apt; then
    say "ClickHouse is missing: installing Debian's clickhouse-server and clickhouse-client with apt-get"
    apt_install clickhouse-server clickhouse-client
  else
    die "devstack.clickhouse_missing: install clickhouse-server (Debian: sudo apt-get install clickhouse-server clickhouse-client) or put a 'clickhouse' binary on PATH (https://clickhouse.com/docs/install), then re-run"
  fi
fi

# promtool checks docker/observability's alert rules (tests/unit/telemetry). Only the binary is
# taken from Debian's prometheus package, into .venv/bin (on PATH under `uv run`): installing
# the package would also set up a Prometheus server. Optional: the tests skip without it.
if [ "$mode" = "test" ] && ! command -v promtool >/dev/null 2>&1 && [ ! -x .venv/bin/promtool ] \
    && command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
  say "extracting promtool from Debian's prometheus package into .venv/bin"
  scratch="$(mktemp -d)"
  if (cd "$scratch" && apt-get download prometheus >/dev/null 2>&1) \
      && dpkg-deb --fsys-tarfile "$scratch"/prometheus_*.deb \
        | tar -x -C "$scratch" ./usr/bin/promtool \
      && mv "$scratch/usr/bin/promtool" .venv/bin/; then
    :
  else
    say "promtool unavailable (Debian's prometheus package could not be read); its rule checks will skip"
  fi
  rm -rf "$scratch"
fi
