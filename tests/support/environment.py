"""One test's pipeline: its names (stream, subjects, consumer, DLQ, database) and the environment
variables of its services, read back as settings objects for the test process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, TypeVar

from pydantic_settings import BaseSettings

from ponix_config import ClickHouseSettings, NatsSettings
from ponix_ingester import IngesterSettings

__all__ = ("Pipeline",)

# Variables a child must not inherit from the shell that runs pytest: the pipeline's env is
# the whole truth (a NATS_URL exported for `ponix run` must never reach a test's service).
_STRIPPED_PREFIXES: Final = (
    "NATS_",
    "CLICKHOUSE_",
    "INGESTER_",
    "PRODUCER_",
    "PONIX_",
    "LOG_",
    "HTTP_",
)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The environment of one test's pipeline: every name is the test's own.

    ``env`` maps documented variable names (``NATS_STREAM``, ``CLICKHOUSE_BATCH_MAX_ROWS``,
    ``INGESTER_MAX_ENVELOPE_BYTES``, ...) to values. Services get exactly this (plus per-process
    ``HTTP_*``); the test process reads it back as settings objects (``.nats``, ...).
    """

    env: Mapping[str, str]

    @classmethod
    def isolated(
        cls,
        *,
        nats_url: str,
        clickhouse_url: str,
        unique: str,
        database: str | None = None,
        **env: object,
    ) -> Pipeline:
        """Names derived from ``unique`` (the conftest fixture), so tests can share servers.

        ``database`` defaults to ``test_<unique>`` (the ingester's migration creates it; pass
        the ``clickhouse_db`` fixture to have it dropped after the test). ``env`` overrides or
        adds variables, e.g. ``NATS_ACK_WAIT=2``.
        """
        base: dict[str, object] = {
            "NATS_URL": nats_url,
            "NATS_STREAM": f"S_{unique}",
            "NATS_SUBJECT_PREFIX": f"env_{unique}",
            "NATS_CONSUMER": f"c_{unique}",
            "NATS_DLQ_STREAM": f"S_{unique}_DLQ",
            "NATS_DLQ_SUBJECT": f"dlq_{unique}",
            # Test streams must not outlive a crashed run by a week.
            "NATS_MAX_AGE": 3600,
            "NATS_DLQ_MAX_AGE": 3600,
            "CLICKHOUSE_URL": clickhouse_url,
            "CLICKHOUSE_DATABASE": database or f"test_{unique}",
            # A service that cannot reach its servers fails the test in seconds, not minutes.
            "INGESTER_STARTUP_DEADLINE": 20,
            "PRODUCER_STARTUP_DEADLINE": 20,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
        }
        base.update(env)
        return cls(_stringify(base))

    def with_env(self, **env: object) -> Pipeline:
        """A copy with variables added or replaced; a value of ``None`` removes one."""
        merged = dict(self.env)
        for name, value in env.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = _text(value)
        return replace(self, env=merged)

    @property
    def nats(self) -> NatsSettings:
        return _settings(NatsSettings, self.env)

    @property
    def clickhouse(self) -> ClickHouseSettings:
        return _settings(ClickHouseSettings, self.env)

    @property
    def ingester(self) -> IngesterSettings:
        return _settings(IngesterSettings, self.env)

    @property
    def database(self) -> str:
        return self.clickhouse.database

    @property
    def table(self) -> str:
        """``database.table``, backquoted, for ad-hoc SQL."""
        ch = self.clickhouse
        return f"`{ch.database}`.`{ch.table}`"

    def process_env(self, **extra: object) -> dict[str, str]:
        """The complete environment of a child service: this process's, minus every Ponix
        variable, plus ``env``, plus ``extra``."""
        child = {
            k: v for k, v in os.environ.items() if not k.upper().startswith(_STRIPPED_PREFIXES)
        }
        child.update(self.env)
        child.update(_stringify(extra))
        child["PYTHONUNBUFFERED"] = "1"
        return child


S = TypeVar("S", bound=BaseSettings)


def _settings(cls: type[S], env: Mapping[str, str]) -> S:
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    fields = set(cls.model_fields)
    values = {
        name[len(prefix) :].lower(): value
        for name, value in env.items()
        if name.upper().startswith(prefix) and name[len(prefix) :].lower() in fields
    }
    return cls(**values)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stringify(values: Mapping[str, object]) -> dict[str, str]:
    return {name: _text(value) for name, value in values.items() if value is not None}
