"""TLS, once asked for, comes before any credential: against real plaintext servers, through a
proxy that records every byte the client sends.

Each refusal has its control: the same client without TLS settings does send the password
through the same proxy, so the recording would have caught it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from clickhouse_driver import Client

from ponix_clickhouse import ClickHouseError, make_client, ping
from ponix_config import ClickHouseSettings, NatsSettings
from ponix_devstack import NatsServer, NatsTls
from ponix_nats import NatsTlsError, connect
from tests.support.certs import make_certs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NATS_PASSWORD = "n4ts-s3cret-pw"
CLICKHOUSE_PASSWORD = "ch-s3cret-pw"
TLS_RECORD = 0x16  # the first byte of a TLS ClientHello


class RecordingProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` and keeps what the client sent."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self.sent = bytearray()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._upstream)
        up = asyncio.create_task(self._pipe(client_r, server_w, record=True))
        down = asyncio.create_task(self._pipe(server_r, client_w, record=False))
        self._pipes |= {up, down}
        await asyncio.gather(up, down, return_exceptions=True)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if record:
                    self.sent += chunk
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


@contextlib.asynccontextmanager
async def proxy_to(host: str, port: int) -> AsyncIterator[RecordingProxy]:
    async with RecordingProxy(host, port) as proxy:
        yield proxy


@pytest.fixture
def plaintext_nats(nats_server_factory: Callable[..., NatsServer]) -> NatsServer:
    return nats_server_factory(user="ponix", password=NATS_PASSWORD, jetstream=False)


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A CA bundle (the system's): TLS settings that any real server could satisfy."""
    import ssl

    cafile = ssl.get_default_verify_paths().cafile
    if cafile is None:
        pytest.skip("no system CA bundle")
    return Path(cafile)


@pytest.mark.parametrize("how", ["tls-url", "ca-file", "handshake-first"])
async def test_nats_never_sends_credentials_to_a_server_without_tls(
    plaintext_nats: NatsServer, ca_file: Path, how: str
) -> None:
    async with proxy_to(plaintext_nats.host, plaintext_nats.port) as proxy:
        scheme = "tls" if how == "tls-url" else "nats"
        settings = NatsSettings(
            url=f"{scheme}://127.0.0.1:{proxy.port}",
            user="ponix",
            password=NATS_PASSWORD,
            tls_ca_file=ca_file if how == "ca-file" else None,
            tls_handshake_first=how == "handshake-first",
            connect_timeout=2.0,
        )
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is checked below
            await connect(settings, name="ponix-tls-test")

    if how == "handshake-first":
        # The server's INFO answered a ClientHello: the handshake fails, nothing else went out.
        assert proxy.sent[:1] == bytes([TLS_RECORD])
    else:
        assert isinstance(caught.value, NatsTlsError)
        assert caught.value.code == "nats.tls_required"
        assert "does not offer TLS" in str(caught.value)
    assert NATS_PASSWORD.encode() not in proxy.sent
    assert b"CONNECT" not in proxy.sent


async def test_the_control_a_plaintext_nats_client_does_send_the_password(
    plaintext_nats: NatsServer,
) -> None:
    async with proxy_to(plaintext_nats.host, plaintext_nats.port) as proxy:
        settings = NatsSettings(
            url=f"nats://127.0.0.1:{proxy.port}", user="ponix", password=NATS_PASSWORD
        )
        nc = await connect(settings, name="ponix-tls-test")
        await nc.close()

    assert NATS_PASSWORD.encode() in proxy.sent


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_a_nats_url_with_a_ca_file_upgrades_to_a_tls_server_and_authenticates(
    nats_server_factory: Callable[..., NatsServer], tmp_path: Path
) -> None:
    ca, cert, key = make_certs(tmp_path)
    server = nats_server_factory(
        tls=NatsTls(cert_file=cert, key_file=key),
        user="ponix",
        password=NATS_PASSWORD,
        jetstream=False,
    )
    async with proxy_to(server.host, server.port) as proxy:
        settings = NatsSettings(
            url=f"nats://127.0.0.1:{proxy.port}",
            user="ponix",
            password=NATS_PASSWORD,
            tls_ca_file=ca,
        )
        nc = await connect(settings, name="ponix-tls-test")
        assert nc.is_connected
        await nc.close()

    # Only the TLS handshake and encrypted records went out.
    assert NATS_PASSWORD.encode() not in proxy.sent
    assert b"CONNECT" not in proxy.sent


def _clickhouse_host_port(clickhouse_url: str) -> tuple[str, int]:
    settings = ClickHouseSettings(url=clickhouse_url)
    return settings.host, settings.port


@pytest.mark.parametrize("how", ["clickhouses-url", "ca-file"])
async def test_clickhouse_never_sends_credentials_to_a_server_without_tls(
    clickhouse_url: str, ca_file: Path, how: str
) -> None:
    host, port = _clickhouse_host_port(clickhouse_url)
    async with proxy_to(host, port) as proxy:
        scheme = "clickhouses" if how == "clickhouses-url" else "clickhouse"
        settings = ClickHouseSettings(
            url=f"{scheme}://127.0.0.1:{proxy.port}",
            user="ponix",
            password=CLICKHOUSE_PASSWORD,
            tls_ca_file=ca_file if how == "ca-file" else None,
            connect_timeout=2.0,
        )
        assert settings.secure
        client = make_client(settings)
        with pytest.raises(ClickHouseError):
            await ping(client)
        await asyncio.to_thread(client.disconnect)

    assert proxy.sent[:1] == bytes([TLS_RECORD])
    assert CLICKHOUSE_PASSWORD.encode() not in proxy.sent


async def test_the_control_a_plaintext_clickhouse_client_does_send_the_password(
    clickhouse_url: str,
) -> None:
    host, port = _clickhouse_host_port(clickhouse_url)
    async with proxy_to(host, port) as proxy:
        settings = ClickHouseSettings(
            url=f"clickhouse://127.0.0.1:{proxy.port}",
            user="ponix",
            password=CLICKHOUSE_PASSWORD,
            connect_timeout=2.0,
        )
        client: Client = make_client(settings)
        with pytest.raises(ClickHouseError):  # the user does not exist: auth fails
            await ping(client)
        await asyncio.to_thread(client.disconnect)

    assert CLICKHOUSE_PASSWORD.encode() in proxy.sent
