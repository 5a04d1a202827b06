"""isolate unpack ARCHIVE DEST

Exit codes: 0 unpacked into ``DEST/<top-level directory>``; 2 the archive was refused
(missing, not the format its name says, corrupt, not matching its ``.sha256``, or holding
an entry that could write outside DEST: see ``isolate.bundle.unpack``), or DEST cannot be
written. Nothing is written outside DEST, and nothing is left in it on refusal.
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
        "unpack",
        help="unpack a bundle archive safely (checks ARCHIVE.sha256 when present)",
        description="Unpack a .tar.zst or .tar.gz bundle archive into DEST. Every entry is "
                    "checked before anything is written: path traversal, absolute paths, links "
                    "leaving DEST, device nodes, FIFOs, setuid/setgid bits, duplicates and "
                    "oversize entries are refused. ARCHIVE.sha256, when present, is checked "
                    "first. Exit 0: unpacked; 2: refused or bad input.",
    )
    p.add_argument("archive", type=Path, help="a bundle archive (.tar.zst, .tar.gz)")
    p.add_argument("dest", type=Path,
                   help="the directory to unpack into (created if missing); the archive's "
                        "top-level directory must not exist in it yet")
    p.set_defaults(handler=run)


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.bundle.unpack import unpack

    top = unpack(args.archive, args.dest)
    app.out(f"unpacked {args.archive} into {top}")
    return ExitCode.OK
