"""Resolver backends: turn a requirements file into a pinned, hashed lock.

Both backends write pip-compile's format and seed from an existing output file, so an
unchanged input keeps its pins unless an upgrade is asked for.

The default is uv when it is installed (it is one of isolate's dependencies): it resolves
for the profile's Python version and platform without an interpreter of that version, in
seconds. pip-tools stays available (``--backend pip-tools``) and is the fallback where uv
is missing.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Protocol

import filelock

from isolate.cache import cache_root
from isolate.credentials import redact_text
from isolate.errors import EnvironmentProblem, ResolutionError
from isolate.interpreters import Discovery, Interpreter
from isolate.proc import Completed, Runner, clean_env

DEFAULT_INDEX = "https://pypi.org/simple"


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexOptions:
    """Where packages come from. Passed explicitly: no pip.conf, no PIP_* variables."""

    index_url: str | None = DEFAULT_INDEX  # None: --no-index; may hold user:token@
    find_links: tuple[str, ...] = ()
    cert: str | None = None  # a CA bundle (PEM) for the index's TLS certificate

    def pip_args(self) -> list[str]:
        """Options for pip and pip-tools. They may carry credentials: run them, never
        print them unredacted (``isolate.credentials``)."""
        args = ["--no-index"] if self.index_url is None else [f"--index-url={self.index_url}"]
        args += [f"--find-links={f}" for f in self.find_links]
        return args + ([f"--cert={self.cert}"] if self.cert else [])

    def uv_args(self) -> list[str]:
        """Options for uv, which takes its CA bundle from the environment (:meth:`env`)."""
        args = ["--no-index"] if self.index_url is None else [f"--index-url={self.index_url}"]
        return args + [f"--find-links={f}" for f in self.find_links]

    def env(self) -> dict[str, str]:
        """Environment for the tools that reach the index: the CA bundle, for uv and for
        the build backends pip starts."""
        if not self.cert:
            return {}
        return {"SSL_CERT_FILE": self.cert, "REQUESTS_CA_BUNDLE": self.cert}


@dataclass(frozen=True, kw_only=True, slots=True)
class CompileRequest:
    profile: str  # the runtime profile's name, for messages
    requirements_in: Path  # a requirements.in in the work directory
    output: Path  # seeded with previous pins when it exists
    python: tuple[int, int]
    arch: str
    glibc: str
    index: IndexOptions
    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()
    # Extra environment for building sdists' metadata (e.g. PKG_CONFIG_LIBDIR of the
    # pinned development packages a binding's setup.py asks pkg-config about).
    build_env: Mapping[str, str] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def describe(self) -> str: ...

    def compile(self, req: CompileRequest) -> None: ...


def diagnosis(text: str) -> str:
    """The resolver's own words: its output less Python traceback frames."""
    out: list[str] = []
    in_tb = False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_tb = True
            continue
        if in_tb:
            if line.startswith((" ", "\t")) or not line.strip():
                continue
            in_tb = False
        out.append(line)
    return redact_text("\n".join(out[-40:]).strip())


_NETWORK_SIGNS = ("NewConnectionError", "Failed to establish a new connection",
                  "Name or service not known", "Temporary failure in name resolution",
                  "Network is unreachable", "Connection refused", "ConnectTimeoutError",
                  "Max retries exceeded", "error sending request", "dns error")


def _resolution_error(done: Completed, profile: str) -> EnvironmentProblem | ResolutionError:
    reason = "timed out" if done.timed_out else f"exit code {done.returncode}"
    output = done.stdout + "\n" + done.stderr
    if any(sign in output for sign in _NETWORK_SIGNS):
        return EnvironmentProblem(
            f"cannot resolve runtime profile {profile!r}: the package index is unreachable "
            f"({reason})",
            details=diagnosis(output),
            hint="check the network and --index-url; no lock was written or changed",
        )
    return ResolutionError(
        f"cannot resolve the requirements of runtime profile {profile!r} ({reason})",
        details=diagnosis(done.stdout + "\n" + done.stderr),
        hint="the resolver's diagnosis is above; change the requirements or constraints "
             "in the profile; no lock was written or changed",
    )


