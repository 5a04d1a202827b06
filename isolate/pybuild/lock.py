"""Interpreter locks: the pinned sources of a CPython that isolate builds itself.

``profiles/interpreters/cpython-X.Y.toml`` names the CPython release, the compiler and
every source tarball (version, URL, sha256). The model is pure; ``load_interpreter_lock``
reads and validates a file, naming the file and key of every problem at once.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isolate.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^\d+(\.\d+)*$")
_MINOR = re.compile(r"^3\.\d+$")
# What the build knows how to build; the lock must list exactly these.
REQUIRED_SOURCES = ("cpython", "openssl", "zlib", "bzip2", "xz", "libffi", "sqlite", "expat",
                    "mpdecimal", "libuuid")


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    name: str
    version: str
    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True, kw_only=True, slots=True)
class InterpreterLock:
    python: str  # "3.13"
    version: str  # "3.13.5"
    compiler: str  # "ziglang"
    compiler_version: str
    glibc: str  # the default target, also the lowest the compiler offers
    sources: tuple[Source, ...]
    path: Path
    sha256: str  # of the file's bytes: part of the cache key

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


def string_field(d: dict[str, Any], key: str, where: str, problems: list[str]) -> str:
    """``d[key]`` when it is a non-empty string; else "" and a problem naming ``where+key``."""
    value = d.get(key)
    if not isinstance(value, str) or not value:
        problems.append(f"{where}{key}: missing or not a string")
        return ""
    return value


def read_toml(path: Path, what: str) -> tuple[dict[str, Any], bytes]:
    """The TOML table in ``path`` and the file's bytes (``what``: "the interpreter lock",
    ...), or an InputError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        return tomllib.loads(raw.decode("utf-8")), raw
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}",
                         hint="fix the file's syntax") from exc


def load_interpreter_lock(path: Path) -> InterpreterLock:
    data, raw = read_toml(path, "the interpreter lock")
    problems: list[str] = []
    known_top = {"python", "version", "toolchain", "sources"}
    for key in sorted(set(data) - known_top):
        problems.append(f"{key}: unknown key (known: {', '.join(sorted(known_top))})")
    python = string_field(data, "python", "", problems)
    version = string_field(data, "version", "", problems)
    if python and not _MINOR.match(python):
        problems.append(f"python: {python!r} is not a CPython 3.X version")
    if version and python and not version.startswith(python + "."):
        problems.append(f"version: {version!r} is not a {python} release")
    tool = data.get("toolchain")
    if not isinstance(tool, dict):
        problems.append("toolchain: missing table")
        tool = {}
    compiler = string_field(tool, "compiler", "toolchain.", problems)
    if compiler and compiler != "ziglang":
        problems.append(f"toolchain.compiler: {compiler!r} is not supported (only 'ziglang')")
    compiler_version = string_field(tool, "compiler_version", "toolchain.", problems)
    glibc = string_field(tool, "glibc", "toolchain.", problems)
    if glibc and not re.match(r"^2\.\d+$", glibc):
        problems.append(f"toolchain.glibc: {glibc!r} is not a glibc version like '2.17'")
    sources_raw = data.get("sources")
    sources: list[Source] = []
    if not isinstance(sources_raw, dict):
        problems.append("sources: missing table")
        sources_raw = {}
    for name in REQUIRED_SOURCES:
        if name not in sources_raw:
            problems.append(f"sources.{name}: missing (every one of "
                            f"{', '.join(REQUIRED_SOURCES)} is built)")
    for name, entry in sources_raw.items():
        where = f"sources.{name}."
        if name not in REQUIRED_SOURCES:
            problems.append(f"sources.{name}: isolate has no recipe for it "
                            f"(known: {', '.join(REQUIRED_SOURCES)})")
            continue
        if not isinstance(entry, dict):
            problems.append(f"sources.{name}: not a table")
            continue
        for key in sorted(set(entry) - {"version", "url", "sha256"}):
            problems.append(f"{where}{key}: unknown key (known: sha256, url, version)")
        v = string_field(entry, "version", where, problems)
        url = string_field(entry, "url", where, problems)
        sha = string_field(entry, "sha256", where, problems)
        if v and not _VERSION.match(v):
            problems.append(f"{where}version: {v!r} is not a version")
        if url and not url.startswith(("https://", "http://", "file://")):
            problems.append(f"{where}url: {url!r} is not an http(s) or file URL")
        if sha and not _SHA256.match(sha):
            problems.append(f"{where}sha256: not 64 lowercase hex digits")
        sources.append(Source(name=name, version=v, url=url, sha256=sha))
    if problems:
        raise InputError(f"{path}: invalid interpreter lock",
                         details="\n".join(f"  {p}" for p in problems),
                         hint="see profiles/interpreters/cpython-3.13.toml for the format")
    return InterpreterLock(python=python, version=version, compiler=compiler,
                           compiler_version=compiler_version, glibc=glibc,
                           sources=tuple(sorted(sources, key=lambda s: s.name)), path=path,
                           sha256=hashlib.sha256(raw).hexdigest())
