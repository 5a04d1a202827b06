"""isolate provision --hosts ID[,ID...] [--jobs N]

Exit codes: 0 every root filesystem the hosts need is ready (built now or found in the
cache); 3 one could not be made (the tools are missing, or debootstrap failed): each
failure is named, the others are made all the same.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App


def register(sub: Any) -> None:
    p = sub.add_parser(
        "provision", help="make the root filesystems of host profiles now (cached)",
        description="Make the Debian root filesystems that the cells of these host profiles "
                    "run in (debootstrap; needs root), or find them in the cache, so that a "
                    "matrix later starts its cells at once: run it while the bundle builds. "
                    "Hosts that are not root-filesystem hosts are skipped. Exit 0: all ready; "
                    "3: one could not be made.")
    p.add_argument("--hosts", required=True, metavar="ID[,ID...]",
                   help="host profiles (see `isolate profiles`); 'all' for every one")
    p.add_argument("-j", "--jobs", type=int, default=2, help="root filesystems at once "
                   "(default 2: debootstrap waits on the network more than on a core)")
    p.set_defaults(handler=run)


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.cli.progress_view import TerminalProgress
    from isolate.matrix.provision import provision_hosts

    ids = [h.strip() for h in args.hosts.split(",") if h.strip()]
    hosts = [h.profile for h in app.catalog.hosts()] if ids == ["all"] else \
        [app.host(i).profile for i in ids]
    with TerminalProgress(quiet=app.quiet, color=app.color) as progress:
        made = provision_hosts(hosts, runner=app.runner, jobs=args.jobs, progress=progress)
    failed = 0
    for p in made:
        who = ", ".join(p.hosts)
        if p.error is None:
            app.out(f"{who}: {p.path}")
            continue
        failed += 1
        app.err(f"error: {who}: cannot provision Debian {p.spec.suite}: {p.error.message}")
        if p.error.details:
            app.err(p.error.details)
        if p.error.hint:
            app.err(f"hint: {p.error.hint}")
    if not made:
        app.out("no host of these needs a root filesystem")
    return ExitCode.ENVIRONMENT if failed else ExitCode.OK
