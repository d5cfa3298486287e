"""The settings base every Ponix service uses, and the loader that turns errors into one line."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ponix_config.errors import ConfigError, InvalidSettingError

S = TypeVar("S", bound="PonixSettings")

# The seed's code read PONIX_-prefixed names (PONIX_NATS_URL, ...) while its docs said NATS_URL.
# We document the unprefixed scheme and also accept the seed's, at lower priority.
LEGACY_PREFIX = "PONIX_"


class PonixSettings(BaseSettings):
    """Environment variables, then a ``.env`` file; ``PONIX_``-prefixed twins are accepted too."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
        env_ignore_empty=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        legacy = LEGACY_PREFIX + str(settings_cls.model_config.get("env_prefix", ""))
        return (
            init_settings,
            env_settings,
            EnvSettingsSource(settings_cls, env_prefix=legacy),
            dotenv_settings,
            DotEnvSettingsSource(settings_cls, env_prefix=legacy),
            file_secret_settings,
        )

    @classmethod
    def env_name(cls, field: str) -> str:
        """The documented environment variable for ``field``."""
        return (str(cls.model_config.get("env_prefix", "")) + field).upper()


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build ``cls`` from the environment; a bad value raises a one-line ``ConfigError``."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise _first_error(cls, exc) from None


def _first_error(cls: type[PonixSettings], exc: ValidationError) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    variable = cls.env_name(field) if field else cls.__name__
    reason = str(err["msg"])
    reason = reason[0].lower() + reason[1:] if reason else "invalid value"
    info = cls.model_fields.get(field)
    secret = info is not None and "SecretStr" in repr(info.annotation)
    raw = err.get("input")
    value = None if secret or isinstance(raw, SecretStr) or not isinstance(raw, str) else raw
    return InvalidSettingError(variable, reason, value=value)
