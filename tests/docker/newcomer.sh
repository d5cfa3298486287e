#!/usr/bin/env bash
# A newcomer on a fresh Debian 12 machine, for real: `make test-newcomer` (Docker, about 20 min).
#
# In a new container of DEBIAN_IMAGE (default debian:bookworm; local/debian:bookworm where no
# registry is reachable), with the host network, it does what the README asks of a newcomer:
#   1. apt-get install git make python3 (the system Python: externally managed, PEP 668);
#   2. git clone this repository (the commit checked out here, so commit first);
#   3. `make dev`: the stack comes up, `ponix publish` and `ponix query` work, no test tool was
#      installed, and Ctrl-C (SIGINT to the foreground process group) stops it cleanly;
#   4. `make test`, which must pass.
# The host's CA bundle (SSL_CERT_FILE, else Debian's path) is mounted and named by SSL_CERT_FILE
# and PIP_CERT, as on a machine behind a TLS-inspecting proxy; nothing else is brought in.
set -euo pipefail
cd "$(dirname "$0")/../.."

image="${DEBIAN_IMAGE:-debian:bookworm}"
ca_bundle="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
git_dir="$(git rev-parse --path-format=absolute --git-common-dir)"
commit="$(git rev-parse HEAD)"

say() { printf '==> %s\n' "$*" >&2; }

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  say "uncommitted changes are not in the clone: testing commit ${commit:0:12}"
fi

ca_args=()
if [ -f "$ca_bundle" ]; then
  ca_args=(-v "$ca_bundle:/etc/ponix-host-ca.crt:ro"
    -e SSL_CERT_FILE=/etc/ponix-host-ca.crt -e PIP_CERT=/etc/ponix-host-ca.crt)
fi

say "fresh $image: apt-get install git make python3, clone ${commit:0:12}, make dev, make test"
started=$SECONDS
docker run --rm --network host --init \
  -v "$git_dir:/src.git:ro" -e COMMIT="$commit" "${ca_args[@]}" \
  "$image" bash -euo pipefail -c '
say() { printf "==> newcomer: %s\n" "$*" >&2; }
t0=$SECONDS
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq git make python3 >/dev/null
say "git, make, $(python3 --version) installed in $((SECONDS - t0)) s"

git clone -q /src.git /root/ponix
cd /root/ponix
git checkout -q --detach "$COMMIT"

say "make dev"
t1=$SECONDS
setsid make dev >/tmp/dev.log 2>&1 </dev/null &
dev=$!
until [ -f .ponix/env ]; do
  if ! kill -0 "$dev" 2>/dev/null; then say "make dev exited early"; cat /tmp/dev.log; exit 1; fi
  if [ $((SECONDS - t1)) -gt 900 ]; then say "make dev not up in 900 s"; tail -40 /tmp/dev.log; exit 1; fi
  sleep 1
done
say "make dev is up in $((SECONDS - t1)) s; what the bootstrap said:"
grep "^==> " /tmp/dev.log >&2 || true
export PATH="$HOME/.local/bin:$PATH"
uv run --no-sync ponix publish --count 1000
t3=$SECONDS
rows=0
until [ "$rows" -ge 1000 ]; do
  if [ $((SECONDS - t3)) -gt 60 ]; then say "only $rows rows 60 s after publishing 1000"; exit 1; fi
  sleep 1
  rows=$(uv run --no-sync ponix query "SELECT count() FROM ponix.processed_envelopes FINAL")
done
for tool in pytest mypy ruff chdb; do
  if .venv/bin/python -c "import $tool" 2>/dev/null; then say "make dev installed $tool"; exit 1; fi
done
kill -INT -- "-$dev"
wait "$dev" || true
grep -q "stopped; the data stays" /tmp/dev.log || { say "make dev did not stop cleanly"; tail -40 /tmp/dev.log; exit 1; }
say "make dev: $rows rows after publishing 1000, no test tools installed, stopped cleanly on Ctrl-C"

say "make test"
t2=$SECONDS
make test </dev/null
say "make test passed in $((SECONDS - t2)) s"
'
say "newcomer run passed in $((SECONDS - started)) s"
