"""Run a matrix: plan, observe cells in parallel, compare with the baseline.

The bundle is unpacked once, before any cell (``isolate.matrix.shared``); the cells run
on ``jobs`` workers, costliest first by what they cost here last time
(``isolate.matrix.costs``); what each costs now is recorded for the next run. The
results keep the plan's order, whatever order the cells ran in.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from isolate import __version__
from isolate.cache import cache_root
from isolate.errors import InputError
from isolate.matrix import costs
from isolate.matrix.execute import BundleInput, CellRunner
from isolate.matrix.plan import PlannedCell, plan
from isolate.matrix.shared import SharedCopy
from isolate.model.profiles import HostProfile
from isolate.model.results import Cell, Observation, Results, with_equivalence
from isolate.proc import Runner
from isolate.progress import NoProgress, Progress


def cost_book_path() -> Path:
    return cache_root() / "matrix" / "costs.json"


def run_matrix(bundle: BundleInput, hosts: Sequence[HostProfile], *, runner: Runner,
               jobs: int = 2, shard: tuple[int, int] | None = None,
               timeout: float | None = None, baseline: str | None = None,
               work_dir: Path | None = None, keep: bool = False,
               progress: Progress | None = None, cost_book: Path | None = None) -> Results:
    progress = progress or NoProgress()
    if baseline is not None and baseline not in {h.id for h in hosts}:
        raise InputError(f"--baseline {baseline}: not one of the hosts of this matrix",
                         hint=f"use one of {', '.join(h.id for h in hosts)}")
    cells = plan(bundle.manifest, hosts, shard)
    book_path = cost_book or cost_book_path()
    runtime = bundle.manifest.runtime
    order = costs.longest_first(cells, costs.load(book_path), runtime)
    work = Path(tempfile.mkdtemp(prefix="isolate-matrix-", dir=work_dir))
    try:
        progress.step("unpacking the bundle once for every cell")
        cell_runner = CellRunner(runner=runner, bundle=bundle, work=work,
                                 timeout=timeout or bundle.manifest.test_timeout)
        shared = cell_runner.shared  # before any cell: a bad archive is an error of the run
        progress.step("cells", len(cells))
        measured: dict[str, float] = {}

        def one(c: PlannedCell) -> Cell:
            start = time.monotonic()
            result = cell_runner.run(c)
            if result.observed.status != "not-run":
                measured[c.host.id] = round(time.monotonic() - start, 1)
            progress.advance()
            progress.note(f"{result.host}: {result.observed.status}"
                          f" ({sum(result.observed.counts.values())} tests)")
            return result

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            done = dict(zip((c.host.id for c in order), pool.map(one, order), strict=True))
        observed = _untrusted_if_written(shared, [done[c.host.id] for c in cells])
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    costs.record(book_path, runtime, measured)
    base, compared = with_equivalence(observed, baseline)
    return Results(bundle=bundle.info(), cells=compared, baseline=base, shard=shard,
                   tool_version=__version__,
                   required_hosts=bundle.manifest.contract.required_hosts)


def _untrusted_if_written(shared: SharedCopy, cells: list[Cell]) -> list[Cell]:
    """``cells``, with every observed local cell turned into an error if the shared copy
    of the runtime or of its test overlay changed while they ran: local cells have no
    sandbox to keep it read-only (their private copies' files are hard links to it), and
    a cell must not see what another one wrote."""
    local = {c.host for c in cells if c.executor == "local" and c.observed.status != "not-run"}
    if not local:
        return cells
    changed = shared.changes()
    if not changed:
        return cells
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    reason = (f"a local cell wrote into the bundle copy that every cell runs ({shown}, "
              "below the matrix's shared directory); "
              "local cells have no sandbox to keep it read-only, so their results cannot "
              "be told apart: find what writes below the runtime's prefix")
    return [replace(c, observed=Observation(status="error", reason=reason,
                                            output_tail=c.observed.output_tail,
                                            seconds=c.observed.seconds))
            if c.host in local else c for c in cells]
