"""The ``isolate`` command: argument parsing, printing and exit codes, nothing else.

Exit codes: 0 ok; 1 a check found problems; 2 bad usage or input; 3 the machine lacks
something (an interpreter, a tool, network); 130 interrupted.

Global options (``-v``, ``-q``, ``--color``, ``--root``) are accepted before the command and
after it, by every command.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from isolate import __version__
from isolate.errors import ExitCode, InputError, IsolateError
from isolate.proc import Runner

if TYPE_CHECKING:  # imported when first used: `verify` needs neither (start-up time)
    from isolate.interpreters import Discovery
    from isolate.profiles import Catalog, LoadedHost, LoadedRuntime

EPILOG = """environment variables (an option on the command line wins):
  ISOLATE_INDEX_URL    default for --index-url (lock, bundle, fetch); may be
                       https://USER:TOKEN@host/simple: credentials are never printed
  ISOLATE_FIND_LINKS   default for --find-links: directories, separated by spaces
  ISOLATE_CA_BUNDLE    default for --cert: a CA bundle (PEM) for the index's TLS
                       (pip gets --cert, uv SSL_CERT_FILE)
  ISOLATE_CACHE_DIR    where isolate caches tool environments, artifacts, built
                       interpreters and root filesystems (default:
                       $XDG_CACHE_HOME/isolate, else ~/.cache/isolate)
  NETRC                the netrc file with index credentials (default ~/.netrc)
  NO_COLOR, FORCE_COLOR  with --color auto: no colour / colour even when piped

exit codes: 0 ok, 1 check failed, 2 usage or input error,
3 missing interpreter/tool/network, 130 interrupted"""

COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[33m", "hint": "\x1b[36m"}
RESET = "\x1b[0m"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(ExitCode.USAGE)


def add_global_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes. On subcommands their default is SUPPRESS, so a
    value given before the command is kept when none is given after it."""
    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("global options")
    g.add_argument("-v", "--verbose", action="count", default=default(0),
                   help="say which workspace and profile files are used, and stream the "
                        "output of the tools isolate runs (resolver, compiler)")
    g.add_argument("-q", "--quiet", action="store_true", default=default(False),
                   help="print only the result line, warnings and errors")
    g.add_argument("--color", choices=["auto", "always", "never"], default=default("auto"),
                   help="colour the output: auto (default) colours a terminal unless NO_COLOR "
                        "is set; FORCE_COLOR colours even when piped")
    g.add_argument("--root", type=Path, metavar="DIR", default=default(None),
                   help="workspace with profiles/ and constraints/ (default: the nearest "
                        "directory with profiles/, upward from the current directory)")


