"""isolate profiles [show ID]"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App


def register(sub: Any) -> None:
    p = sub.add_parser("profiles", help="list runtime and host profiles, or show one")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("id", nargs="?", help="profile id for `show`")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.cli import dump_json
    from isolate.errors import InputError
    from isolate.profiles import known_hint

    cat = app.catalog
    if args.action == "show":
        if not args.id:
            raise InputError("`isolate profiles show` needs a profile id",
                             hint="`isolate profiles` lists them")
        if args.id in cat.runtime_names():
            loaded = cat.runtime(args.id)
            required = cat.required_hosts(loaded)
            for note in required.notes:
                app.err(f"warning: {note}")
            marked = {h.id for h in required.hosts}
            data: dict[str, Any] = {
                "kind": "runtime", "path": str(loaded.path), "sha256": loaded.sha256,
                **loaded.profile.to_dict(),
                # every host this machine knows, marked: the runtime must run on the
                # required ones ([target] hosts); the others are informative
                "hosts": [{"id": h, "required": h in marked} for h in
                          dict.fromkeys([*cat.host_ids(), *marked])]}
        elif args.id in cat.host_ids():
            host = cat.host(args.id)
            data = {"kind": "host", "path": str(host.path) if host.path else None,
                    **host.profile.to_dict()}
        else:
            raise InputError(f"unknown profile {args.id!r}",
                             hint=known_hint(args.id, cat.runtime_names() + cat.host_ids(),
                                             "profiles"))
        app.out(dump_json(data))
        return ExitCode.OK
    runtimes = cat.runtimes()
    hosts = cat.hosts()
    if args.json:
        app.out(dump_json({
            "runtimes": [{"path": str(r.path), **r.profile.to_dict()} for r in runtimes],
            "hosts": [h.profile.to_dict() for h in hosts],
        }))
        return ExitCode.OK
    app.out("runtime profiles:")
    for r in runtimes:
        p = r.profile
        reqs = ", ".join(p.requirements)
        app.out(f"  {p.name:<22} python {p.python:<5} {p.arch:<7} glibc>={p.glibc:<5} {reqs}")
        if p.hosts:
            app.out(f"  {'':<22} required hosts: {', '.join(p.hosts)}")
    app.out("host profiles:")
    for h in hosts:
        hp = h.profile
        py = f"python {hp.python}" if hp.python else "no python"
        app.out(f"  {hp.id:<22} {hp.libc.family} {hp.libc.version:<5} {hp.arch:<7} "
                f"{py:<15} {hp.provision.method:<11} {hp.name}")
    return ExitCode.OK
