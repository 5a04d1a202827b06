"""isolate sbom BUNDLE [-o FILE]

Exit codes: 0 the SBOM was written (to FILE, or to standard output); 2 BUNDLE is not a
bundle directory, bundle archive or manifest, its manifest cannot be read, or FILE cannot
be written.
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
        "sbom",
        help="write a CycloneDX JSON SBOM of a bundle, from its manifest",
        description="Write a CycloneDX 1.6 JSON SBOM of a bundle from its manifest: the "
                    "bundle, every installed distribution (purl, sha256), the CPython "
                    "interpreter and every vendored shared library. The same bundle always "
                    "gives the same bytes (the timestamp is SOURCE_DATE_EPOCH or 1980-01-01). "
                    "Exit 0: written; 2: bad input.",
    )
    p.add_argument("bundle", type=Path,
                   help="a bundle directory, a bundle archive (.tar.zst, .tar.gz) or an "
                        "isolate-manifest.json")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", default=None,
                   help="write the SBOM to FILE (default: standard output)")
    p.set_defaults(handler=run)


def run(app: App, args: argparse.Namespace) -> int:
    from isolate.sbom import build_sbom, write_sbom

    if args.output is None:
        app.out(build_sbom(args.bundle).text.removesuffix("\n"))
        return ExitCode.OK
    sbom = write_sbom(args.bundle, args.output)
    app.out(f"wrote CycloneDX {sbom.spec_version} SBOM of {sbom.bundle} "
            f"({sbom.components} components) to {args.output}")
    return ExitCode.OK
