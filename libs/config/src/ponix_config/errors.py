"""The config lib's errors: one root, one subclass per way a value can be wrong."""

from __future__ import annotations


class ConfigError(Exception):
    """Root of every configuration error; ``code`` is stable, ``str()`` is one line."""

    code = "config.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidSettingError(ConfigError):
    """An environment variable (or .env entry) holds a value that does not validate."""

    code = "config.invalid"

    def __init__(self, variable: str, reason: str, *, value: str | None = None) -> None:
        shown = f"={value!r}" if value is not None else ""
        super().__init__(f"{variable}{shown}: {reason}")
        self.variable = variable
        self.reason = reason
        self.value = value
