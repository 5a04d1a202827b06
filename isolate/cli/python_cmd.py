"""isolate python build VERSION [--glibc X.Y] [--no-selftest] [-j N] [--json]
isolate python list"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App


def register(sub: Any) -> None:
    p = sub.add_parser(
        "python", help="CPython built from pinned sources for an old glibc",
        description="Build, or list, the interpreters of the source provider "
                    "(`isolate bundle --python source:X.Y`). Sources are pinned by sha256 in "
                    "profiles/interpreters/cpython-X.Y.toml; results are cached under the "
                    "isolate cache, keyed by the hash of every input.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    b = actions.add_parser("build", help="build (or find in the cache) one interpreter",
                           description="Build CPython X.Y and its C dependencies (OpenSSL, "
                                       "libffi, zlib, bzip2, xz, SQLite, expat, mpdecimal, "
                                       "libuuid) statically, for a glibc floor, with the "
                                       "zig cross compiler; then run a subset of CPython's "
                                       "own tests against it. Prints the floor and sizes.")
    b.add_argument("version", help="the CPython version, e.g. 3.13 (`isolate python list`)")
    b.add_argument("--glibc", default=None, metavar="X.Y",
                   help="the highest glibc the interpreter may need (default: the "
                        "interpreter lock's, 2.17)")
    b.add_argument("--arch", default="x86_64", help="x86_64 (default) or aarch64")
    b.add_argument("--no-selftest", action="store_true",
                   help="skip CPython's own tests (the result is cached all the same)")
    b.add_argument("-j", "--jobs", type=int, default=None,
                   help="parallel compile jobs (default: the number of CPUs)")
    b.add_argument("--json", action="store_true", help="print build-info.json")
    b.set_defaults(handler=run_build)
    ls = actions.add_parser("list", help="the versions isolate can build, and which are cached",
                            description="List the CPython versions that have an interpreter "
                                        "lock (profiles/interpreters/cpython-X.Y.toml), the "
                                        "lock's path, and whether the build is cached.")
    ls.set_defaults(handler=run_list)


def run_build(app: App, args: argparse.Namespace) -> int:
    from isolate.pybuild.build import build_interpreter
    from isolate.pybuild.lock import load_interpreter_lock

    lock = load_interpreter_lock(app.catalog.interpreter_lock_path(args.version))

    def say(text: str) -> None:
        if not args.json and not app.quiet:
            app.err(f"  building {text} ...")

    built = build_interpreter(lock, glibc=args.glibc, arch=args.arch, runner=app.runner,
                              jobs=args.jobs, run_selftest=not args.no_selftest, step=say)
    info = built.info
    if args.json:
        app.out(json.dumps(info, indent=2, sort_keys=True))
        return ExitCode.OK
    state = "cached" if built.cached else "built"
    app.out(f"CPython {info['version']} for glibc {info['glibc_target']} ({info['arch']}): "
            f"{state}")
    app.out(f"  {built.executable}")
    app.out(f"  glibc floor {info['glibc_floor']} (set by {info['glibc_floor_file']}, "
            f"{info['glibc_floor_symbol']}); {info['elf_files']} ELF files need only "
            f"{', '.join(info['needed'])}")
    app.out(f"  size {info['size_bytes'] / 1e6:.1f} MB; tree sha256 {info['tree_sha256']}")
    secs = info.get("seconds", {})
    app.out("  build: " + ", ".join(f"{k} {v:.0f}s" for k, v in secs.items()))
    tests = info.get("selftest")
    if tests:
        app.out(f"  CPython's own tests: {tests['run']} run, {tests['failed']} failed, "
                f"{tests['skipped']} skipped in {len(tests['modules'])} test modules "
                f"({tests['result']}, {tests['seconds']:.0f}s)")
    else:
        app.out("  CPython's own tests: not run (--no-selftest)")
    return ExitCode.OK


def run_list(app: App, args: argparse.Namespace) -> int:
    from isolate.pybuild.build import find_cached
    from isolate.pybuild.lock import load_interpreter_lock

    for version in app.catalog.interpreter_versions():
        path = app.catalog.interpreter_lock_path(version)
        lock = load_interpreter_lock(path)
        cached = find_cached(lock, glibc=lock.glibc)
        state = f"cached at {cached.root}" if cached else "not built yet"
        app.out(f"{version}  CPython {lock.version}, glibc {lock.glibc}+  {path}  ({state})")
    return ExitCode.OK
