"""isolate fetch RUNTIME --wheelhouse DIR [index options]: everything for an offline build."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.cli.lock_cmd import add_index_options, index_options
from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fetch", help="download every locked artifact into a wheelhouse, for offline builds",
        description="Download the artifact of every pin of the runtime lock and the tests "
                    "lock (hash-checked) into DIR, and build wheels from sdists there, so "
                    "that `isolate bundle RUNTIME --wheelhouse DIR --offline` needs no "
                    "network.")
    p.add_argument("runtime", help="runtime profile name (see `isolate profiles`)")
    p.add_argument("--wheelhouse", type=Path, required=True, metavar="DIR",
                   help="where to put the artifacts (created; a second run adds what is "
                        "missing)")
    add_index_options(p)
    p.set_defaults(handler=run)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.bundle.build import fresh_lock, target_of
    from isolate.bundle.wheelhouse import BUILT, fill
    from isolate.cli.progress_view import TerminalProgress

    loaded = app.runtime(args.runtime)
    name = loaded.profile.name
    lock = fresh_lock(loaded, app.catalog.lock_path(name), "runtime")
    pins = list(lock.pins)
    tests = 0
    if loaded.profile.tests.requirements:
        tests_lock = fresh_lock(loaded, app.catalog.lock_path(name, suffix="-tests"), "tests")
        tests = len(tests_lock.pins)
        pins += tests_lock.pins
    wheelhouse = args.wheelhouse.resolve()
    with TerminalProgress(quiet=app.quiet, color=app.color) as progress:
        progress.step("download", len(pins))
        result = fill(pins, target_of(loaded.profile), index_options(args), wheelhouse,
                      runner=app.runner, discovery=app.discovery, progress=progress,
                      on_file=lambda _f: progress.advance())
    app.out(f"wheelhouse {wheelhouse} for {name}: {len(lock.pins)} runtime pins, {tests} test "
            f"pins ({result.pins} distinct)")
    app.more(f"  {result.wheels} wheels, {result.sdists} sdists, {result.built} wheels built "
             f"from sdists (in {BUILT}/<sdist sha256>/); {_mb(result.bytes)}")
    app.more(f"  {result.added} files added ({_mb(result.added_bytes)}), {result.present} "
             "already there")
    app.more(f"  build offline with: isolate bundle {name} --wheelhouse {wheelhouse} --offline")
    return ExitCode.OK
