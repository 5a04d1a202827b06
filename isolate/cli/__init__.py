"""The ``isolate`` command: argument parsing, printing and exit codes, nothing else.

Exit codes: 0 ok; 1 a check found problems; 2 bad usage or input; 3 the machine lacks
something (an interpreter, a tool, network); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from isolate import __version__
from isolate.errors import ExitCode, InputError, IsolateError
from isolate.interpreters import Discovery
from isolate.proc import Runner
from isolate.profiles import Catalog, find_workspace

EPILOG = """exit codes: 0 ok, 1 check failed, 2 usage or input error,
3 missing interpreter/tool/network, 130 interrupted"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(ExitCode.USAGE)


class App:
    """What every command needs: a runner, interpreter discovery, the profile catalog."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.runner = Runner()
        self.discovery = Discovery(self.runner)
        root: Path | None = args.root
        if root is not None:
            if not (root / "profiles").is_dir() and not root.is_dir():
                raise InputError(f"--root {root}: no such directory")
            root = root.resolve()
        else:
            root = find_workspace(Path.cwd())
        self.catalog = Catalog(root=root, discovery=self.discovery)

    def out(self, text: str = "") -> None:
        print(text)

    def err(self, text: str) -> None:
        print(text, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from isolate.cli import (
        bundle_cmd,
        fetch_cmd,
        lock_cmd,
        matrix_cmd,
        profiles_cmd,
        python_cmd,
        report_cmd,
        sbom_cmd,
        unpack_cmd,
        verify_cmd,
    )

    parser = _Parser(
        prog="isolate",
        description="Build pinned, relocatable Python runtimes and prove them on many hosts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"isolate {__version__}")
    parser.add_argument("--root", type=Path, metavar="DIR",
                        help="workspace with profiles/ and constraints/ (default: found upward"
                             " from the current directory)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    profiles_cmd.register(sub)
    lock_cmd.register(sub)
    bundle_cmd.register(sub)
    fetch_cmd.register(sub)
    matrix_cmd.register(sub)
    report_cmd.register(sub)
    verify_cmd.register(sub)
    unpack_cmd.register(sub)
    sbom_cmd.register(sub)
    python_cmd.register(sub)
    return parser


def report_error(exc: IsolateError) -> None:
    sys.stderr.write(f"error: {exc.message}\n")
    if exc.details:
        sys.stderr.write(exc.details.rstrip() + "\n")
    if exc.hint:
        sys.stderr.write(f"hint: {exc.hint}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        app = App(args)
        return int(args.handler(app, args))
    except IsolateError as exc:
        report_error(exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `isolate ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False)
