"""A TCP proxy on loopback that makes a healthy server look slow, then hung.

``ChaosProxy(host, port)`` forwards every connection to the target. While ``latency`` is set,
each chunk waits that long before it is forwarded (in order, per direction). ``blackhole()``
stops all forwarding and leaves new connections unanswered, as a hung host or a dropped route
does (bytes stay queued, TCP backpressure does the rest); ``heal()`` lets everything flow again.
``reset()`` aborts every open connection, so that clients connect and log in again.
"""

from __future__ import annotations

import asyncio
import contextlib


class ChaosProxy:
    """Runs on the test's event loop; the process under test connects to :attr:`port`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.latency = 0.0
        self.connections = 0
        self.port = 0

    async def start(self) -> ChaosProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def blackhole(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self.latency = 0.0
        self._flowing.set()

    def reset(self) -> None:
        """Abort every open connection (both sides): the clients must connect, and log in,
        again. New connections are forwarded as before."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(client_w)
        try:
            await self._flowing.wait()
            try:
                server_r, server_w = await asyncio.open_connection(*self._target)
            except OSError:
                return
            self._writers.add(server_w)
            pumps = [
                asyncio.ensure_future(self._pump(client_r, server_w)),
                asyncio.ensure_future(self._pump(server_r, client_w)),
            ]
            for pump in pumps:
                self._tasks.add(pump)
                pump.add_done_callback(self._tasks.discard)
            # Either side closing ends the pair, as a real connection would.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            server_w.close()
            self._writers.discard(server_w)
        finally:
            client_w.close()
            self._writers.discard(client_w)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                await self._flowing.wait()
                chunk = await reader.read(65536)
                if not chunk:
                    return
                if self.latency > 0:
                    await asyncio.sleep(self.latency)
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
