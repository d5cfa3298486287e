"""Tiny stdlib network probes for readiness checks (no proxies, bounded by a timeout)."""

from __future__ import annotations

import base64
import http.client
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: str


def http_request(
    host: str,
    port: int,
    path: str,
    *,
    body: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    timeout: float = 2.0,
) -> HttpReply:
    """GET (or POST when ``body`` is given) over plain HTTP.

    http.client rather than urllib: urllib honours ``http_proxy``, and a proxy must never sit
    between a test and a loopback server.
    """
    headers: dict[str, str] = {}
    if basic_auth is not None:
        token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    conn = http.client.HTTPConnection(host, port, timeout=max(timeout, 0.05))
    try:
        conn.request("GET" if body is None else "POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return HttpReply(response.status, response.read().decode("utf-8", errors="replace"))
    finally:
        conn.close()


def read_banner(host: str, port: int, *, timeout: float = 2.0, limit: int = 4096) -> bytes:
    """Connect and return the first line the server sends (NATS greets with ``INFO {...}``)."""
    with socket.create_connection((host, port), timeout=max(timeout, 0.05)) as sock:
        data = b""
        while b"\n" not in data and len(data) < limit:
            chunk = sock.recv(limit)
            if not chunk:
                break
            data += chunk
    return data.split(b"\n", 1)[0]


def can_connect(host: str, port: int, *, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=max(timeout, 0.05)):
            return True
    except OSError:
        return False
