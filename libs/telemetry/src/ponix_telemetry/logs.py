"""Structured logs: JSON off a TTY (or with LOG_FORMAT=json), readable on a TTY.

JSON lines carry the keys log shippers expect (``timestamp``, ``level``, ``message``), plus the
``service`` and ``version`` of the process on every line. stdlib ``logging`` records (nats-py,
the runner, ...) go through the same renderer, so every line carries fields rather than
formatted strings. Console colours follow ``NO_COLOR`` and ``FORCE_COLOR``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog

from ponix_config import TelemetrySettings

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]


def configure_logging(
    settings: TelemetrySettings,
    *,
    stream: TextIO | None = None,
    service: str | None = None,
    version: str | None = None,
) -> None:
    """Route structlog and stdlib logging through one renderer at ``settings.log_level``.

    ``service`` and ``version``, when given, are on every line.
    """
    out = stream if stream is not None else sys.stderr
    tty = out.isatty()
    as_json = settings.log_format == "json" or (settings.log_format == "auto" and not tty)
    static = {k: v for k, v in (("service", service), ("version", version)) if v is not None}
    shared = [*_SHARED, _Static(static)] if static else _SHARED
    final: list[Any] = (
        [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ]
        if as_json
        else [structlog.dev.ConsoleRenderer(colors=settings.colors(tty=tty))]
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # clickhouse-driver logs a full traceback for every failed reconnect; the writer already
    # says, once per outage, that ClickHouse is failing and why.
    logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class _Static:
    """Adds fixed fields (service, version) to every event that does not carry its own."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._fields = dict(fields)

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in self._fields.items():
            event.setdefault(key, value)
        return event


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; call it with a lowercase event and keyword fields."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
