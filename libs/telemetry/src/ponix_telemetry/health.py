"""``/metrics``, ``/healthz`` and ``/readyz`` on one small aiohttp server.

Readiness is a set of named async checks (NATS connected, consumer bound, ClickHouse
reachable); each result is cached briefly so probes never hammer the servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ponix_telemetry.errors import listen_error
from ponix_telemetry.logs import get_logger

ReadinessCheck = Callable[[], Awaitable[bool]]

log = get_logger(__name__)


@dataclass
class _Cached:
    ok: bool = False
    checked_at: float = -1e9  # monotonic seconds
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class HealthServer:
    """Serves the three endpoints; ``start()`` binds, ``stop()`` is the closer."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        check_ttl: float = 1.0,
        check_timeout: float = 2.0,
    ) -> None:
        self._host = host
        self._port = port
        self._checks: dict[str, ReadinessCheck] = {}
        self._cache: dict[str, _Cached] = {}
        self._ttl = check_ttl
        self._timeout = check_timeout
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check
        self._cache[name] = _Cached()

    async def start(self) -> None:
        """Bind and serve; raises :class:`ListenError` (``PortInUseError``, ...) on a bad
        HTTP_HOST or HTTP_PORT."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/ping", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/ready", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise listen_error(self._host, self._port, exc) from exc
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("health server listening", host=self._host, port=self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def readiness(self) -> dict[str, bool]:
        results = await asyncio.gather(*(self._check(name) for name in self._checks))
        return dict(zip(self._checks, results, strict=True))

    async def _check(self, name: str) -> bool:
        cached = self._cache[name]
        async with cached.lock:
            if time.monotonic() - cached.checked_at < self._ttl:
                return cached.ok
            try:
                async with asyncio.timeout(self._timeout):
                    ok = await self._checks[name]()
            except Exception as exc:  # noqa: BLE001 - a failing probe means "not ready"
                log.debug("readiness check failed", check=name, error=str(exc))
                ok = False
            if ok != cached.ok:
                log.info("readiness changed", check=name, ready=ok)
            cached.ok, cached.checked_at = ok, time.monotonic()
            return ok

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = await self.readiness()
        ready = all(checks.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )
