"""isolate report RESULTS.json... [--html F] [--markdown F] [--junit F] [--json F]
[--baseline HOST] [--no-fail]; isolate report merge SHARD.json... -o OUT.json"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.errors import ExitCode, InputError

if TYPE_CHECKING:
    from isolate.cli import App

USAGE = """isolate report RESULTS.json... [--html FILE] [--markdown FILE] [--junit FILE]
                      [--json FILE] [--baseline HOST] [--no-fail]
       isolate report merge SHARD.json... -o OUT.json [--baseline HOST]"""

DESCRIPTION = """Render the results of `isolate matrix` for people and CI. Several results
files (the shards of one run) are merged first, and equivalence is recomputed over all
cells. Without an output option, print a short summary, one line per cell.

`isolate report merge` joins shard results of one bundle into one results file."""

EPILOG = """exit codes:
  0  no regressions: every required host ([target] hosts of the runtime profile)
     that was observed passed and is equivalent to the baseline, and every required
     host that was not observed is predicted compatible; informative hosts never fail
     the report. A runtime that names no required hosts: every observed cell passed
     (or failed as predicted), is equivalent and matches its prediction. Or --no-fail.
     `report merge`: the merged file was written
  1  a required host failed, is not equivalent, contradicts its prediction, or was not
     observed and is predicted incompatible (without required hosts: an observed cell
     failed unexpectedly, is not equivalent or contradicts its prediction); the
     headline says which, and never that every observed cell passed when nothing was
     observed
  2  bad input: unreadable file, not JSON, another schema version, no cells,
     results of different bundles, duplicate host cells, unknown --baseline host"""


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="render matrix results (HTML, Markdown, JUnit XML, JSON); "
                                      "merge shards",
                       usage=USAGE, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="RESULTS.json",
                   help="results written by `isolate matrix -o` (or `merge` and the shards)")
    p.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML page")
    p.add_argument("--markdown", type=Path, metavar="FILE",
                   help="write Markdown for a CI step summary (under 1 MiB)")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML, a suite per cell")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="write the merged results (schema isolate.results/2)")
    p.add_argument("--baseline", metavar="HOST",
                   help="compare every cell with this host's cell (default: the baseline the "
                        "results recorded, else the first passed cell)")
    p.add_argument("--no-fail", action="store_true",
                   help="exit 0 even when a cell failed, differs or contradicts its prediction")
    p.add_argument("-o", "--output", type=Path, metavar="OUT.json",
                   help="`report merge` only: where to write the merged results")
    p.set_defaults(handler=run)


def run(app: App, args: argparse.Namespace) -> int:
    if args.files[0] == "merge":
        return _merge(app, args)
    from isolate.report import ReportOutputs, build_report

    if args.output is not None:
        raise InputError("-o/--output is for `isolate report merge`",
                         hint="write the merged results of a report with --json FILE")
    outputs = ReportOutputs(html=args.html, markdown=args.markdown, junit=args.junit,
                            json=args.json)
    outcome = build_report([Path(f) for f in args.files], outputs, baseline=args.baseline)
    for note in outcome.notes:
        app.warn(f"{note}")
    if outcome.written:
        for kind, path in outcome.written:
            app.out(f"wrote {kind}: {path}")
        app.out(outcome.verdict.rstrip("\n"))
    else:
        app.out(outcome.text.rstrip("\n"))
    if outcome.problems and not args.no_fail:
        return ExitCode.CHECK_FAILED
    return ExitCode.OK


def _merge(app: App, args: argparse.Namespace) -> int:
    from isolate.report import merge_files

    files = [Path(f) for f in args.files[1:]]
    if not files:
        raise InputError("`isolate report merge` needs the shard results files",
                         hint="isolate report merge SHARD.json... -o OUT.json")
    if args.output is None:
        raise InputError("`isolate report merge` needs -o OUT.json")
    others = [opt for opt in ("html", "markdown", "junit", "json") if getattr(args, opt)]
    if others:
        raise InputError(f"--{others[0]} is not an option of `isolate report merge`",
                         hint="merge first, then run `isolate report OUT.json --"
                              f"{others[0]} FILE`")
    outcome = merge_files(files, args.output, baseline=args.baseline)
    for note in outcome.notes:
        app.warn(f"{note}")
    r = outcome.results
    app.out(f"merged {len(files)} files: {len(r.cells)} cells of bundle "
            f"{r.bundle.get('name', '?')}, baseline {r.baseline or 'none'} -> {outcome.output}")
    return ExitCode.OK
