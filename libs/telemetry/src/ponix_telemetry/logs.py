"""Structured logs: JSON off a TTY (or with LOG_FORMAT=json), readable on a TTY.

stdlib ``logging`` records (nats-py, the runner, ...) go through the same renderer, so every
line carries fields rather than formatted strings.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from ponix_config import TelemetrySettings

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="at"),
]


def configure_logging(settings: TelemetrySettings, *, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one renderer at ``settings.log_level``."""
    out = stream if stream is not None else sys.stderr
    as_json = settings.log_format == "json" or (settings.log_format == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if as_json else _identity,
                renderer,
            ],
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
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _identity(_logger: Any, _name: str, event: Any) -> Any:
    return event


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; call it with a lowercase event and keyword fields."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
