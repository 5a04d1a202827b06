"""What each cell of a matrix cost the last time it ran here, and the order that follows.

Cells run on a pool of ``jobs`` workers, longest first (LPT): the costliest cells start
at once and the cheap ones fill the gaps at the end, so no core waits on one long cell
that started last. A cell's cost is its wall-clock seconds the last time it was observed
on this machine, read from a small JSON file in the cache, keyed by the runtime's name
and the host profile's id. A cell never measured costs as much as the costliest known
cell of the same runtime (so it starts early rather than late); with nothing known, every
observed cell costs the same and the plan's order stands. A static cell costs nothing.
The file is advice: unreadable or absent, it changes the order, never a result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from isolate.fsutil import write_atomic
from isolate.matrix.plan import PlannedCell

SCHEMA = "isolate.matrix-costs/1"
UNKNOWN = 1.0  # the cost of every observed cell when nothing is known of its runtime


@dataclass(frozen=True, kw_only=True, slots=True)
class CostBook:
    """Seconds per (runtime, host id), as last measured."""

    seconds: Mapping[str, Mapping[str, float]]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostBook:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
        cells = data.get("cells", {})
        return cls(seconds={str(runtime): {str(h): float(s) for h, s in hosts.items()}
                            for runtime, hosts in cells.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA,
                "cells": {r: dict(sorted(h.items())) for r, h in sorted(self.seconds.items())}}

    def cost(self, runtime: str, cell: PlannedCell) -> float:
        if cell.executor == "static":
            return 0.0
        known = self.seconds.get(runtime, {})
        if cell.host.id in known:
            return known[cell.host.id]
        return max(known.values(), default=UNKNOWN)

    def with_measured(self, runtime: str, measured: Mapping[str, float]) -> CostBook:
        merged = {r: dict(h) for r, h in self.seconds.items()}
        merged.setdefault(runtime, {}).update(measured)
        return CostBook(seconds=merged)


def longest_first(cells: Sequence[PlannedCell], book: CostBook, runtime: str) -> list[PlannedCell]:
    """``cells`` in the order to start them: costliest first, ties in the plan's order."""
    order = sorted(range(len(cells)), key=lambda i: (-book.cost(runtime, cells[i]), i))
    return [cells[i] for i in order]


def load(path: Path) -> CostBook:
    """The cost book at ``path``; empty when it is missing or unreadable."""
    try:
        return CostBook.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return CostBook(seconds={})


def record(path: Path, runtime: str, measured: Mapping[str, float]) -> None:
    """Add ``measured`` (host id -> seconds) to the book at ``path``, atomically, under a
    file lock so that concurrent matrices on this machine do not lose each other's."""
    if not measured:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(path) + ".lock"):
        book = load(path).with_measured(runtime, measured)
        write_atomic(path, json.dumps(book.to_dict(), indent=1) + "\n")
