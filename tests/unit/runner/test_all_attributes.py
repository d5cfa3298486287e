"""The public API is exactly ``ponix_runner.__all__``, and every module declares its own."""

from __future__ import annotations

import importlib
import pkgutil
from inspect import isclass
from types import FunctionType

import ponix_runner

PUBLIC = (
    "AlreadyStartedError",
    "Backoff",
    "CloserFn",
    "CloserOutcome",
    "CloserStatus",
    "Deadline",
    "DuplicateNameError",
    "ExitCode",
    "ProcessFailure",
    "ProcessFn",
    "RunResult",
    "Runner",
    "RunnerError",
    "ShutdownReason",
    "ShutdownSignal",
    "ShutdownSource",
    "ShutdownToken",
    "SignalsUnavailableError",
    "run_main",
    "user_error_line",
    "wait_until_available",
)


def test_the_package_exports_exactly_its_public_api() -> None:
    assert isinstance(ponix_runner.__all__, tuple)
    assert ponix_runner.__all__ == PUBLIC
    assert all(hasattr(ponix_runner, name) for name in PUBLIC)


def test_every_module_lists_what_it_defines_in_a_tuple_all() -> None:
    for info in pkgutil.iter_modules(ponix_runner.__path__, "ponix_runner."):
        module = importlib.import_module(info.name)
        declared = getattr(module, "__all__", None)
        assert isinstance(declared, tuple), f"{info.name}.__all__ must be a tuple"
        defined = {
            attr
            for attr, value in vars(module).items()
            if not attr.startswith("_")
            and (isinstance(value, FunctionType) or isclass(value))
            and value.__module__ == info.name
        }
        assert defined <= set(declared), f"{info.name} leaves out {defined - set(declared)}"
        assert set(declared) <= set(PUBLIC), f"{info.name} declares names the package hides"