def use_color(choice: str, stream: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def paint(text: str, color: bool) -> str:
    """Colour the leading ``error:``/``warning:``/``hint:`` of a line."""
    if not color:
        return text
    head, sep, rest = text.partition(":")
    code = COLORS.get(head)
    return f"{code}{head}{sep}{RESET}{rest}" if code and sep else text


class App:
    """What every command needs: a runner, interpreter discovery, the profile catalog, and
    the ways to print that honour -v, -q and --color."""

    def __init__(self, args: argparse.Namespace, runner: Runner | None = None):
        self.args = args
        self.verbose = int(getattr(args, "verbose", 0) or 0)
        self.quiet = bool(getattr(args, "quiet", False))
        self.color = use_color(getattr(args, "color", "auto"), sys.stderr)
        if runner is None:
            runner = Runner(echo=self.info if self.verbose else None)
        elif self.verbose and runner.echo is None:
            runner.echo = self.info
        self.runner = runner
        root: Path | None = getattr(args, "root", None)
        if root is not None:
            if not root.is_dir():
                raise InputError(f"--root {root}: no such directory")
            if not (root / "profiles").is_dir():
                raise InputError(f"--root {root}: not a workspace (it has no profiles/)",
                                 hint="a workspace has profiles/runtimes/*.toml (and "
                                      "profiles/hosts/, constraints/); create profiles/ or "
                                      "drop --root to use isolate's built-in profiles")
            root = root.resolve()
        self._root = root

    @cached_property
    def discovery(self) -> Discovery:
        from isolate.interpreters import Discovery

        return Discovery(self.runner)

    @cached_property
    def catalog(self) -> Catalog:
        """The profiles of the workspace (``--root``, else found upward from the current
        directory), else isolate's built-in ones; -v says which, when first used."""
        from isolate.profiles import Catalog, find_workspace

        root, how = self._root, "--root"
        if root is None:
            root = find_workspace(Path.cwd())
            how = "found upward from the current directory"
        if root is None:
            self.info("workspace: none (isolate's built-in profiles)")
        else:
            self.info(f"workspace: {root} ({how})")
        return Catalog(root=root, discovery=self.discovery)

    # -- printing -----------------------------------------------------------------------
    def out(self, text: str = "") -> None:
        """A result line: printed even with -q."""
        print(text)

    def more(self, text: str = "") -> None:
        """Detail below a result line: not with -q."""
        if not self.quiet:
            print(text)

    def err(self, text: str) -> None:
        """An error (or the diagnosis of one) on standard error: printed even with -q."""
        print(paint(text, self.color), file=sys.stderr)

    def warn(self, text: str) -> None:
        """A warning: printed even with -q (as pip's -q does), never with -qq's silence."""
        print(paint(f"warning: {text}", self.color), file=sys.stderr)

    def info(self, text: str) -> None:
        """Only with -v, on standard error."""
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    # -- profiles, saying where they come from ------------------------------------------
    def runtime(self, name: str) -> LoadedRuntime:
        loaded = self.catalog.runtime(name)
        self.info(f"runtime profile {name}: {loaded.path}"
                  + (" (built-in)" if loaded.builtin else ""))
        return loaded

    def host(self, host_id: str) -> LoadedHost:
        loaded = self.catalog.host(host_id)
        where = loaded.path or "generated from this machine's interpreters"
        self.info(f"host profile {host_id}: {where}" + (" (built-in)" if loaded.builtin and
                                                         loaded.path else ""))
        return loaded


# Every command, in the order `isolate --help` lists them; isolate.cli.<name>_cmd
# registers and runs each.
COMMANDS = ("profiles", "lock", "bundle", "diff", "fetch", "provision", "matrix", "report",
            "verify", "unpack", "sbom", "python", "completion")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the command ``only`` alone: ``main`` builds no
    more when the command line starts with the command (importing every command's module
    costs about 0.02 s, a fiftieth of `isolate verify`)."""
    parser = _Parser(
        prog="isolate",
        description="Build pinned, relocatable Python runtimes and prove them on many hosts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"isolate {__version__}")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"isolate.cli.{name}_cmd").register(sub)
    for p in _subparsers(parser):
        add_global_options(p, top=False)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` (commands, and actions such as `python build`)."""
    out: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases: once
                out += [child, *_subparsers(child)]
    return out


def report_error(exc: IsolateError, *, color: bool = False) -> None:
    sys.stderr.write(paint(f"error: {exc.message}", color) + "\n")
    if exc.details:
        sys.stderr.write(exc.details.rstrip() + "\n")
    if exc.hint:
        sys.stderr.write(paint(f"hint: {exc.hint}", color) + "\n")


def main(argv: Sequence[str] | None = None, *, runner: Runner | None = None) -> int:
    """``isolate ARGV``; ``runner`` replaces the one that runs every command (tests record
    or refuse commands through it)."""
    words = list(sys.argv[1:] if argv is None else argv)
    # `isolate COMMAND ...` needs that command's parser only: what follows the command is
    # its own parser's to read. Anything else (global options first, --help, a typo) gets
    # the parser of every command, to parse or to explain.
    parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
    args = parser.parse_args(words)
    color = use_color(args.color, sys.stderr)
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet exclude each other")
    try:
        app = App(args, runner)
        return int(args.handler(app, args))
    except IsolateError as exc:
        report_error(exc, color=color)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `isolate ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)
    finally:
        if argv is None:  # the program itself, about to exit: see _leave_to_exit
            _leave_to_exit()


def _leave_to_exit() -> None:
    """Exempt every object left from the cyclic collector's passes at interpreter exit,
    which otherwise walk them all (0.02 s after `isolate verify`); they are freed all
    the same. Only for a run of the program (``main()`` without ``argv``): a process
    that goes on (tests calling ``main(argv)``) keeps its collector whole."""
    import gc

    gc.freeze()


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False)
