"""Progress on the terminal (rich), or plain lines when output is not a terminal."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class TerminalProgress:
    """Implements ``isolate.progress.Progress``. Use as a context manager."""

    def __init__(self, *, quiet: bool = False, color: bool = False):
        self._console = Console(stderr=True, no_color=not color)
        self._quiet = quiet
        self._live = sys.stderr.isatty() and not quiet
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._name = ""
        self._start = 0.0

    def __enter__(self) -> TerminalProgress:
        if self._live:
            self._bar = Progress(TextColumn("{task.description:<16}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=self._console, transient=False)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def _finish(self) -> None:
        if self._name and not self._live and not self._quiet:
            self._console.print(f"  {self._name}: {time.monotonic() - self._start:.1f} s")
        if self._bar is not None and self._task is not None:
            task = self._bar.tasks[-1]
            if task.total is None:
                self._bar.update(self._task, total=1, completed=1)
            else:
                self._bar.update(self._task, completed=task.total)

    def step(self, name: str, total: int | None = None) -> None:
        self._finish()
        self._name, self._start = name, time.monotonic()
        if self._bar is not None:
            self._task = self._bar.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def note(self, text: str) -> None:
        if not self._quiet:
            self._console.print(f"  {text}")
