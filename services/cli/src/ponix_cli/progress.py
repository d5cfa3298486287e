"""A progress bar on stderr for long verbs (publish, audit), drawn only on a terminal."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TimeRemainingColumn,
)

from ponix_cli import console


class Ticker:
    """``with Ticker(total, "publishing") as ticker: ticker.update(done)``.

    Off a terminal, or without a known total, it draws nothing and ``note`` goes to stderr.
    Callers update it every few hundred items, never per item: redrawing costs more than a
    publish.
    """

    def __init__(self, total: int | None, label: str) -> None:
        self._progress: Progress | None = None
        self._task = None
        if total and console.stderr_is_tty():
            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                TaskProgressColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console.err(),
                transient=True,
            )
            self._task = self._progress.add_task(label, total=total)

    @property
    def drawing(self) -> bool:
        return self._progress is not None

    def update(self, completed: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=completed)

    def note(self, text: str) -> None:
        """One line on stderr, above the bar when there is one."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            console.warn(text)

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
