"""Readiness probes for nats-server and ClickHouse, and the deadline-bounded wait around them.

The same probes serve local processes and containers, so both are held to one definition of
ready: NATS answers ``/healthz?js-enabled-only=true`` *and* greets on the client port;
ClickHouse answers ``/ping`` *and* accepts native connections *and* runs a query as our user.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from ponix_devstack.errors import QueryFailedError, ServerNotReadyError
from ponix_devstack.probes import can_connect, http_request, read_banner
from ponix_runner import Backoff, Deadline

# Polling another process's sockets: quick at first (a server is often up in ms), then 0.1 s.
_PROBE_BACKOFF = Backoff(initial=0.01, maximum=0.1)


@dataclass(frozen=True, slots=True)
class Readiness:
    """A probe's answer: ``reason`` says why not ready yet; ``None`` means ready."""

    reason: str | None
    version: tuple[int, ...] = ()

    @property
    def ready(self) -> bool:
        return self.reason is None


def probe_nats(
    host: str, port: int, monitor_port: int, *, jetstream: bool, timeout: float
) -> Readiness:
    health = "/healthz?js-enabled-only=true" if jetstream else "/healthz"
    try:
        reply = http_request(host, monitor_port, health, timeout=timeout)
    except OSError as err:
        return Readiness(f"monitor http://{host}:{monitor_port}{health}: {err}")
    if reply.status != 200:
        return Readiness(f"{health} answered {reply.status}: {reply.body.strip()[:200]}")
    # /healthz can answer before the client listener accepts; the INFO greeting proves it does.
    try:
        banner = read_banner(host, port, timeout=timeout)
    except OSError as err:
        return Readiness(f"client port {host}:{port}: {err}")
    if not banner.startswith(b"INFO "):
        return Readiness(f"client port greeted with {banner[:80]!r}, expected INFO")
    return Readiness(None, _nats_version(banner))


def probe_clickhouse(
    host: str, http_port: int, tcp_port: int, *, user: str, password: str, timeout: float
) -> Readiness:
    try:
        ping = http_request(host, http_port, "/ping", timeout=timeout)
    except OSError as err:
        return Readiness(f"http://{host}:{http_port}/ping: {err}")
    if ping.status != 200 or ping.body.strip() != "Ok.":
        return Readiness(f"/ping answered {ping.status} {ping.body.strip()[:100]!r}")
    if not can_connect(host, tcp_port, timeout=timeout):
        return Readiness(f"native port {host}:{tcp_port} refuses connections")
    try:
        text = clickhouse_http_query(
            host, http_port, "SELECT version()", user=user, password=password, timeout=timeout
        )
    except (OSError, QueryFailedError) as err:
        return Readiness(f"SELECT version() as {user!r}: {err}")
    return Readiness(None, parse_version(text))


def clickhouse_http_query(
    host: str, http_port: int, sql: str, *, user: str, password: str, timeout: float
) -> str:
    """POST ``sql`` (POST, because ClickHouse makes GET requests readonly)."""
    reply = http_request(
        host, http_port, "/", body=sql, basic_auth=(user, password), timeout=timeout
    )
    if reply.status != 200:
        raise QueryFailedError(reply.status, reply.body)
    return reply.body


def wait_until_ready(
    probe: Callable[[float], Readiness],
    *,
    server: str,
    timeout: float,
    check_alive: Callable[[], None],
    log_tail: Callable[[], str],
    on_timeout: Callable[[], object],
) -> Readiness:
    """Probe until ready or ``timeout`` seconds pass; one monotonic deadline bounds it all.

    ``probe`` gets the seconds it may spend. ``check_alive`` raises if the server died (a
    crashed start fails fast instead of waiting out the deadline). On timeout ``on_timeout``
    runs (it stops the server, so nothing leaks) and :class:`ServerNotReadyError` carries the
    last reason and the log tail. The gap between probes grows from 10 ms to 100 ms: these are
    another process's sockets, there is no event to wait on.
    """
    deadline = Deadline.after(timeout)
    attempt = 0
    while True:
        attempt += 1
        check_alive()
        result = probe(max(0.05, min(1.0, deadline.remaining())))
        if result.ready:
            return result
        if deadline.expired():
            tail = log_tail()
            on_timeout()
            raise ServerNotReadyError(server, timeout, result.reason or "not ready", tail)
        time.sleep(min(_PROBE_BACKOFF.delay(attempt), deadline.remaining()))


def parse_version(text: str) -> tuple[int, ...]:
    """``"18.16.1"`` -> ``(18, 16, 1)``; ``"25.8.2.29"`` -> ``(25, 8, 2, 29)``."""
    return tuple(int(part) for part in re.findall(r"\d+", text.strip().split("-", 1)[0])[:4])


def _nats_version(banner: bytes) -> tuple[int, ...]:
    try:
        info = json.loads(banner[len(b"INFO ") :])
    except ValueError:
        return ()
    return parse_version(str(info.get("version", ""))) if isinstance(info, dict) else ()
