"""isolate verify PATH [--host HOST | --here] [--manifest-sha256 HEX] [--no-cache] [--json]

Exit codes: 0 no errors (notes allowed); 1 at least one error finding (a damaged,
unrelocatable, unclosed or leaky bundle, an unreadable manifest or one changed after the
build, or a host it cannot run on); 2 usage or input error (PATH missing, not a bundle
directory or archive, an archive that cannot be unpacked or does not match its .sha256, an
unknown host profile, a --manifest-sha256 that is not a sha256).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App
    from isolate.model.profiles import HostProfile
    from isolate.verify import VerifyReport
    from isolate.verify.report import Finding


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="check a bundle: integrity, relocation, ELF closure, isolation, imports",
        description="Check a bundle directory or archive against its manifest and prove it "
                    "relocatable, closed and isolated. Every finding is reported at once; notes "
                    "that say one fact about several files are one line with a count (-v "
                    "lists the files). "
                    "Exit 0: no errors (notes allowed); 1: errors found; 2: bad input.",
    )
    p.add_argument("path", type=Path, help="a bundle directory or archive (.tar.zst, .tar.gz)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--host", metavar="HOST", default=None,
                       help="a host profile id: also check the bundle's libc family, floors "
                            "and host libraries (provided, too old or absent) against it "
                            "(see `isolate profiles`)")
    where.add_argument("--here", action="store_true",
                       help="the same checks against this machine, its host libraries "
                            "looked for in its library directories")
    p.add_argument("--manifest-sha256", metavar="HEX", default=None,
                   help="the manifest's expected sha256 (default: read from "
                        "PATH.isolate-manifest.json.sha256, which `isolate bundle` writes "
                        "beside the bundle; an archive's own .sha256 covers it)")
    p.add_argument("--no-cache", action="store_true",
                   help="run the isolation, children and import probes even when the probe "
                        "cache holds their result for the same bytes, host and probes, and "
                        "parse every ELF file again (the ELF facts cache, by content "
                        "sha256); store nothing. The other checks never use a cache")
    p.add_argument("--json", action="store_true",
                   help="print the JSON report (schema isolate.verify/1) instead of text; it "
                        "lists every finding, ungrouped")
    p.set_defaults(handler=run)


def run(app: App, args: argparse.Namespace) -> int:
    import gc

    from isolate.bundle.elf_cache import ElfCache
    from isolate.cli import dump_json
    from isolate.verify import verify
    from isolate.verify.probe_cache import ProbeCache

    host: HostProfile | None = None
    if args.host:
        host = app.host(args.host).profile
    elif args.here:
        from isolate.profiles import this_host

        host = this_host()
    elf_cache = None if args.no_cache else ElfCache()
    # verify builds a few objects per file (21,000 files for Nova) and keeps them to the
    # end: the cyclic collector would walk them over and over for nothing. Paused while
    # it runs (its worker processes are forked paused too), resumed after.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        report = verify(args.path, host=host, runner=app.runner,
                        manifest_sha256=args.manifest_sha256,
                        cache=None if args.no_cache else ProbeCache(), elf_cache=elf_cache)
    finally:
        if was_enabled:
            gc.enable()
        if elf_cache is not None:
            elf_cache.close()
    if args.json:
        app.out(dump_json(report.to_dict()))
    else:
        _render(app, report)
    return ExitCode.OK if report.ok else ExitCode.CHECK_FAILED


# A note's sample, e.g. ``('/build/x/lib')`` or ``(b'/tmp/...')``: notes that differ only
# in it say one fact about several files.
_SAMPLE = re.compile(r" \((?:b?'[^']*'|b?\"[^\"]*\")\)")


def _grouped(findings: Sequence[Finding]) -> list[tuple[Finding, list[Finding]]]:
    """Errors one by one; notes with the same check and message (less its sample) as one
    group, in the order of their first finding."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    out: list[tuple[Finding, list[Finding]]] = []
    for f in findings:
        if f.severity != "note" or f.path is None:
            out.append((f, [f]))
            continue
        key = (f.check, _SAMPLE.sub("", f.message))
        if key not in groups:
            groups[key] = []
            out.append((f, groups[key]))
        groups[key].append(f)
    return out


def _render(app: App, report: VerifyReport) -> None:
    app.out(f"verify {report.name or report.bundle}"
            + (f" against host {report.host}" if report.host else ""))
    for first, members in _grouped(report.findings):
        if first.severity == "note" and app.quiet:
            continue
        if len(members) == 1:
            where = f"{first.path}: " if first.path else ""
            message = first.message.replace("\n", "\n" + " " * 20)  # e.g. a probe's output
            app.out(f"  {first.severity:<5} {first.check:<10} {where}{message}")
            continue
        message = _SAMPLE.sub("", first.message)
        shown = "" if app.verbose else " (-v lists them)"
        app.out(f"  {first.severity:<5} {first.check:<10} {len(members)} files{shown}: "
                f"{message}")
        if app.verbose:
            for f in members:
                sample = _SAMPLE.search(f.message)
                app.out(f"{'':<20}{f.path}{sample.group(0) if sample else ''}")
    parts = []
    for c in report.checks:
        if c.skipped:
            parts.append(f"{c.name} skipped ({c.skipped})")
        else:
            took = f"cached from {c.cached}" if c.cached else f"{c.seconds:.2f}s"
            parts.append(f"{c.name} {took}" + (f" [{c.detail}]" if c.detail else ""))
    for name, seconds in report.timings.items():
        parts.insert(0, f"{name} {seconds:.2f}s")
    app.more("  checks: " + "; ".join(parts))
    cached = [c for c in report.checks if c.cached]
    if cached:  # always said: a result taken from the cache is not a check run now
        when = sorted({c.cached or "" for c in cached})
        app.out(f"  cached: {', '.join(c.name for c in cached)} passed on {', '.join(when)} "
                "on these same bytes, this host and these probes, and were not run again "
                "(--no-cache runs them)")
    errors, notes = len(report.errors), len(report.notes)
    verdict = "FAILED" if errors else "ok"
    app.out(f"{verdict}: {errors} error{'s' * (errors != 1)}, {notes} note{'s' * (notes != 1)} "
            f"in {report.seconds:.2f}s")
