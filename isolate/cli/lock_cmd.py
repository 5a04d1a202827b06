"""isolate lock RUNTIME [--check] [--upgrade] [--upgrade-package NAME] [--backend ...]"""

from __future__ import annotations

import argparse
import os
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
                   help="package index (default: $ISOLATE_INDEX_URL, else "
                        "https://pypi.org/simple); credentials may be in the URL "
                        "(https://USER:TOKEN@host/simple) or in ~/.netrc, and are never printed")
    g.add_argument("--find-links", metavar="DIR", action="append", default=[],
                   help="also look for distributions here (repeatable; default: "
                        "$ISOLATE_FIND_LINKS, separated by spaces)")
    g.add_argument("--no-index", action="store_true", help="use only --find-links")
    g.add_argument("--cert", metavar="PEM", default=None,
                   help="a CA bundle for the index's TLS certificate (default: "
                        "$ISOLATE_CA_BUNDLE); pip gets --cert, uv SSL_CERT_FILE")


def index_options(args: argparse.Namespace) -> IndexOptions:
    """The index options, with the ISOLATE_* environment variables as defaults."""
    from isolate.errors import InputError
    from isolate.locking.backends import DEFAULT_INDEX, IndexOptions

    env_url = os.environ.get("ISOLATE_INDEX_URL") or None
    url = None if args.no_index else (args.index_url or env_url or DEFAULT_INDEX)
    find_links = args.find_links or os.environ.get("ISOLATE_FIND_LINKS", "").split()
    cert = args.cert or os.environ.get("ISOLATE_CA_BUNDLE") or None
    if cert is not None and not Path(cert).is_file():
        source = "--cert" if args.cert else "ISOLATE_CA_BUNDLE"
        raise InputError(f"{source} {cert}: no such file",
                         hint="give a PEM file of CA certificates")
    return IndexOptions(index_url=url, find_links=tuple(find_links),
                        cert=str(Path(cert).resolve()) if cert else None)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "lock", help="resolve a runtime profile into pinned, hashed locks",
        description="Resolve the requirements of a runtime profile for its Python version, "
                    "architecture and glibc floor into two pip-compile locks with hashes: "
                    "constraints/RUNTIME.txt (the runtime) and constraints/RUNTIME-tests.txt "
                    "(its test requirements). Existing pins are kept unless --upgrade. With "
                    "--check, write nothing: exit 1 if the committed lock is stale. -v "
                    "streams the resolver's output.")
    p.add_argument("runtime", help="runtime profile name (see `isolate profiles`)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 and show the difference if the committed lock is stale")
    p.add_argument("--no-resolve", action="store_true",
                   help="with --check: compare the profile with the lock header only (offline)")
    p.add_argument("--upgrade", action="store_true", help="ignore existing pins")
    p.add_argument("--upgrade-package", action="append", default=[], metavar="NAME",
                   help="upgrade one package (repeatable)")
    p.add_argument("--backend", choices=["pip-tools", "uv"], default=None,
                   help="the resolver: uv (the default when installed, and isolate depends "
                        "on it: `uv pip compile` for the profile's Python version and "
                        "platform, in seconds) or pip-tools (pip-compile run under a CPython "
                        "of the profile's version; the fallback without uv). Both write the "
                        "same format")
    p.add_argument("-o", "--output-dir", type=Path, default=None, metavar="DIR",
                   help="where to write the locks (default: the workspace's constraints/)")
    add_index_options(p)
    p.set_defaults(handler=run)


def make_backend(app: App, name: str | None) -> Backend:
    """The backend named, or the default one (uv when installed, else pip-tools)."""
    from isolate.locking.backends import PipTools, Uv, default_backend

    if (name or default_backend()) == "uv":
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

    def say(text: str) -> None:
        if not app.quiet:
            app.err(f"  building {text} ...")

    build_interpreter(ilock, arch=profile.arch, runner=app.runner, step=say)


def _native_build_env(app: App, profile: RuntimeProfile) -> dict[str, str]:
    """pkg-config's view of the pinned development packages of [native_builds]."""
    if not profile.native_builds:
        return {}
    from isolate.cache import cache_root
    from isolate.pybuild.devpackages import native_build_env

    return native_build_env({dev: app.catalog.dev_packages_path(dev)
                             for dev in set(profile.native_builds.values())},
                            runner=app.runner, cache=cache_root())


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.errors import InputError
    from isolate.locking.lock import check, lock

    loaded = app.runtime(args.runtime)
    if args.check and (args.upgrade or args.upgrade_package):
        raise InputError("--check cannot be combined with --upgrade or --upgrade-package")
    if args.no_resolve and not args.check:
        raise InputError("--no-resolve only makes sense with --check")
    backend = make_backend(app, args.backend)
    if backend.name == "pip-tools" and not (args.check and args.no_resolve):
        _ensure_interpreter(app, loaded.profile)
    index = index_options(args)
    build_env = _native_build_env(app, loaded.profile)
    if args.check:
        lock_path = app.catalog.lock_path(loaded.profile.name)
        result = check(loaded, backend, index, lock_dir=lock_path.parent,
                       resolve=not args.no_resolve, build_env=build_env)
        if result.fresh and args.no_resolve:
            app.out(f"{lock_path}: fresh (header match the profile)")
            return ExitCode.OK
        if result.fresh:
            app.out(f"{lock_path}: fresh (header and a fresh resolution match the profile: "
                    f"{result.resolved_by}, seeded with the committed versions, gives the same "
                    f"{result.pins} pins with the same hashes)")
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
                  upgrade=args.upgrade, upgrade_packages=tuple(args.upgrade_package),
                  build_env=build_env)
    app.out(f"wrote {made.paths.runtime} ({made.runtime_pins} pins)")
    app.out(f"wrote {made.paths.tests} ({made.test_pins} pins for the tests)")
    for line in made.changed:
        app.more(f"  {line}")
    return ExitCode.OK
