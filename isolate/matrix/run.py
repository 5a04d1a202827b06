"""Run a matrix: plan, observe cells in parallel, compare with the baseline."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from isolate import __version__
from isolate.errors import InputError
from isolate.matrix.execute import BundleInput, CellRunner
from isolate.matrix.plan import PlannedCell, plan
from isolate.model.profiles import HostProfile
from isolate.model.results import Cell, Results, with_equivalence
from isolate.proc import Runner
from isolate.progress import NoProgress, Progress


def run_matrix(bundle: BundleInput, hosts: Sequence[HostProfile], *, runner: Runner,
               jobs: int = 2, shard: tuple[int, int] | None = None,
               timeout: float | None = None, baseline: str | None = None,
               work_dir: Path | None = None, keep: bool = False,
               progress: Progress | None = None) -> Results:
    progress = progress or NoProgress()
    if baseline is not None and baseline not in {h.id for h in hosts}:
        raise InputError(f"--baseline {baseline}: not one of the hosts of this matrix",
                         hint=f"use one of {', '.join(h.id for h in hosts)}")
    cells = plan(bundle.manifest, hosts, shard)
    work = Path(tempfile.mkdtemp(prefix="isolate-matrix-", dir=work_dir))
    try:
        cell_runner = CellRunner(runner=runner, bundle=bundle, work=work,
                                 timeout=timeout or bundle.manifest.test_timeout)
        progress.step("cells", len(cells))

        def one(c: PlannedCell) -> Cell:
            result = cell_runner.run(c)
            progress.advance()
            progress.note(f"{result.host}: {result.observed.status}"
                          f" ({sum(result.observed.counts.values())} tests)")
            return result

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            observed = list(pool.map(one, cells))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    base, compared = with_equivalence(observed, baseline)
    return Results(bundle=bundle.info(), cells=compared, baseline=base, shard=shard,
                   tool_version=__version__,
                   required_hosts=bundle.manifest.contract.required_hosts)
