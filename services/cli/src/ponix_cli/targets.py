"""Which NATS and ClickHouse a verb talks to, and where that choice came from.

First match wins, per URL:

1. the ``--nats-url`` / ``--clickhouse-url`` flag;
2. the environment (``NATS_URL``, or the seed's ``PONIX_NATS_URL``; same for ClickHouse);
3. a ``.env`` file in the working directory (read by pydantic-settings);
4. ``<data-dir>/env`` written by a running ``ponix dev`` (``.ponix/env`` by default);
5. the defaults, ``nats://127.0.0.1:4222`` and ``clickhouse://127.0.0.1:9000``.

Flags and the dev file are applied by setting the variable in this process's environment, so
everything downstream (``load_settings``, the services) reads one source of truth.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ponix_cli.envfile import env_file, parse_env, read_env_file

Origin = Literal["flag", "environment", ".env", "dev", "default"]

NATS_URL: Final = "NATS_URL"
CLICKHOUSE_URL: Final = "CLICKHOUSE_URL"
URL_VARIABLES: Final = (NATS_URL, CLICKHOUSE_URL)
_LEGACY_PREFIX: Final = "PONIX_"


@dataclass(frozen=True, slots=True)
class UrlOrigin:
    """Where one URL variable's value came from (``path`` for the two file origins)."""

    variable: str
    origin: Origin
    path: Path | None = None

    def hint(self) -> str | None:
        """What to tell a user whose server at this URL did not answer."""
        if self.origin == "dev":
            return f"{self.variable} from {self.path}: is `ponix dev` still running?"
        if self.origin == "default":
            return f"{self.variable} is not set: start a local stack with `ponix dev`"
        return None


_origins: dict[str, UrlOrigin] = {}


def use_targets(
    *,
    nats_url: str | None = None,
    clickhouse_url: str | None = None,
    environ: MutableMapping[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, UrlOrigin]:
    """Resolve both URLs (see the module docstring) into ``environ``; returns their origins."""
    env = os.environ if environ is None else environ
    here = cwd if cwd is not None else Path.cwd()
    dotenv = _read_dotenv(here / ".env")
    dev_path = env_file()
    if not dev_path.is_absolute():
        dev_path = here / dev_path
    dev = read_env_file(dev_path)
    for variable, flag in ((NATS_URL, nats_url), (CLICKHOUSE_URL, clickhouse_url)):
        origin: UrlOrigin
        if flag:
            env[variable] = flag
            origin = UrlOrigin(variable, "flag")
        elif _is_set(env, variable):
            origin = UrlOrigin(variable, "environment")
        elif _is_set(dotenv, variable):
            origin = UrlOrigin(variable, ".env", here / ".env")
        elif dev.get(variable):
            env[variable] = dev[variable]
            origin = UrlOrigin(variable, "dev", dev_path)
        else:
            origin = UrlOrigin(variable, "default")
        _origins[variable] = origin
    return dict(_origins)


def hint_for(code: str) -> str | None:
    """A hint for an unreachable server, when its URL came from the dev file or the default."""
    if code.startswith("nats.unreachable"):
        origin = _origins.get(NATS_URL)
    elif code.startswith("clickhouse.unreachable"):
        origin = _origins.get(CLICKHOUSE_URL)
    else:
        return None
    return origin.hint() if origin is not None else None


def _is_set(env: MutableMapping[str, str] | dict[str, str], variable: str) -> bool:
    wanted = {variable.upper(), (_LEGACY_PREFIX + variable).upper()}
    return any(key.upper() in wanted and value.strip() for key, value in env.items())


def _read_dotenv(path: Path) -> dict[str, str]:
    try:
        return parse_env(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}
