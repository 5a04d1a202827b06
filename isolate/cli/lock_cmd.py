"""isolate lock RUNTIME [--check] [--upgrade] [--upgrade-package NAME] [--backend ...]"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App
    from isolate.locking.backends import Backend, IndexOptions
    from isolate.model.profiles import RuntimeProfile


def add_index_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("package index (pip configuration files are ignored)")
    g.add_argument("--index-url", metavar="URL", default=None,
                   help="package index (default: https://pypi.org/simple)")
    g.add_argument("--find-links", metavar="DIR", action="append", default=[],
                   help="also look for distributions here (repeatable)")
    g.add_argument("--no-index", action="store_true", help="use only --find-links")


def index_options(args: argparse.Namespace) -> IndexOptions:
    from isolate.locking.backends import DEFAULT_INDEX, IndexOptions

    url = None if args.no_index else (args.index_url or DEFAULT_INDEX)
    return IndexOptions(index_url=url, find_links=tuple(args.find_links))


def register(sub: Any) -> None:
    p = sub.add_parser("lock", help="resolve a runtime profile into pinned, hashed locks")
    p.add_argument("runtime", help="runtime profile name (see `isolate profiles`)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 and show the difference if the committed lock is stale")
    p.add_argument("--no-resolve", action="store_true",
                   help="with --check: compare the profile with the lock header only (offline)")
    p.add_argument("--upgrade", action="store_true", help="ignore existing pins")
    p.add_argument("--upgrade-package", action="append", default=[], metavar="NAME",
                   help="upgrade one package (repeatable)")
    p.add_argument("--backend", choices=["pip-tools", "uv"], default="pip-tools")
    p.add_argument("-o", "--output-dir", type=Path, default=None, metavar="DIR",
                   help="where to write the locks (default: the workspace's constraints/)")
    add_index_options(p)
    p.set_defaults(handler=run)


def make_backend(app: App, name: str) -> Backend:
    from isolate.locking.backends import PipTools, Uv

    if name == "uv":
        return Uv(app.runner)
    return PipTools(app.runner, app.discovery)


def _ensure_interpreter(app: App, profile: RuntimeProfile) -> None:
    """pip-compile runs under the runtime's Python version. A profile whose interpreter
    is built from source needs no local CPython of that version: build it (once)."""
    if profile.interpreter != "source" or profile.python_tuple in app.discovery.by_minor():
        return
    from isolate.pybuild.build import build_interpreter
    from isolate.pybuild.lock import load_interpreter_lock

    ilock = load_interpreter_lock(app.catalog.interpreter_lock_path(profile.python))
    app.err(f"no local CPython {profile.python}: building it from source to resolve with "
            "(cached; later runs reuse it)")
    build_interpreter(ilock, arch=profile.arch, runner=app.runner,
                      step=lambda text: app.err(f"  building {text} ..."))


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.errors import InputError
    from isolate.locking.lock import check, lock

    loaded = app.catalog.runtime(args.runtime)
    if args.check and (args.upgrade or args.upgrade_package):
        raise InputError("--check cannot be combined with --upgrade or --upgrade-package")
    if args.no_resolve and not args.check:
        raise InputError("--no-resolve only makes sense with --check")
    backend = make_backend(app, args.backend)
    if args.backend == "pip-tools" and not (args.check and args.no_resolve):
        _ensure_interpreter(app, loaded.profile)
    index = index_options(args)
    if args.check:
        lock_path = app.catalog.lock_path(loaded.profile.name)
        result = check(loaded, backend, index, lock_dir=lock_path.parent,
                       resolve=not args.no_resolve)
        if result.fresh:
            how = "header" if args.no_resolve else "header and a fresh resolution"
            app.out(f"{lock_path}: fresh ({how} match the profile)")
            return ExitCode.OK
        app.err(f"error: the lock of {loaded.profile.name!r} is stale")
        for line in (*result.problems, *result.diff):
            app.err(line)
        app.err(f"hint: run `isolate lock {loaded.profile.name}` and commit the result")
        return ExitCode.CHECK_FAILED
    out_dir = args.output_dir or app.catalog.lock_dir_for_write()
    seed = app.catalog.lock_path(loaded.profile.name).parent
    root = app.catalog.root
    try:
        rel = str(loaded.path.relative_to(root)) if root else loaded.path.name
    except ValueError:
        rel = loaded.path.name
    if loaded.builtin and root is None:
        rel = f"(built-in) profiles/runtimes/{loaded.path.name}"
    made = lock(loaded, backend, index, out_dir=out_dir, seed_dir=seed, profile_path=rel,
                  upgrade=args.upgrade, upgrade_packages=tuple(args.upgrade_package))
    app.out(f"wrote {made.paths.runtime} ({made.runtime_pins} pins)")
    app.out(f"wrote {made.paths.tests} ({made.test_pins} pins for the tests)")
    for line in made.changed:
        app.out(f"  {line}")
    return ExitCode.OK
