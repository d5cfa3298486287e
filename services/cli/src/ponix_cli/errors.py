"""The CLI's own errors, and the one line every user mistake is reported as.

Every error a user can cause carries a stable string ``code`` (the libs' errors do, and so does
:class:`CliError`), so ``main`` prints ``error: <code>: <reason>`` and exits 1 instead of a
traceback. Anything without a ``code`` is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Final

from ponix_runner import user_error_line

USER_ERROR: Final = 1
INTERRUPTED: Final = 130


class CliError(Exception):
    """A mistake the user can fix: a bad file, a refused confirmation, a missing stream."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = " ".join(message.split())

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def error_line(exc: BaseException, hint: str | None = None) -> str | None:
    """``error: <code>: <reason>[ (<hint>)]`` for a user error, ``None`` for a bug."""
    line = user_error_line(exc)
    if line is None:
        return None
    return f"error: {line} ({hint})" if hint else f"error: {line}"
