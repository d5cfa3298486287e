"""connect(): reachable, unreachable, rejected credentials, TLS — against real nats-servers."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import nats.errors
import pytest
from prometheus_client import REGISTRY

from ponix_config import NatsSettings
from ponix_devstack import NatsServer, NatsTls, free_port
from ponix_nats import NatsAuthError, NatsUnavailableError, connect
from tests.support.certs import make_certs

pytestmark = pytest.mark.integration


async def test_connects_and_names_the_client(nats_url: str) -> None:
    nc = await connect(NatsSettings(url=nats_url), name="ponix-test")
    try:
        assert nc.is_connected
        assert nc.options["name"] == "ponix-test"
    finally:
        await nc.close()


async def test_subjects_are_checked_unless_the_client_trusts_its_own(nats_url: str) -> None:
    checked = await connect(NatsSettings(url=nats_url), name="ponix-test")
    trusting = await connect(NatsSettings(url=nats_url), name="ponix-test", trusted_subjects=True)
    try:
        with pytest.raises(nats.errors.BadSubjectError):
            await checked.publish("bad\r\nPUB x 0", b"")
        # The ingester's kind of client: its subjects come from the server or from settings.
        sub = await trusting.subscribe("ponix.trusted")
        await trusting.publish("ponix.trusted", b"ok")
        assert (await sub.next_msg(timeout=5)).data == b"ok"
        assert trusting.options["skip_subject_validation"] is True
    finally:
        await checked.close()
        await trusting.close()


async def test_unreachable_server_fails_fast_with_one_line(
    capfd: pytest.CaptureFixture[str],
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(NatsUnavailableError) as info:
        await connect(NatsSettings(url=url, connect_timeout=2.0), name="ponix-test")
    assert time.monotonic() - started < 2.0
    text = str(info.value)
    assert text.startswith(f"nats.unreachable: {url}: ")
    assert "\n" not in text
    assert info.value.url == url
    # nats-py's default error callback would have printed a traceback here.
    assert capfd.readouterr().err == ""


async def test_every_server_of_the_list_is_tried_once() -> None:
    urls = [f"nats://127.0.0.1:{free_port()}" for _ in range(3)]
    with pytest.raises(NatsUnavailableError) as info:
        await connect(NatsSettings(url=",".join(urls)), name="ponix-test")
    assert info.value.url == ",".join(urls)


async def test_rejected_password_fails_once_without_retrying(
    nats_server_factory: Callable[..., NatsServer],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = nats_server_factory(user="alice", password="secret", jetstream=False)
    url = f"nats://127.0.0.1:{server.port}"
    settings = NatsSettings(url=url, user="alice", password="wrong-horse", connect_timeout=2.0)
    caplog.set_level(logging.DEBUG, logger="ponix_nats")
    started = time.monotonic()
    with pytest.raises(NatsAuthError) as info:
        await connect(settings, name="ponix-test")
    assert time.monotonic() - started < 2.0
    text = str(info.value)
    assert text.startswith(f"nats.auth_failed: {url}: ")
    assert "authorization violation" in text.lower()
    assert "wrong-horse" not in text
    assert "\n" not in text
    attempts = [r for r in caplog.records if r.getMessage() == "nats connect attempt failed"]
    assert len(attempts) == 1, "a rejected password must not be retried"
    assert capfd.readouterr().err == ""


async def test_password_and_token_in_their_own_settings_are_used(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    with_password = nats_server_factory(user="alice", password="secret", jetstream=False)
    with_token = nats_server_factory(token="s3cr3t-token", jetstream=False)
    for settings in (
        NatsSettings(url=f"nats://127.0.0.1:{with_password.port}", user="alice", password="secret"),
        NatsSettings(url=f"nats://127.0.0.1:{with_token.port}", token="s3cr3t-token"),
        NatsSettings(url=with_password.url),  # credentials lifted out of the URL
    ):
        nc = await connect(settings, name="ponix-test")
        await nc.close()


async def test_missing_creds_file_is_an_auth_error_before_any_attempt(tmp_path: Path) -> None:
    settings = NatsSettings(url="nats://127.0.0.1:1", creds_file=tmp_path / "none.creds")
    with pytest.raises(NatsAuthError, match="creds file"):
        await connect(settings, name="ponix-test")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_verifies_the_server_with_the_configured_ca(
    nats_server_factory: Callable[..., NatsServer], tmp_path: Path
) -> None:
    ca, cert, key = make_certs(tmp_path)
    server = nats_server_factory(tls=NatsTls(cert_file=cert, key_file=key), jetstream=False)
    nc = await connect(NatsSettings(url=server.url, tls_ca_file=ca), name="ponix-test")
    await nc.close()
    with pytest.raises(NatsUnavailableError) as info:
        await connect(NatsSettings(url=server.url), name="ponix-test")
    assert "certificate" in str(info.value).lower()
    assert "\n" not in str(info.value)


async def test_connection_series_follow_a_server_restart(
    nats_server_factory: Callable[..., NatsServer], unique: str
) -> None:
    """``ponix_nats_up`` and the disconnect/reconnect counters of one client (label ``client``),
    updated before the caller's own callbacks run; closing is not a lost connection."""
    server = nats_server_factory()
    name = f"ponix-test-{unique}"
    disconnected, reconnected, closed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def sample(metric: str) -> float | None:
        return REGISTRY.get_sample_value(metric, {"client": name})

    async def on_disconnected() -> None:
        disconnected.set()

    async def on_reconnected() -> None:
        reconnected.set()

    async def on_closed() -> None:
        closed.set()

    nc = await connect(
        NatsSettings(url=server.url),
        name=name,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        closed_cb=on_closed,
    )
    assert (sample("ponix_nats_up"), sample("ponix_nats_disconnects_total")) == (1, 0)

    server.stop()
    async with asyncio.timeout(20):
        await disconnected.wait()
    assert (sample("ponix_nats_up"), sample("ponix_nats_disconnects_total")) == (0, 1)
    assert sample("ponix_nats_reconnects_total") == 0

    server.start()
    async with asyncio.timeout(30):
        await reconnected.wait()
    assert (sample("ponix_nats_up"), sample("ponix_nats_reconnects_total")) == (1, 1)

    await nc.close()
    async with asyncio.timeout(10):
        await closed.wait()
    assert (sample("ponix_nats_up"), sample("ponix_nats_disconnects_total")) == (0, 1)
