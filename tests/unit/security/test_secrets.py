"""No secret from the configuration shows up where people look: reprs, dumps, error messages,
log records, and the one line a failed service prints.

Secrets are marked with ``SECRET`` so a leak is found by a plain substring search, also when
only part of one leaks (the URL-encoded and the decoded form are both searched).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ponix_clickhouse import (
    BatchWriter,
    ClickHouseError,
    InsertError,
    make_client,
    migrate,
    ping,
)
from ponix_config import ClickHouseSettings, ConfigError, NatsSettings, load_settings
from ponix_devstack import free_port
from ponix_nats import NatsError, connect
from tests.support.pipeline import eventually

CH_PASSWORD = "SECRET-ch-pw!#1"
CH_PASSWORD_ENCODED = "SECRET-ch-pw%21%231"
NATS_PASSWORD = "SECRET-nats-pw"
NATS_TOKEN = "SECRET-nats-token"
NEEDLES = ("SECRET", "ch-pw", "nats-pw", "nats-token")


def assert_no_secret(text: str, where: str) -> None:
    leaked = [needle for needle in NEEDLES if needle in text]
    assert not leaked, f"{where} shows {leaked}: {text[:500]!r}"


def clickhouse_url(port: int = 9000) -> str:
    return f"clickhouse://writer:{CH_PASSWORD_ENCODED}@127.0.0.1:{port}/ponix"


# -- settings objects -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        ClickHouseSettings(url=clickhouse_url()),
        ClickHouseSettings(url="clickhouse://127.0.0.1", user="writer", password=CH_PASSWORD),
        NatsSettings(url=f"nats://ingester:{NATS_PASSWORD}@127.0.0.1:4222"),
        NatsSettings(url=f"nats://{NATS_TOKEN}@127.0.0.1:4222"),
        NatsSettings(url="nats://a:4222,nats://b:4222", user="u", password=NATS_PASSWORD),
        NatsSettings(token=NATS_TOKEN),
    ],
    ids=["ch-url", "ch-fields", "nats-url-user", "nats-url-token", "nats-fields", "nats-token"],
)
def test_settings_never_show_a_secret(settings: ClickHouseSettings | NatsSettings) -> None:
    assert_no_secret(repr(settings), "repr()")
    assert_no_secret(str(settings), "str()")
    assert_no_secret(str(settings.model_dump()), "model_dump()")
    assert_no_secret(settings.model_dump_json(), "model_dump_json()")
    assert_no_secret(settings.url, "the url field")
    if isinstance(settings, NatsSettings):
        assert_no_secret(",".join(settings.servers), "servers")


def test_credentials_in_urls_are_lifted_and_decoded() -> None:
    ch = ClickHouseSettings(url=clickhouse_url())
    assert (ch.user, ch.password.get_secret_value()) == ("writer", CH_PASSWORD)
    nats = NatsSettings(url=f"nats://ingester:{NATS_PASSWORD}@127.0.0.1:4222")
    assert nats.user == "ingester"
    assert nats.password is not None
    assert nats.password.get_secret_value() == NATS_PASSWORD
    token = NatsSettings(url=f"nats://{NATS_TOKEN}@127.0.0.1:4222")
    assert token.token is not None
    assert token.token.get_secret_value() == NATS_TOKEN


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CLICKHOUSE_URL": f"http://writer:{CH_PASSWORD_ENCODED}@db:8123/"}, "CLICKHOUSE_URL"),
        ({"CLICKHOUSE_URL": f"clickhouse://writer:{CH_PASSWORD_ENCODED}@/"}, "CLICKHOUSE_URL"),
        (
            {"CLICKHOUSE_URL": f"clickhouse://writer:{CH_PASSWORD_ENCODED}@db:port/"},
            "CLICKHOUSE_URL",
        ),
        (
            {"CLICKHOUSE_URL": f"clickhouse://writer:{CH_PASSWORD_ENCODED}@db:9000/bad-db"},
            "CLICKHOUSE_DATABASE",
        ),
        ({"CLICKHOUSE_PASSWORD": CH_PASSWORD, "CLICKHOUSE_BATCH_MAX_ROWS": "0"}, "BATCH_MAX"),
        ({"NATS_URL": f"http://u:{NATS_PASSWORD}@h:4222"}, "NATS_URL"),
        ({"NATS_URL": f"nats://u:{NATS_PASSWORD}@h:4222,ftp://x"}, "NATS_URL"),
        ({"NATS_URL": f"nats://u:{NATS_PASSWORD}@h:port"}, "NATS_URL"),
        ({"NATS_TOKEN": NATS_TOKEN, "NATS_ACK_WAIT": "-1"}, "NATS_ACK_WAIT"),
    ],
)
def test_a_bad_setting_names_the_variable_and_never_the_secret(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    """A bad value fails at start-up with the variable's name and the reason."""
    for name in list(os.environ):
        if name.startswith(("CLICKHOUSE_", "NATS_", "PONIX_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(Path(__file__).parent)  # no .env file here
    cls = ClickHouseSettings if next(iter(env)).startswith("CLICKHOUSE") else NatsSettings
    with pytest.raises(ConfigError) as info:
        load_settings(cls)
    text = str(info.value)
    assert "\n" not in text
    assert_no_secret(text, "the config error")
    assert variable in text, f"the error does not name {variable}"


# -- failures while talking to the servers --------------------------------------------------


def closed_port() -> int:
    return free_port()


async def test_clickhouse_connection_failures_never_show_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = ClickHouseSettings(url=clickhouse_url(closed_port()), connect_timeout=1.0)
    client = make_client(settings)
    assert_no_secret(repr(client), "repr(client)")
    with pytest.raises(ClickHouseError) as pinged:
        await ping(client)
    assert_no_secret(str(pinged.value), "the ping error")
    assert_no_secret(repr(pinged.value), "repr(the ping error)")
    with pytest.raises(ClickHouseError) as migrated:
        await asyncio.to_thread(migrate, settings)
    assert_no_secret(str(migrated.value), "the migration error")
    writer = BatchWriter(settings, server_version=(18, 16), shutdown_timeout=0.1)
    try:
        held = writer.add([("id", "o", "d", 0, 0, "{}")], 10)

        async def holding() -> bool:
            return writer.holding

        await eventually(holding, within=10, what="the writer holds the batch")
    finally:
        await writer.close()
    with pytest.raises(InsertError) as inserted:
        await held
    assert_no_secret(str(inserted.value), "the insert error")
    assert_no_secret(caplog.text, "the log records")


async def test_nats_connection_failures_never_show_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = closed_port()
    for url in (
        f"nats://ingester:{NATS_PASSWORD}@127.0.0.1:{port}",
        f"nats://{NATS_TOKEN}@127.0.0.1:{port}",
    ):
        with pytest.raises(NatsError) as info:
            await connect(NatsSettings(url=url, connect_timeout=1.0), name="ponix-test")
        assert_no_secret(str(info.value), "the connect error")
        assert_no_secret(repr(info.value), "repr(the connect error)")
    assert_no_secret(caplog.text, "the log records")


def test_a_service_that_cannot_start_prints_one_line_without_secrets(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "NATS_"))},
        "CLICKHOUSE_URL": clickhouse_url(closed_port()),
        "NATS_URL": f"nats://ingester:{NATS_PASSWORD}@127.0.0.1:{closed_port()}",
        "CLICKHOUSE_CONNECT_TIMEOUT": "0.5",
        "INGESTER_STARTUP_DEADLINE": "1",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "json",
        "HTTP_PORT": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "ponix_ingester"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert errors[0].startswith("error: clickhouse.unreachable: clickhouse://127.0.0.1:")
    assert_no_secret(proc.stderr + proc.stdout, "the service's output")
