"""isolate matrix BUNDLE --hosts ID[,ID...] [--jobs N] [--shard I/N] [--timeout S] -o RESULTS.json"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App
    from isolate.model.profiles import HostProfile


def register(sub: Any) -> None:
    p = sub.add_parser(
        "matrix", help="run the runtime's tests in the bundle on host profiles",
        description="Run the bundle's own tests (its tests overlay) on each host profile: "
                    "local hosts with this machine's interpreters, root-filesystem hosts in "
                    "a container-like sandbox (debootstrap needs root; without it such cells "
                    "are not run, with the reason). Each cell records the predicted and "
                    "observed verdict and is compared with a baseline cell. Exit 1 when a "
                    "cell is a problem by the rule of `isolate report`.")
    p.add_argument("bundle", type=Path, help="a bundle archive (or directory)")
    p.add_argument("--hosts", required=True, metavar="ID[,ID...]",
                   help="host profiles (see `isolate profiles`); 'all' for every one")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="cells at once (default: one per core this process may use); the "
                        "costliest start first, by what each cost on this machine last time")
    p.add_argument("--shard", metavar="I/N", help="run only shard I of N of the cells")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="per-cell timeout in seconds (default: the runtime profile's)")
    p.add_argument("--baseline", metavar="ID", help="the cell others are compared with "
                   "(default: the first observed cell that passed)")
    p.add_argument("--keep", action="store_true", help="keep the cells' work directories")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="RESULTS.json",
                   help="where to write the results (schema isolate.results/2), the input "
                        "of `isolate report`")
    p.set_defaults(handler=run)


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.cli.progress_view import TerminalProgress
    from isolate.fsutil import ensure_writable_dir, write_atomic
    from isolate.matrix.execute import open_bundle
    from isolate.matrix.plan import parse_shard
    from isolate.matrix.run import run_matrix
    from isolate.report import problems

    shard = parse_shard(args.shard)
    ids = [h.strip() for h in args.hosts.split(",") if h.strip()]
    hosts = [h.profile for h in app.catalog.hosts()] if ids == ["all"] else \
        [_host(app, i) for i in ids]
    bundle = open_bundle(args.bundle)
    ensure_writable_dir(args.output.resolve().parent, what="results directory")
    with TerminalProgress(quiet=app.quiet, color=app.color) as progress:
        jobs = args.jobs or len(os.sched_getaffinity(0))
        results = run_matrix(bundle, hosts, runner=app.runner, jobs=jobs, shard=shard,
                             timeout=args.timeout, baseline=args.baseline, keep=args.keep,
                             progress=progress)
    write_atomic(args.output, results.dumps())
    for c in results.cells:
        counts = c.observed.counts
        eq = {True: "equivalent", False: "NOT equivalent", None: "-"}[c.equivalent]
        base = " (baseline)" if c.baseline else ""
        base += " [required]" if c.required else ""
        app.out(f"{c.host:<20} predicted {c.predicted.verdict:<12} observed "
                f"{c.observed.status:<8} {counts['passed']}p/{counts['failed']}f/"
                f"{counts['error']}e/{counts['skipped']}s  {eq}{base}")
        if c.observed.reason:
            app.out(f"{'':<20} {c.observed.reason}")
        for note in c.observed.notes:
            app.out(f"{'':<20} note: {note}")
    app.out(f"wrote {args.output}")
    bad = problems(results)  # the same rule as `isolate report`
    return ExitCode.CHECK_FAILED if bad else ExitCode.OK


def _host(app: App, host_id: str) -> HostProfile:
    """A host profile; a local-X.Y this machine lacks gives not-run cells, not an error."""
    from isolate.errors import InputError
    from isolate.profiles import absent_local_host

    try:
        return app.host(host_id).profile
    except InputError:
        absent = absent_local_host(host_id)
        if absent is None:
            raise
        return absent
