"""Ponix RS (the seed) variables: mapped where they have an equivalent, reported where not.

Ponix RS read every setting as ``PONIX_<NAME>``. Most of those are our names with the prefix and
work as they are (``PONIX_NATS_URL``, ``PONIX_LOG_LEVEL``, ...). The ones RS spelled otherwise
are mapped here (:class:`SeedVariable`), at lower priority than our own names. The ones with no
equivalent are accepted and reported (:data:`SEED_IGNORED`), and so is any other ``PONIX_``
name nothing reads (:func:`environment_notices`), rather than being dropped silently.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from dotenv import dotenv_values
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

if TYPE_CHECKING:
    from ponix_config.base import PonixSettings

__all__ = (
    "SEED_IGNORED",
    "EnvironmentNotice",
    "NoticeKind",
    "SeedVariable",
    "environment_notices",
)

LEGACY_PREFIX: Final = "PONIX_"


def _identity(raw: str) -> object:
    return raw


@dataclass(frozen=True, slots=True)
class SeedVariable:
    """An RS variable that maps onto ``field`` of a settings class, through ``convert``."""

    variable: str
    field: str
    convert: Callable[[str], object] = _identity
    replaces_when: Callable[[str], bool] | None = None
    """A test on the value our own name holds: when it passes, this variable still wins (RS's
    HTTP ``PONIX_CLICKHOUSE_URL`` gives way to its ``PONIX_CLICKHOUSE_NATIVE_URL``)."""


SEED_IGNORED: Final[Mapping[str, str]] = {
    "PONIX_MESSAGE": "RS logged it with every envelope; the producer logs structured lines",
    "PONIX_CLICKHOUSE_MIGRATIONS_DIR": (
        "RS's goose migrations do not apply; ours ship with ponix-clickhouse "
        "(CLICKHOUSE_MIGRATIONS_DIR names a directory of ours)"
    ),
    "PONIX_CLICKHOUSE_GOOSE_BINARY_PATH": "migrations run in process; no goose binary is needed",
}
"""RS variables with no equivalent here, and why: accepted, with a warning at start-up."""

_IGNORED_PREFIXES: Final[Mapping[str, str]] = {
    "PONIX_POSTGRES_": "Ponix uses no PostgreSQL",
}

# PONIX_ names that Ponix's own tools read outside the settings classes (`ponix dev`, the test
# suite): never reported as unknown.
_TOOL_NAMES: Final = frozenset(
    {"PONIX_DATA_DIR", "PONIX_DEV_PID", "PONIX_NATS_SERVER_BINARY", "PONIX_CLICKHOUSE_BINARY"}
)
_TOOL_PREFIXES: Final = ("PONIX_TEST_", "PONIX_FAULTS_", "PONIX_FUZZ_", "PONIX_ATHERIS_")


class NoticeKind(enum.StrEnum):
    """What start-up says about a ``PONIX_`` variable."""

    MAPPED = "mapped"
    """An RS name, read as one of ours."""
    IGNORED = "ignored"
    """An RS name with no equivalent here."""
    UNKNOWN = "unknown"
    """A name nothing reads (a typo, or a setting of another service)."""


@dataclass(frozen=True, slots=True)
class EnvironmentNotice:
    """One ``PONIX_`` variable worth a line at start-up."""

    variable: str
    kind: NoticeKind
    detail: str
    """For ``MAPPED`` the variable it stands for, otherwise the reason it has no effect."""


def read_environment(env_file: object) -> dict[str, str]:
    """The process environment over the ``.env`` file(s), names upper-cased, blanks dropped."""
    merged: dict[str, str] = {}
    files = env_file if isinstance(env_file, list | tuple) else [env_file]
    for file in files:
        if isinstance(file, str | Path) and Path(file).is_file():
            values = dotenv_values(file, encoding="utf-8")
            merged.update({k.upper(): v for k, v in values.items() if v})
    merged.update({k.upper(): v for k, v in os.environ.items() if v})
    return merged


class SeedVariablesSource(PydanticBaseSettingsSource):
    """The settings source for ``settings_cls.seed_variables``.

    A value is taken only when the field's own names (documented, or ``PONIX_``-prefixed) are
    unset, so ours always win.
    """

    def __init__(self, settings_cls: type[PonixSettings]) -> None:
        super().__init__(settings_cls)
        self._cls = settings_cls

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        env = read_environment(self._cls.model_config.get("env_file"))
        values: dict[str, Any] = {}
        for seed in self._cls.seed_variables:
            raw = env.get(seed.variable)
            if raw is None or seed.field in values:
                continue
            ours = [env[name] for name in self._cls.env_names(seed.field) if name in env]
            if ours and not (seed.replaces_when is not None and seed.replaces_when(ours[0])):
                continue
            values[seed.field] = seed.convert(raw)
        return values


def seed_variable_for(cls: type[PonixSettings], field: str) -> str | None:
    """The RS variable that set ``field``, if one did (for naming it in an error)."""
    env = read_environment(cls.model_config.get("env_file"))
    if any(name in env for name in cls.env_names(field)):
        return None
    for seed in cls.seed_variables:
        if seed.field == field and seed.variable in env:
            return seed.variable
    return None


def environment_notices(
    settings: Iterable[type[PonixSettings]],
    environ: Mapping[str, str] | None = None,
) -> tuple[EnvironmentNotice, ...]:
    """What to say at start-up about ``PONIX_`` variables: RS names mapped, RS names with no
    equivalent, and names no settings class reads.

    ``settings`` are the classes the service loads; any other ``PonixSettings`` class already
    imported counts as reading its names too.
    """
    from ponix_config.base import PonixSettings

    env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items() if v}
    classes = {*settings, *_subclasses(PonixSettings)}
    known: set[str] = set(_TOOL_NAMES)
    mapped: dict[str, set[str]] = {}
    for cls in classes:
        for field in cls.model_fields:
            known.update(cls.env_names(field))
        for seed in cls.seed_variables:
            mapped.setdefault(seed.variable, set()).add(cls.env_name(seed.field))
    notices: list[EnvironmentNotice] = []
    for name in sorted(env):
        if not name.startswith(LEGACY_PREFIX) or name.startswith(_TOOL_PREFIXES):
            continue
        if name in mapped:
            notices.append(
                EnvironmentNotice(name, NoticeKind.MAPPED, ", ".join(sorted(mapped[name])))
            )
        elif name in SEED_IGNORED:
            notices.append(EnvironmentNotice(name, NoticeKind.IGNORED, SEED_IGNORED[name]))
        elif prefix := next((p for p in _IGNORED_PREFIXES if name.startswith(p)), None):
            notices.append(EnvironmentNotice(name, NoticeKind.IGNORED, _IGNORED_PREFIXES[prefix]))
        elif name not in known:
            notices.append(
                EnvironmentNotice(name, NoticeKind.UNKNOWN, "no setting of this service reads it")
            )
    return tuple(notices)


def _subclasses(cls: type[BaseSettings]) -> set[type[PonixSettings]]:
    found: set[type[PonixSettings]] = set()
    for sub in cls.__subclasses__():
        found.add(sub)  # type: ignore[arg-type]
        found |= _subclasses(sub)
    return found
