"""The settings base every Ponix service uses, and the loader that turns errors into one line."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ponix_config.errors import ConfigError, InvalidSettingError
from ponix_config.seed import (
    LEGACY_PREFIX,
    SEED_IGNORED,
    SeedVariable,
    SeedVariablesSource,
    read_environment,
    seed_variable_for,
)

S = TypeVar("S", bound="PonixSettings")

# The seed's code read PONIX_-prefixed names (PONIX_NATS_URL, ...) while its docs said NATS_URL.
# We document the unprefixed scheme and also accept the seed's, at lower priority; the seed's
# own spellings of some names are mapped by ponix_config.seed.


class PonixSettings(BaseSettings):
    """Environment variables, then a ``.env`` file; ``PONIX_``-prefixed twins are accepted too,
    and so are the Ponix RS names in ``seed_variables``."""

    seed_variables: ClassVar[tuple[SeedVariable, ...]] = ()
    """Ponix RS variables that map onto this class's fields (see ``ponix_config.seed``)."""

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
        assert issubclass(settings_cls, PonixSettings)
        return (
            init_settings,
            env_settings,
            SeedVariablesSource(settings_cls),
            _LegacyEnvSource(settings_cls, env_prefix=legacy),
            dotenv_settings,
            _LegacyDotEnvSource(settings_cls, env_prefix=legacy),
            file_secret_settings,
        )

    @classmethod
    def env_name(cls, field: str) -> str:
        """The documented environment variable for ``field``."""
        return (str(cls.model_config.get("env_prefix", "")) + field).upper()

    @classmethod
    def env_names(cls, field: str) -> tuple[str, str]:
        """The variables that set ``field``: the documented one, then its ``PONIX_`` twin."""
        name = cls.env_name(field)
        return name, LEGACY_PREFIX + name


def _without_seed_ignored(cls: type[BaseSettings], values: dict[str, Any]) -> dict[str, Any]:
    # A PONIX_ twin that Ponix RS used for something else (its goose migrations directory) must
    # not be read as ours.
    assert issubclass(cls, PonixSettings)
    return {k: v for k, v in values.items() if cls.env_names(k)[1] not in SEED_IGNORED}


class _LegacyEnvSource(EnvSettingsSource):
    def __call__(self) -> dict[str, Any]:
        return _without_seed_ignored(self.settings_cls, super().__call__())


class _LegacyDotEnvSource(DotEnvSettingsSource):
    def __call__(self) -> dict[str, Any]:
        return _without_seed_ignored(self.settings_cls, super().__call__())


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build ``cls`` from the environment; a bad value raises a one-line ``ConfigError``."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise _first_error(cls, exc) from None


def _first_error(cls: type[PonixSettings], exc: ValidationError) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    variable = _variable_for(cls, field) if field in cls.model_fields else cls.__name__
    reason = str(err["msg"])
    reason = reason[0].lower() + reason[1:] if reason else "invalid value"
    info = cls.model_fields.get(field)
    secret = info is not None and "SecretStr" in repr(info.annotation)
    raw = err.get("input")
    value = None if secret or isinstance(raw, SecretStr) or not isinstance(raw, str) else raw
    return InvalidSettingError(variable, reason, value=value)


def _variable_for(cls: type[PonixSettings], field: str) -> str:
    """The variable the user set for ``field``: documented, ``PONIX_`` twin, or RS name."""
    documented, twin = cls.env_names(field)
    env = read_environment(cls.model_config.get("env_file"))
    if documented in env:
        return documented
    if twin in env:
        return twin
    return seed_variable_for(cls, field) or documented
