"""A service's command line and first steps: ``--help``, ``--version``, then logging.

Arguments are parsed before anything else happens, so ``ponix-ingester --help`` loads no setting
and waits for no server. Settings come from the environment only; the command line takes no
other option.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

from ponix_config import (
    NoticeKind,
    PonixSettings,
    TelemetrySettings,
    environment_notices,
    load_settings,
)
from ponix_runner import RunResult, run_main
from ponix_telemetry import configure_logging, get_logger, metrics

__all__ = ("USAGE_ERROR", "ServiceCommand")

USAGE_ERROR = 2
"""The exit code of a command line the service does not take (as for any argparse tool)."""

_SHARED_VARIABLES = (
    "LOG_LEVEL, LOG_FORMAT (auto, json, console), NO_COLOR, FORCE_COLOR;\n"
    "HTTP_HOST (127.0.0.1), HTTP_PORT (9464), HTTP_ENABLED for /metrics, /healthz, /readyz."
)

log = get_logger(__name__)


class _OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage mistake as one ``error:`` line rather than the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"error: usage: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True, slots=True)
class ServiceCommand:
    """One service console script (``ponix-ingester``, ...): its name, what it does, and which
    variables configure it."""

    prog: str
    """The console script, also its distribution's name and the ``service`` field of its logs."""
    summary: str
    variables: str
    """The variable families it reads, for ``--help``: ``NATS_*, CLICKHOUSE_*, ...``."""

    @property
    def version(self) -> str:
        try:
            return version(self.prog)
        except PackageNotFoundError:
            return "unknown"

    def parse(self, argv: Sequence[str] | None = None) -> None:
        """Handle ``--help`` and ``--version`` (print, exit 0) and any other argument (one line,
        exit 2). Returns when there is nothing to handle."""
        parser = _OneLineParser(
            prog=self.prog,
            description=self.summary,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=(
                "configuration: environment variables, and a .env file in the working directory\n"
                f"(README, Configuration): {self.variables};\n{_SHARED_VARIABLES}\n"
                "The seed's PONIX_-prefixed names and Ponix RS's variables are accepted too.\n\n"
                "SIGTERM or Ctrl-C stops it cleanly (exit 0); a second Ctrl-C forces (130)."
            ),
        )
        parser.add_argument("--version", action="version", version=f"{self.prog} {self.version}")
        parser.parse_args(sys.argv[1:] if argv is None else argv)

    def run(
        self,
        main: Callable[[], Coroutine[Any, Any, RunResult]],
        argv: Sequence[str] | None = None,
    ) -> NoReturn:
        """The whole of a console script's ``main()``: parse, then ``run_main(main)``."""
        self.parse(argv)
        raise SystemExit(run_main(main))

    def start_logging(self, settings: Iterable[type[PonixSettings]] = ()) -> TelemetrySettings:
        """Load the log and HTTP settings, log as this service (and say so in
        ``ponix_build_info``), and say which ``PONIX_`` variables were mapped from Ponix RS, have
        no effect, or are unknown."""
        telemetry = load_settings(TelemetrySettings)
        configure_logging(telemetry, service=self.prog, version=self.version)
        metrics.set_build_info(self.prog, self.version)
        for notice in environment_notices([TelemetrySettings, *settings]):
            if notice.kind is NoticeKind.MAPPED:
                log.info("ponix rs variable mapped", variable=notice.variable, to=notice.detail)
            elif notice.kind is NoticeKind.IGNORED:
                log.warning(
                    "ponix rs variable has no effect",
                    variable=notice.variable,
                    reason=notice.detail,
                )
            else:
                log.warning(
                    "unknown variable ignored", variable=notice.variable, reason=notice.detail
                )
        return telemetry
