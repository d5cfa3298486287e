"""Shared pydantic-settings pieces for every Ponix service.

Variables follow one scheme (``NATS_*``, ``CLICKHOUSE_*``, ``LOG_*``, ``HTTP_*``); the seed's
``PONIX_``-prefixed names are accepted too, and Ponix RS's own spellings are mapped
(``ponix_config.seed``). A bad value raises a one-line ``ConfigError``.
"""

from ponix_config.base import PonixSettings, load_settings
from ponix_config.clickhouse import ClickHouseSettings
from ponix_config.errors import ConfigError, InvalidSettingError
from ponix_config.nats import NatsSettings
from ponix_config.seed import (
    SEED_IGNORED,
    EnvironmentNotice,
    NoticeKind,
    SeedVariable,
    environment_notices,
)
from ponix_config.telemetry import TelemetrySettings
from ponix_config.urls import SplitUrl, split_credentials

__all__ = (
    "SEED_IGNORED",
    "ClickHouseSettings",
    "ConfigError",
    "EnvironmentNotice",
    "InvalidSettingError",
    "NatsSettings",
    "NoticeKind",
    "PonixSettings",
    "SeedVariable",
    "SplitUrl",
    "TelemetrySettings",
    "environment_notices",
    "load_settings",
    "split_credentials",
)
