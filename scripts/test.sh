#!/usr/bin/env bash
# The project's test command: lint, format check, types, then pytest.
#   scripts/test.sh [all|unit|integration|faults] [extra pytest args...]
set -uo pipefail
cd "$(dirname "$0")/.."
suite="${1:-all}"; shift || true

step() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

if [ "$suite" = "all" ] || [ "$suite" = "lint" ]; then
  step "ruff check";          uv run --locked ruff check . || fail "ruff check"
  step "ruff format --check"; uv run --locked ruff format --check . || fail "ruff format"
  step "mypy --strict";       uv run --locked mypy || fail "mypy"
  [ "$suite" = "lint" ] && exit 0
fi

case "$suite" in
  all)         args=(-m "not faults_long") ;;
  unit)        args=(tests/unit) ;;
  integration) args=(tests/integration tests/e2e -m "not faults_long") ;;
  faults)      args=(tests/faults -m "faults or faults_long") ;;
  *) fail "unknown suite '$suite' (all, unit, integration, faults, lint)" ;;
esac

step "pytest ${args[*]} $*"
uv run --locked pytest "${args[@]}" "$@"
rc=$?
# pytest exits 5 when nothing was collected: for us that is a broken suite, never a pass.
if [ "$rc" -eq 5 ]; then fail "pytest collected no tests"; fi
exit "$rc"
