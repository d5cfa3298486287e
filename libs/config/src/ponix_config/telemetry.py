"""Logging and the HTTP endpoint for metrics and health (``LOG_*``, ``HTTP_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ponix_config.base import PonixSettings


class TelemetrySettings(PonixSettings):
    """Log level/format and where ``/metrics``, ``/healthz`` and ``/readyz`` are served."""

    model_config = SettingsConfigDict(env_prefix="")

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="LOG_LEVEL: the lowest level written."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="LOG_FORMAT: auto is readable on a TTY, JSON otherwise."
    )
    http_host: str = Field("0.0.0.0", description="HTTP_HOST for /metrics and health.")  # noqa: S104
    http_port: int = Field(
        9464, ge=0, le=65535, description="HTTP_PORT for /metrics and health; 0 picks a free port."
    )
    http_enabled: bool = Field(True, description="HTTP_ENABLED: serve /metrics and health.")
