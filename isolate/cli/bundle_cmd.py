"""isolate bundle RUNTIME [-o DIR] [--format dir|tar.zst|tar.gz|deb|rpm] [--prefix DIR]
[--python SOURCE] [--wheelhouse DIR] [--offline] [--allow-incompatible HOST]..."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.bundle.archive_format import ZSTD_LEVEL, ZSTD_LEVELS
from isolate.cli.lock_cmd import add_index_options, index_options
from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bundle", help="build a relocatable runtime from a runtime's lock",
        description="Build the runtime of a runtime profile from its lock: a CPython, the "
                    "locked wheels (hash-checked), the vendored shared libraries with "
                    "$ORIGIN-relative paths, launchers and a manifest; then check it against "
                    "the profile's contract ([target] floors and required hosts) and publish "
                    "it as a directory and/or reproducible archives.")
    p.add_argument("runtime", help="runtime profile name (see `isolate profiles`)")
    p.add_argument("-o", "--output-dir", type=Path, default=Path("out"), metavar="DIR",
                   help="where to put the bundle (default: ./out)")
    p.add_argument("--format", default="tar.zst", metavar="FMT[,FMT]",
                   help="dir, tar.zst, tar.gz, deb, rpm, or several separated by commas, "
                        "all from one build (default: tar.zst); deb and rpm need the "
                        "profile's [package] table")
    p.add_argument("--prefix", default=None, metavar="DIR",
                   help="where the .deb/.rpm installs the runtime (default: the profile's "
                        "package.prefix, else /opt/<name>)")
    p.add_argument("--python", metavar="SOURCE", default=None,
                   help="the CPython to bundle: source:X.Y (built by isolate from pinned "
                        "sources for an old glibc, cached; see `isolate python build`), an "
                        "executable, or a python-build-standalone install_only archive "
                        "(default: the profile's `interpreter`: source, or a local CPython "
                        "of the profile's version)")
    p.add_argument("--zstd-level", type=int, default=ZSTD_LEVEL, metavar="N",
                   help=f"zstandard level of a tar.zst archive, {ZSTD_LEVELS[0]} to "
                        f"{ZSTD_LEVELS[1]} (default {ZSTD_LEVEL}, zstd's own: Nova's runtime in "
                        "103 MB; 10 gives 89 MB and takes about 9 times as long); the same "
                        "level gives the same bytes")
    p.add_argument("--headers", action="store_true", help="keep the C headers")
    p.add_argument("--no-tests-overlay", action="store_true",
                   help="do not build the test overlay (the test requirements)")
    p.add_argument("-j", "--jobs", type=int, default=4, help="parallel installs (default 4)")
    add_index_options(p)
    p.add_argument("--wheelhouse", type=Path, default=None, metavar="DIR",
                   help="a directory filled by `isolate fetch`: a --find-links source, and "
                        "where wheels built from sdists are found")
    p.add_argument("--offline", action="store_true",
                   help="use no index and no network: every artifact must be in the "
                        "wheelhouse, --find-links or the cache")
    p.add_argument("--allow-incompatible", action="append", default=[], metavar="HOST",
                   help="publish even though the runtime is predicted not to run on this "
                        "required host ([target] hosts); recorded in the manifest "
                        "(repeatable)")
    p.set_defaults(handler=run)
    p.epilog = ("exit codes: 0 built; 2 bad input, or the runtime breaks its profile's "
                "contract (a floor above [target], a required host predicted incompatible): "
                "nothing is published; 3 a missing interpreter, tool or network")


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.bundle.build import Builder, BundleOptions
    from isolate.cli.progress_view import TerminalProgress
    from isolate.errors import InputError
    from isolate.locking.backends import IndexOptions

    loaded = app.runtime(args.runtime)
    required = app.catalog.required_hosts(loaded)
    for note in required.notes:
        app.warn(f"{note}")
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    if args.offline and args.index_url:
        raise InputError("--offline and --index-url exclude each other",
                         hint="an offline build uses no index: drop --index-url")
    index = index_options(args)
    wheelhouse = args.wheelhouse.resolve() if args.wheelhouse else None
    index = IndexOptions(
        index_url=None if args.offline else index.index_url, cert=index.cert,
        find_links=(*([str(wheelhouse)] if wheelhouse else []), *index.find_links))
    python = args.python
    interpreter_lock = None
    if python is None and loaded.profile.interpreter == "source":
        python = f"source:{loaded.profile.python}"
    if python is not None and python.startswith("source:"):
        interpreter_lock = app.catalog.interpreter_lock_path(python.removeprefix("source:"))
        python = None
    options = BundleOptions(output_dir=args.output_dir.resolve(), formats=formats,
                            python=python, interpreter_lock=interpreter_lock, index=index,
                            include_headers=args.headers,
                            tests_overlay=not args.no_tests_overlay, jobs=max(1, args.jobs),
                            wheelhouse=wheelhouse, offline=args.offline,
                            required_hosts=required.hosts,
                            allow_incompatible=tuple(dict.fromkeys(args.allow_incompatible)),
                            package_prefix=args.prefix, zstd_level=args.zstd_level,
                            dev_packages={
                                dev: app.catalog.dev_packages_path(dev)
                                for dev in sorted(set(loaded.profile.native_builds.values()))})
    with TerminalProgress(quiet=app.quiet, color=app.color) as progress:
        builder = Builder(runner=app.runner, discovery=app.discovery, progress=progress)
        result = builder.build(loaded,
                               lock_path=app.catalog.lock_path(loaded.profile.name),
                               tests_lock_path=app.catalog.lock_path(loaded.profile.name,
                                                                     suffix="-tests"),
                               options=options)
    m = result.manifest
    app.out(f"bundle {result.name}")
    app.more(f"  python {m.interpreter.version} from {m.interpreter.source}; "
             f"{len(m.distributions)} distributions; launchers: {', '.join(m.scripts)}")
    floor = m.elf.glibc_floor  # the floors are the result the contract judged: kept with -q
    app.out(f"  glibc floor {floor} (set by {m.elf.glibc_floor_file}, {m.elf.glibc_floor_symbol});"
            f" {len(m.elf.vendored)} vendored libraries")
    others = [f for f in m.elf.floors if f.kind != "glibc"]
    if others:
        app.out("  GCC runtime floors: " + "; ".join(f"{f.symbol} ({f.file})" for f in others))
    target = ", ".join(f"{k} {v}" for k, v in m.contract.target.items())
    app.more(f"  within [target] {target}")
    if m.contract.resolved_hosts:
        app.more(f"  required hosts predicted compatible: "
                 f"{len(m.contract.resolved_hosts) - len(m.contract.allowed_incompatible)} of "
                 f"{len(m.contract.resolved_hosts)}")
    for a in m.contract.allowed_incompatible:
        app.warn(f"required host {a.host} is predicted incompatible, allowed by "
                 f"--allow-incompatible (recorded in the manifest): {'; '.join(a.reasons)}")
    app.more(f"  {m.sizes['files']} files, {m.sizes['total'] / 1e6:.1f} MB; pruned "
             f"{m.sizes['pruned'] / 1e6:.1f} MB ({len(m.interpreter.pruned)} entries)")
    if result.directory:
        app.out(f"  directory: {result.directory}")
    for path, digest in result.archives:
        # What was written, and its sha256, is the result: shown under -q too.
        app.out(f"  archive:   {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {digest})")
    for path, digest in result.packages:
        app.out(f"  package:   {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {digest})")
    if result.overlay:
        app.more(f"  tests overlay: {result.overlay}")
    app.more("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items()))
    return ExitCode.OK
