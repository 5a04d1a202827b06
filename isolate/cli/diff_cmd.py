"""isolate diff OLD NEW [--json | --markdown]

Exit codes: 0 the bundles are identical, 1 they differ (like diff(1)), 2 one of them is
not a bundle (the message says what it is not).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.errors import ExitCode

if TYPE_CHECKING:
    from isolate.cli import App


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diff", help="what changed between two bundles (exit 0 identical, 1 different)",
        description="Compare two bundles: directories, .tar.zst/.tar.gz archives, manifests, "
                    "or .deb/.rpm packages made by `isolate bundle`. Reports distributions "
                    "added, removed and changed, the interpreter, glibc and host-library "
                    "floors, vendored libraries, launchers, files per distribution with a "
                    "size delta, and whether the test overlay changed. Exit 0: identical; "
                    "1: different; 2: not a bundle.")
    p.add_argument("old", type=Path, help="the old bundle")
    p.add_argument("new", type=Path, help="the new bundle")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="JSON (schema isolate.diff/1)")
    form.add_argument("--markdown", action="store_true", help="Markdown, for a review")
    p.set_defaults(handler=run)


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.cli import dump_json
    from isolate.diff.compare import compare
    from isolate.diff.load import open_bundle
    from isolate.diff.render import render_markdown, render_text

    diff = compare(open_bundle(args.old), open_bundle(args.new))
    if args.json:
        app.out(dump_json(diff.to_dict()))
    elif args.markdown:
        app.out(render_markdown(diff).rstrip())
    else:
        app.out(render_text(diff).rstrip())
    return ExitCode.OK if diff.identical else ExitCode.CHECK_FAILED