def _run_compiler(runner: Runner, argv: list[str | Path], req: CompileRequest) -> None:
    """Run a pip-compile-like command: upgrade flags and the input file appended, run in
    the output's directory (so annotations name files relatively)."""
    argv = [*argv, *(["--upgrade"] if req.upgrade else []),
            *(f"--upgrade-package={name}" for name in req.upgrade_packages),
            req.requirements_in.name]
    done = runner.run(argv, env=clean_env({**req.index.env(), **req.build_env}),
                      cwd=req.output.parent,
                      timeout=1800, check=False)
    if not done.ok:
        raise _resolution_error(done, req.profile)


class PipTools:
    """pip-compile, run under an interpreter of the runtime's Python version.

    pip-compile evaluates markers for the interpreter that runs it, so isolate keeps one
    small tool environment per target interpreter in its cache.
    """

    name = "pip-tools"

    def __init__(self, runner: Runner, discovery: Discovery, *, tool_index: str = DEFAULT_INDEX):
        self._runner = runner
        self._discovery = discovery
        self._tool_index = tool_index
        self._version = metadata.version("pip-tools")

    def describe(self) -> str:
        return f"pip-tools {self._version}"

    def _spec(self, interp: Interpreter) -> str:
        return f"pip-tools=={self._version}" if interp.minor >= (3, 9) else "pip-tools>=7.3,<7.5"

    def tool_python(self, minor: tuple[int, int]) -> Path:
        interp = self._discovery.find(minor, purpose="to resolve for that Python version")
        digest = hashlib.sha256(str(interp.path).encode()).hexdigest()[:12]
        key = f"pip-tools-{self._version}-cp{interp.minor[0]}{interp.minor[1]}-{digest}"
        home = cache_root() / "tools" / key
        python = home / "bin" / "python"
        if python.exists():
            return python
        home.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(home) + ".lock"):
            if python.exists():
                return python
            tmp = home.with_name(home.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            env = clean_env()
            self._runner.run(
                [sys.executable, "-m", "virtualenv", "--quiet", "--no-periodic-update",
                 "-p", interp.path, tmp],
                env=env, timeout=300, what=f"creating a Python {interp.minor_text} tool environment",
            )
            self._runner.run(
                [tmp / "bin" / "python", "-m", "pip", "install", "--quiet",
                 f"--index-url={self._tool_index}", self._spec(interp)],
                env=env, timeout=600, what=f"installing {self._spec(interp)}",
            )
            tmp.rename(home)
        return python

    def compile(self, req: CompileRequest) -> None:
        python = self.tool_python(req.python)
        argv: list[str | Path] = [
            python, "-m", "piptools", "compile",
            "--verbose" if self._runner.verbose else "--quiet",
            "--generate-hashes", "--allow-unsafe", "--strip-extras",
            "--no-header", "--resolver=backtracking", "--no-emit-index-url",
            "--no-emit-trusted-host", "--no-emit-find-links",
            f"--output-file={req.output.name}",
            *req.index.pip_args(),
        ]
        _run_compiler(self._runner, argv, req)


def find_uv() -> str | None:
    """The uv executable: the one of the ``uv`` package installed with isolate, else the
    first on PATH; None when there is none."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def default_backend() -> str:
    """The backend used when none is named: uv when installed, else pip-tools."""
    return "uv" if find_uv() is not None else "pip-tools"


class Uv:
    """``uv pip compile``: resolves for a target version and platform without an interpreter."""

    name = "uv"

    def __init__(self, runner: Runner):
        self._runner = runner
        found = find_uv()
        if found is None:
            raise EnvironmentProblem(
                "the uv backend needs uv, which is not installed",
                hint="pip install uv (isolate-runtime depends on it), or use --backend pip-tools",
            )
        self._bin = found

    def describe(self) -> str:
        """``uv X.Y.Z``: the version, not the build triple (it goes into lock headers)."""
        done = self._runner.run([self._bin, "--version"], timeout=30, what="uv --version")
        return " ".join(done.stdout.split()[:2])

    def compile(self, req: CompileRequest) -> None:
        platform = f"{req.arch}-manylinux_{req.glibc.replace('.', '_')}"
        argv: list[str | Path] = [
            self._bin, "pip", "compile", "--verbose" if self._runner.verbose else "--quiet",
            "--generate-hashes", "--no-header",
            f"--python-version={req.python[0]}.{req.python[1]}",
            f"--python-platform={platform}", "--no-python-downloads",
            f"--output-file={req.output.name}",
            *req.index.uv_args(),
        ]
        _run_compiler(self._runner, argv, req)
