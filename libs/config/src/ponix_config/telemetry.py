"""Logging and the HTTP endpoint for metrics and health (``LOG_*``, ``HTTP_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from ponix_config.base import PonixSettings

# Ponix RS (and Rust's tracing) spell two levels otherwise; DEBUG is our lowest.
_LEVEL_ALIASES = {"warn": "warning", "trace": "debug", "critical": "error", "fatal": "error"}


class TelemetrySettings(PonixSettings):
    """Log level/format and where ``/metrics``, ``/healthz`` and ``/readyz`` are served."""

    model_config = SettingsConfigDict(env_prefix="")

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info",
        description="LOG_LEVEL: the lowest level written; warn and trace (Ponix RS) are read as "
        "warning and debug.",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="LOG_FORMAT: auto is readable on a TTY, JSON otherwise."
    )
    http_host: str = Field(
        "127.0.0.1",
        description="HTTP_HOST for /metrics and health: loopback only by default; the images "
        "set 0.0.0.0.",
    )
    http_port: int = Field(
        9464, ge=0, le=65535, description="HTTP_PORT for /metrics and health; 0 picks a free port."
    )
    http_enabled: bool = Field(True, description="HTTP_ENABLED: serve /metrics and health.")
    no_color: str | None = Field(
        None, description="NO_COLOR: any non-empty value turns colours off (no-color.org)."
    )
    force_color: str | None = Field(
        None,
        description="FORCE_COLOR: any non-empty value colours console logs even off a TTY; "
        "NO_COLOR wins.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _accept_aliases(cls, value: object) -> object:
        if isinstance(value, str):
            level = value.strip().lower()
            return _LEVEL_ALIASES.get(level, level)
        return value

    def colors(self, *, tty: bool) -> bool:
        """Whether console logs are coloured on a stream that is (or is not) a TTY."""
        if self.no_color:
            return False
        return bool(self.force_color) or tty
