"""How long-running library code reports progress. The CLI decides how to show it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def step(self, name: str, total: int | None = None) -> None:
        """A new step begins (``total`` units of work, when known)."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the current step are done."""

    def note(self, text: str) -> None:
        """A line worth showing once."""


class NoProgress:
    def step(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass
