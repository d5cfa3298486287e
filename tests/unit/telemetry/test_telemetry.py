import errno
import io
import json
import logging
import socket

import aiohttp
import pytest

import ponix_telemetry
from ponix_config import TelemetrySettings
from ponix_runner import user_error_line
from ponix_telemetry import (
    HealthServer,
    ListenError,
    PortInUseError,
    TelemetryError,
    configure_logging,
    get_logger,
    metrics,
)


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_logs_are_json_lines_with_the_keys_log_shippers_expect() -> None:
    out = io.StringIO()
    configure_logging(
        TelemetrySettings(log_level="info", log_format="auto"),
        stream=out,
        service="ponix-ingester",
        version="1.2.3",
    )
    get_logger("ponix.test").info("batch stored", rows=12, table="processed_envelopes")
    logging.getLogger("nats.aio.client").warning("reconnecting", extra={"attempt": 3})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["message"] == "batch stored"
    assert lines[0]["rows"] == 12
    assert lines[0]["level"] == "info"
    assert lines[0]["timestamp"].endswith("Z")
    assert lines[1]["message"] == "reconnecting"
    assert lines[1]["attempt"] == 3
    assert lines[1]["logger"] == "nats.aio.client"
    for line in lines:
        assert (line["service"], line["version"]) == ("ponix-ingester", "1.2.3")
        assert "event" not in line
        assert "at" not in line


def _console_line(monkeypatch: pytest.MonkeyPatch, tty: bool, **env: str) -> str:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    out = Stream()
    configure_logging(TelemetrySettings(log_format="console"), stream=out)
    get_logger("ponix.test").warning("nats disconnected", url="nats://h:4222")
    return out.getvalue()


ANSI = "\x1b["


@pytest.mark.usefixtures("restore_logging")
def test_console_logs_are_coloured_on_a_tty_unless_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ANSI in _console_line(monkeypatch, tty=True)
    plain = _console_line(monkeypatch, tty=True, NO_COLOR="1")
    assert ANSI not in plain
    assert "nats disconnected" in plain
    assert ANSI not in _console_line(monkeypatch, tty=True, NO_COLOR="1", FORCE_COLOR="1")


@pytest.mark.usefixtures("restore_logging")
def test_force_color_colours_console_logs_off_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ANSI not in _console_line(monkeypatch, tty=False)
    assert ANSI in _console_line(monkeypatch, tty=False, FORCE_COLOR="1")


@pytest.mark.usefixtures("restore_logging")
def test_log_level_filters_lower_levels() -> None:
    out = io.StringIO()
    configure_logging(TelemetrySettings(log_level="warning", log_format="json"), stream=out)
    get_logger("ponix.test").info("not shown")
    get_logger("ponix.test").warning("shown")
    events = [json.loads(line)["message"] for line in out.getvalue().splitlines()]
    assert events == ["shown"]


async def test_readyz_follows_the_checks_and_metrics_are_served() -> None:
    state = {"clickhouse": True}

    async def clickhouse_up() -> bool:
        return state["clickhouse"]

    server = HealthServer("127.0.0.1", 0, check_ttl=0.0)
    server.add_check("clickhouse", clickhouse_up)
    await server.start()
    base = f"http://127.0.0.1:{server.bound_port}"
    metrics.ENVELOPES_ACKED.labels("ENVELOPES", "ingester").inc(0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
                assert (await resp.json())["checks"] == {"clickhouse": True}
            state["clickhouse"] = False
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["checks"] == {"clickhouse": False}
            async with http.get(f"{base}/metrics") as resp:
                body = await resp.text()
                assert "ponix_envelopes_acked_total" in body
    finally:
        await server.stop()


def test_public_api_is_pinned() -> None:
    assert ponix_telemetry.__all__ == (
        "HealthServer",
        "ListenError",
        "PortInUseError",
        "ReadinessCheck",
        "TelemetryError",
        "configure_logging",
        "get_logger",
        "metrics",
    )


async def test_a_taken_port_is_a_typed_one_line_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = HealthServer("127.0.0.1", port)
        with pytest.raises(PortInUseError) as caught:
            await server.start()

    error = caught.value
    assert isinstance(error, ListenError)
    assert isinstance(error, TelemetryError)
    assert isinstance(error, OSError)
    assert error.errno == errno.EADDRINUSE
    assert (error.code, error.host, error.port) == ("telemetry.port_in_use", "127.0.0.1", port)
    assert user_error_line(error) == (
        f"telemetry.port_in_use: cannot serve /metrics and health on 127.0.0.1:{port}: "
        "the port is in use; set HTTP_PORT to a free port (0 picks one)"
    )
    await server.stop()  # idempotent after a failed start
