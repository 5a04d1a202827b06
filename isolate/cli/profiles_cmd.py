"""isolate profiles [list | show ID] [--json]"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App
    from isolate.profiles import ProfileEntry


def register(sub: Any) -> None:
    p = sub.add_parser(
        "profiles", help="list runtime and host profiles, or show one",
        description="List the runtime profiles (what to build) and host profiles (where to "
                    "run it) visible from the workspace, each with the file it comes from: "
                    "the workspace's profiles/ override isolate's built-in ones; local-X.Y "
                    "hosts are made from this machine's interpreters. A profile that cannot "
                    "be read is listed as broken, with its error (exit 2). `show ID` prints "
                    "one profile as JSON.",
        epilog="exit codes: 0 listed; 2 a profile is broken, or an unknown ID")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list",
                   help="list (default) or show")
    p.add_argument("id", nargs="?", help="profile id for `show`")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def _source(entry: ProfileEntry[Any], root: Path | None, builtin: Path) -> str:
    """Where a profile comes from: relative to its workspace, or isolate's built-ins."""
    if entry.path is None:
        return "this machine"
    base, label = (builtin, "built-in ") if entry.builtin else (root, "")
    if base is not None:
        try:
            return label + str(entry.path.relative_to(base))
        except ValueError:
            pass
    return label + str(entry.path)


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.cli import dump_json
    from isolate.errors import InputError
    from isolate.profiles import known_hint

    cat = app.catalog
    if args.action == "list" and args.id:
        raise InputError(f"`isolate profiles list` takes no argument (got {args.id!r})",
                         hint=f"to see one profile: isolate profiles show {args.id}")
    if args.action == "show":
        if not args.id:
            raise InputError("`isolate profiles show` needs a profile id",
                             hint="`isolate profiles` lists them")
        if args.id in cat.runtime_names():
            loaded = app.runtime(args.id)
            required = cat.required_hosts(loaded)
            for note in required.notes:
                app.warn(note)
            marked = {h.id for h in required.hosts}
            data: dict[str, Any] = {
                "kind": "runtime", "path": str(loaded.path), "sha256": loaded.sha256,
                **loaded.profile.to_dict(),
                # every host this machine knows, marked: the runtime must run on the
                # required ones ([target] hosts); the others are informative
                "hosts": [{"id": h, "required": h in marked} for h in
                          dict.fromkeys([*cat.host_ids(), *marked])]}
        elif args.id in cat.host_ids():
            host = app.host(args.id)
            data = {"kind": "host", "path": str(host.path) if host.path else None,
                    **host.profile.to_dict()}
        else:
            raise InputError(f"unknown profile {args.id!r}",
                             hint=known_hint(args.id, cat.runtime_names() + cat.host_ids(),
                                             "profiles"))
        app.out(dump_json(data))
        return ExitCode.OK
    runtimes = cat.runtime_entries()
    hosts = cat.host_entries()
    broken: list[ProfileEntry[Any]] = [e for e in runtimes if e.error is not None]
    broken += [e for e in hosts if e.error is not None]
    if args.json:
        app.out(dump_json({
            "workspace": str(cat.root) if cat.root else None,
            "runtimes": [{"path": str(r.path), "builtin": r.builtin,
                          **({"name": r.name, "error": r.error.message} if r.error else
                             r.loaded.profile.to_dict() if r.loaded else {})}
                         for r in runtimes],
            "hosts": [{"path": str(h.path) if h.path else None, "builtin": h.builtin,
                       **({"id": h.name, "error": h.error.message} if h.error else
                          h.loaded.profile.to_dict() if h.loaded else {})}
                      for h in hosts],
        }))
    else:
        _render(app, runtimes, hosts)
    for e in broken:
        assert e.error is not None
        app.err(f"error: {e.error.message}")
        if e.error.details:
            app.err(e.error.details.rstrip())
    if broken:
        app.err(f"hint: fix the broken profile{'s' * (len(broken) != 1)} above; the others "
                "are usable")
        return ExitCode.USAGE
    return ExitCode.OK


def _render(app: App, runtimes: list[ProfileEntry[Any]], hosts: list[ProfileEntry[Any]]) -> None:
    root, builtin = app.catalog.root, app.catalog.builtin
    app.out(f"workspace: {root}" if root else "workspace: none (isolate's built-in profiles)")
    app.out("runtime profiles:")
    for r in runtimes:
        if r.loaded is None:
            app.out(f"  {r.name:<22} BROKEN (see the error below)")
        else:
            p = r.loaded.profile
            reqs = ", ".join(p.requirements)
            app.out(f"  {p.name:<22} python {p.python:<5} {p.arch:<7} glibc>={p.glibc:<5} "
                    f"{reqs}")
            if p.hosts:
                app.out(f"  {'':<22} required hosts: {', '.join(p.hosts)}")
        app.out(f"  {'':<22} from {_source(r, root, builtin)}")
    app.out("host profiles:")
    for h in hosts:
        if h.loaded is None:
            app.out(f"  {h.name:<22} BROKEN (see the error below)  from {_source(h, root, builtin)}")
            continue
        hp = h.loaded.profile
        py = f"python {hp.python}" if hp.python else "no python"
        app.out(f"  {hp.id:<22} {hp.libc.family} {hp.libc.version:<5} {hp.arch:<7} "
                f"{py:<15} {hp.provision.method:<11} {hp.name}  from {_source(h, root, builtin)}")
