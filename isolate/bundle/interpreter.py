"""Interpreter providers: a CPython of the runtime's version, copied into the bundle.

Sources:

- a locally installed CPython (pyenv builds: shared libpython with an absolute RUNPATH;
  Debian's: a static interpreter under /usr with Debian's dist-packages layout);
- a python-build-standalone ``install_only`` archive (``python/bin/python3.X`` inside).

Either way the interpreter is described by asking it (``sysconfig``), then only what a
runtime needs is copied into ``<bundle>/python``: the executable, libpython, the standard
library less what a runtime never uses, and lib-dynload. The copy is made relocatable
by the ELF closure (RPATH) and by rewriting ``_sysconfigdata`` to derive its paths from
``sys.base_prefix`` at import time.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isolate.errors import EnvironmentProblem, InputError
from isolate.interpreters import Discovery
from isolate.model import tree
from isolate.proc import Runner, clean_env

PREFIX_PLACEHOLDER = "@ISOLATE_PREFIX@"
SYSTEM_PREFIXES = ("/", "/usr", "/usr/local")

# Relative to the stdlib directory. What a runtime never needs.
PRUNE_STDLIB = (
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3/tests",
    "turtle.py", "__phello__", "__hello__.py", "site-packages", "dist-packages",
    "unittest/test", "sqlite3/test", "ctypes/test", "distutils/tests", "tkinter/test",
)
PRUNE_STDLIB_GLOBS = ("config-*",)  # static libpython, Makefile, python.o
PRUNE_DYNLOAD_PREFIXES = (
    "_tkinter", "_test", "_ctypes_test", "_xxtestfuzz", "xxlimited", "xxsubtype",
    "_xxsubinterpreters", "_xxinterpchannels",
)

# Modules of this package that run under the interpreter being described or copied
_DESCRIBE_PROBE = "interpreter_probe.py"
_SITE_PROBE = "site_probe.py"


def _probe(name: str) -> str:
    """The text of a probe module of this package, run with ``-c``."""
    return importlib.resources.files("isolate.bundle").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceInterpreter:
    """A CPython installation to copy from, as it describes itself."""

    version: str
    executable: Path
    prefix: Path
    exec_prefix: Path
    stdlib: Path
    dynload: Path | None
    shared: bool
    libdir: Path
    instsoname: str
    include: Path | None
    sysconfigdata: str
    source: str  # for the manifest
    # configure's --prefix, when it is not where the installation is (a relocated build:
    # a source-built interpreter says /install): relocated in _sysconfigdata too.
    config_prefix: str = ""
    # What linking a program against this CPython takes (see isolate.bundle.isolated_main)
    config_h: Path | None = None
    multiarch: str = ""
    libpl: Path | None = None
    static_library: str = ""  # LIBRARY: libpython3.X.a
    link_flags: tuple[str, ...] = ()  # LINKFORSHARED
    link_libs: tuple[str, ...] = ()  # LIBS MODLIBS SYSLIBS

    @property
    def minor(self) -> tuple[int, int]:
        major, minor, _ = self.version.split(".", 2)
        return int(major), int(minor)

    @property
    def xy(self) -> str:
        return "{}.{}".format(*self.minor)


@dataclass(frozen=True, kw_only=True, slots=True)
class CopiedInterpreter:
    version: str
    source: str
    home: Path  # <bundle>/python
    executable: Path
    stdlib: Path
    site_packages: Path
    pruned: tuple[str, ...]
    pruned_bytes: int
    source_prefixes: tuple[str, ...]  # absolute paths of the source, for the audit


def describe(runner: Runner, executable: Path, *, source: str) -> SourceInterpreter:
    done = runner.run([executable, "-I", "-B", "-c", _probe(_DESCRIBE_PROBE)], env=clean_env(),
                      timeout=60, check=False)
    if not done.ok:
        raise InputError(f"{executable} is not a usable CPython 3.8+ interpreter",
                         details=done.tail(10),
                         hint="pass --python a CPython executable or an install_only archive")
    try:
        d = json.loads(done.stdout)
        implementation = d["implementation"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{executable} is not a usable CPython 3.8+ interpreter: it did not "
                         "describe itself", details=done.tail(10),
                         hint="pass --python a CPython executable or an install_only archive"
                         ) from exc
    if implementation != "cpython":
        raise InputError(f"{executable} is {implementation}, not CPython",
                         hint="isolate bundles CPython; pass --python a CPython executable")
    return SourceInterpreter(
        version=d["version"],
        executable=Path(d["executable"]),
        prefix=Path(d["prefix"]),
        exec_prefix=Path(d["exec_prefix"]),
        stdlib=Path(d["stdlib"]),
        dynload=Path(d["dynload"]) if d["dynload"] else None,
        shared=bool(d["shared"]),
        libdir=Path(d["libdir"]),
        instsoname=d["instsoname"],
        include=Path(d["include"]) if d["include"] else None,
        sysconfigdata=d["sysconfigdata"],
        config_prefix=str(d.get("config_prefix") or ""),
        source=source,
        config_h=Path(d["config_h"]) if d.get("config_h") else None,
        multiarch=d.get("multiarch") or "",
        libpl=Path(d["libpl"]) if d.get("libpl") else None,
        static_library=d.get("static_library") or "",
        link_flags=tuple(shlex.split(d.get("link_flags") or "")),
        link_libs=tuple(shlex.split(d.get("link_libs") or "")),
    )


def find_source(runner: Runner, discovery: Discovery, python: str, spec: str | None,
                unpack_dir: Path, unpack: Callable[[Path, Path], Path]) -> SourceInterpreter:
    """Pick the interpreter to bundle: ``spec`` (a path to an executable or an archive) or
    the newest local CPython of version ``python``."""
    want = tuple(int(p) for p in python.split("."))
    if spec is None:
        interp = discovery.find((want[0], want[1]), purpose="to bundle as the runtime's Python")
        src = describe(runner, interp.path, source=f"local:{interp.path}")
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise InputError(f"--python {spec}: no such file",
                             hint="give a CPython executable or a python-build-standalone "
                                  "install_only archive")
        if path.is_file() and path.name.endswith((".tar.gz", ".tar.zst", ".tgz")):
            top = unpack(path, unpack_dir)
            exe = top / "bin" / f"python{python}"
            if not exe.exists():
                raise InputError(
                    f"--python {spec}: not a python-build-standalone install_only archive "
                    f"for {python} (no {exe.relative_to(unpack_dir)} inside)",
                    hint="use an archive named cpython-X.Y.Z+DATE-ARCH-unknown-linux-gnu-"
                         "install_only.tar.gz",
                )
            src = describe(runner, exe, source=f"archive:{path.name}")
        else:
            src = describe(runner, path.resolve(), source=f"local:{path.resolve()}")
    if src.minor != want[:2]:
        raise InputError(
            f"the interpreter {src.executable} is CPython {src.version}, but the runtime "
            f"profile asks for {python}",
            hint=f"pass --python a CPython {python}",
        )
    return src


def _dir_bytes(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += (Path(dirpath) / f).lstat().st_size
            except OSError:
                pass
    return total


def copy_interpreter(src: SourceInterpreter, home: Path, *, include_headers: bool = False,
                     runner: Runner) -> CopiedInterpreter:
    """Copy what a runtime needs from ``src`` into ``home`` (``<bundle>/python``)."""
    xy = src.xy
    bin_dir, lib_dir = home / "bin", home / "lib"
    stdlib = lib_dir / f"python{xy}"
    bin_dir.mkdir(parents=True)
    lib_dir.mkdir(parents=True)
    exe = bin_dir / f"python{xy}"
    shutil.copyfile(src.executable, exe)
    exe.chmod(tree.EXEC_MODE)
    (bin_dir / "python3").symlink_to(exe.name)
    if src.shared and src.instsoname:
        libpython = src.libdir / src.instsoname
        if not libpython.exists():
            raise EnvironmentProblem(f"{src.executable}: its libpython {libpython} is missing")
        shutil.copyfile(libpython.resolve(), lib_dir / src.instsoname)
        (lib_dir / src.instsoname).chmod(tree.EXEC_MODE)

    pruned: list[str] = []
    pruned_bytes = 0

    def ignore(directory: str, names: list[str]) -> set[str]:
        nonlocal pruned_bytes
        rel = os.path.relpath(directory, src.stdlib)
        out = set()
        for n in names:
            relname = n if rel == "." else f"{rel}/{n}"
            if n == "__pycache__" or n.endswith((".pyc", ".pyo")):
                out.add(n)  # compiled again, deterministically
                continue
            if relname in PRUNE_STDLIB or (rel == "." and any(
                    Path(n).match(g) for g in PRUNE_STDLIB_GLOBS)):
                out.add(n)
                pruned.append(f"stdlib/{relname}")
                pruned_bytes += _dir_bytes(Path(directory) / n)
            elif rel == "." and n == "lib-dynload":
                out.add(n)  # copied below, from wherever the source keeps it
        return out

    shutil.copytree(src.stdlib, stdlib, symlinks=False, ignore=ignore)
    dynload = stdlib / "lib-dynload"
    dynload.mkdir()
    if src.dynload is not None:
        for entry in sorted(src.dynload.iterdir()):
            if entry.name.startswith(PRUNE_DYNLOAD_PREFIXES):
                pruned.append(f"lib-dynload/{entry.name}")
                pruned_bytes += entry.stat().st_size
                continue
            if entry.is_file():
                shutil.copyfile(entry, dynload / entry.name)
                (dynload / entry.name).chmod(tree.file_mode(entry.suffix == ".so"))
    if include_headers and src.include and src.include.is_dir():
        shutil.copytree(src.include, home / "include" / src.include.name)
    elif src.include and src.include.is_dir():
        pruned.append("include")
        pruned_bytes += _dir_bytes(src.include)

    prefixes = sorted({str(src.prefix), str(src.exec_prefix), str(src.stdlib.parent.parent),
                       str(src.executable.parent.parent)})
    built_at = [src.config_prefix] if src.config_prefix and src.config_prefix not in prefixes \
        else []
    _relocate_sysconfigdata(stdlib, src, prefixes, path_only=built_at)
    site = _site_packages(runner, exe, stdlib)
    site.mkdir(parents=True, exist_ok=True)
    return CopiedInterpreter(
        version=src.version, source=src.source, home=home, executable=exe, stdlib=stdlib,
        site_packages=site, pruned=tuple(sorted(pruned)), pruned_bytes=pruned_bytes,
        # /usr and friends are every host's paths, not the build host's: a system
        # interpreter leaves nothing private behind for the relocation audit to find.
        source_prefixes=tuple(p for p in prefixes if p not in SYSTEM_PREFIXES),
    )


def _relocate_sysconfigdata(stdlib: Path, src: SourceInterpreter, prefixes: list[str], *,
                            path_only: list[str] | None = None) -> None:
    """Make ``_sysconfigdata`` describe wherever the runtime is, not where it was built.

    ``path_only`` prefixes (configure's of a relocated build, e.g. ``/install``) are
    replaced only where they start a path, as system prefixes are."""
    if not src.sysconfigdata:
        return
    path = stdlib / f"{src.sysconfigdata}.py"
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    # Longest first, so /usr/local is not cut by /usr. A private prefix (pyenv's, an
    # unpacked archive's) is replaced wherever it appears (-Wl,-rpath,PREFIX/lib too);
    # a system prefix only where it starts a path value, so /usr/bin/install stays.
    anchored = {*SYSTEM_PREFIXES, *(path_only or ())}
    for prefix in sorted({*prefixes, *(path_only or ())}, key=len, reverse=True):
        if prefix in ("/", ""):
            continue
        if prefix not in anchored:
            text = text.replace(prefix, PREFIX_PLACEHOLDER)
            continue
        for lead in ("'", " ", "=", "-L", "-I"):
            text = text.replace(f"{lead}{prefix}/", f"{lead}{PREFIX_PLACEHOLDER}/")
        text = text.replace(f"'{prefix}'", f"'{PREFIX_PLACEHOLDER}'")
    text += (
        "\n# isolate: this runtime is relocatable; paths of its installation are derived\n"
        "# from where it runs, not from where it was built.\n"
        "import sys as _isolate_sys\n"
        "build_time_vars = {\n"
        "    _k: (_v.replace(" + repr(PREFIX_PLACEHOLDER) + ", _isolate_sys.base_prefix)\n"
        "         if isinstance(_v, str) else _v)\n"
        "    for _k, _v in build_time_vars.items()\n"
        "}\n"
        "del _isolate_sys\n"
    )
    path.write_text(text, encoding="utf-8")


def _site_packages(runner: Runner, exe: Path, stdlib: Path) -> Path:
    """Where the copied interpreter looks for distributions (Debian: dist-packages)."""
    done = runner.run([exe, "-I", "-B", "-S", "-c", _probe(_SITE_PROBE)], env=clean_env(),
                      timeout=60, check=False)
    if done.ok:
        for p in json.loads(done.stdout):
            if Path(p).parent == stdlib:
                return Path(p)
    return stdlib / "site-packages"
