"""The runtime's ``sys.executable``: an interpreter that is isolated by itself.

The launchers in ``bin/`` start the interpreter with ``-I``, but a process started from
inside the runtime with ``sys.executable`` (``subprocess``, multiprocessing, ``os.exec*``)
gets no flags, so the host's ``PYTHONHOME``, ``PYTHONPATH``, user site... would reach it.
So ``python/bin/python3.X`` is replaced by ``csrc/isolated_main.c`` compiled against the
copied CPython: a ``main()`` that embeds CPython with ``use_environment = 0`` and
``user_site_directory = 0`` (as if ``-E -s`` were given on every start).

- A shared-libpython CPython (pyenv, python-build-standalone) is linked against the
  libpython copied into the bundle, with ``DT_RPATH = $ORIGIN/../lib``.
- A static one (Debian's ``/usr/bin/python3.X``) is linked against its ``libpython3.X.a``
  (whole, with its symbols exported, as its own ``python`` is), which Debian ships in
  ``libpython3.X-dev``.
- An interpreter that is isolated by itself (a CPython built with this ``main()``) is
  kept as it is: that is seen by running it without flags.

Programs are cached under ``<cache>/isolated-main/<key>``, the key being the hash of the
C source, the interpreter's headers and library, the compiler's identity and the
command line, so that warm builds do not compile and every build of the same inputs
ships the same bytes. The compiler is one parameter (``Compiler``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from isolate.bundle import elf
from isolate.bundle.interpreter import CopiedInterpreter, SourceInterpreter
from isolate.errors import EnvironmentProblem, InputError
from isolate.fsutil import sha256_file
from isolate.proc import Runner, clean_env

EMBEDDED_MAIN = "embedded-main"  # the copied executable was replaced by isolated_main.c
BUILT_IN = "built-in"  # the copied executable is isolated by itself
CACHE_DIR = "isolated-main"
SOURCE_NAME = "isolated_main.c"
PROGRAM = "python"
_SCHEME = 1  # bump when the command line below changes in a way the key does not show

_ISOLATED_PROBE = "isolated_probe.py"  # run under the executable, without flags


@dataclass(frozen=True, kw_only=True, slots=True)
class Compiler:
    """A C compiler: the command that starts it, and what it says it is (for the key)."""

    argv: tuple[str, ...]
    identity: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    how: str  # EMBEDDED_MAIN | BUILT_IN
    cached: bool  # the program came from the cache (EMBEDDED_MAIN only)


def source_text() -> bytes:
    return importlib.resources.files("isolate.bundle").joinpath(
        f"csrc/{SOURCE_NAME}").read_bytes()


def find_compiler(runner: Runner, command: str = "cc") -> Compiler:
    """The machine's C compiler (``cc``), identified by its ``--version`` and target."""
    what = f"the C compiler {command!r}"
    try:
        version = runner.run([command, "--version"], env=clean_env(), timeout=60, what=what)
        target = runner.run([command, "-dumpmachine"], env=clean_env(), timeout=60, what=what)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(
            f"no C compiler: isolate compiles the runtime's interpreter main ({exc.message})",
            hint="install one (Debian: apt-get install gcc), or bundle an interpreter that is "
                 "isolated by itself") from exc
    return Compiler(argv=(command,),
                    identity=f"{version.stdout.strip()}\ntarget: {target.stdout.strip()}")


def isolated_by_itself(runner: Runner, executable: Path) -> bool:
    """True when ``executable``, started without flags, ignores PYTHON* and the user site."""
    probe = importlib.resources.files("isolate.bundle").joinpath(_ISOLATED_PROBE).read_text(
        encoding="utf-8")
    done = runner.run([executable, "-c", probe], env=clean_env(), timeout=60, check=False)
    return done.ok and done.stdout.strip() == "1"


def _libpython_needed(src: SourceInterpreter) -> str | None:
    """The soname of libpython the source executable needs; None for a static one."""
    for name in elf.read_elf(src.executable).needed:
        if name.startswith("libpython"):
            return name
    return None


def _headers(src: SourceInterpreter) -> list[Path]:
    """Include directories: the interpreter's, and Debian's multiarch pyconfig.h."""
    if src.include is None or not (src.include / "Python.h").is_file():
        raise EnvironmentProblem(
            f"{src.executable}: the CPython headers (Python.h) are not installed"
            + (f" (looked in {src.include})" if src.include else ""),
            hint=f"install them (Debian: apt-get install libpython{src.xy}-dev; "
                 "python-build-standalone archives have them); isolate compiles the "
                 "runtime's interpreter main against them")
    dirs = [src.include]
    if src.config_h is not None and src.config_h.parent != src.include:
        dirs.append(src.config_h.parent)
    if src.multiarch:
        multi = src.include.parent / src.multiarch / src.include.name
        if multi.is_dir():
            dirs.append(multi)
    return dirs


def _static_library(src: SourceInterpreter) -> Path:
    name = src.static_library or f"libpython{src.xy}.a"
    for d in (src.libpl, src.libdir):
        if d is not None and (d / name).is_file():
            return d / name
    raise EnvironmentProblem(
        f"{src.executable} is linked statically to libpython, and its static library "
        f"{name} is not installed (looked in {src.libpl} and {src.libdir})",
        hint=f"install it (Debian: apt-get install libpython{src.xy}-dev), or bundle a "
             "shared-libpython CPython (pyenv, python-build-standalone) with --python")


def _shared_library(src: SourceInterpreter, home: Path, soname: str) -> Path:
    for d in (home / "lib", src.libdir, src.executable.parent.parent / "lib"):
        if (d / soname).is_file():
            return d / soname
    raise InputError(f"{src.executable} needs {soname}, which is neither in the bundle nor "
                     f"in {src.libdir}",
                     hint="pass --python a complete CPython installation")


def _digest_dirs(dirs: list[Path]) -> str:
    h = hashlib.sha256()
    for d in dirs:
        for path in sorted(p for p in d.rglob("*") if p.is_file()):
            h.update(path.relative_to(d).as_posix().encode() + b"\0")
            h.update(sha256_file(path).encode() + b"\n")
    return h.hexdigest()


def compile_command(src: SourceInterpreter, compiler: Compiler, *, includes: list[Path],
                    library: Path, static: bool) -> list[str]:
    """The command that compiles and links ``isolated_main.c`` in its own directory."""
    argv = [*compiler.argv, "-O2", *(f"-I{d}" for d in includes)]
    if static:
        # Debian's libpython3.X.a is not position-independent, nor is its python.
        argv += ["-no-pie", SOURCE_NAME, "-o", PROGRAM,
                 "-Wl,--whole-archive", str(library), "-Wl,--no-whole-archive"]
    else:
        # DT_RPATH (searched before LD_LIBRARY_PATH), as isolate.bundle.elf writes it.
        argv += [SOURCE_NAME, "-o", PROGRAM, str(library),
                 "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib"]
    # What CPython's own python is linked with: exported symbols for the extension
    # modules of a static build, then the libraries of its built-in modules.
    # Search paths of the build host (pyenv's LIBS has -Wl,-rpath,<prefix>/lib) are left out.
    argv += [*_without_rpath(src.link_flags), "-Wl,--as-needed",
             *_without_rpath(src.link_libs), "-s"]
    return argv


def _without_rpath(args: tuple[str, ...]) -> list[str]:
    """``args`` less the run-time search paths they set (``-Wl,-rpath,DIR``,
    ``-Wl,-R,DIR``, ``-Xlinker -rpath -Xlinker DIR``)."""
    out: list[str] = []
    skip = 0
    for i, a in enumerate(args):
        if skip:
            skip -= 1
            continue
        if a.startswith(("-Wl,-rpath", "-Wl,-R", "-Wl,--rpath", "-R")):
            skip = 1 if a in ("-Wl,-rpath", "-Wl,-R", "-Wl,--rpath") else 0
            continue
        if a == "-Xlinker" and i + 1 < len(args) and args[i + 1] in ("-rpath", "-R"):
            skip = 3  # -rpath -Xlinker DIR
            continue
        out.append(a)
    return out


def build_program(src: SourceInterpreter, home: Path, *, compiler: Compiler, cache: Path,
                  runner: Runner) -> tuple[Path, bool]:
    """The compiled ``isolated_main.c`` for ``src`` (from the cache when there); (path,
    whether it was cached). ``home`` is the copy in the bundle (its libpython is linked)."""
    soname = _libpython_needed(src)
    static = soname is None
    includes = _headers(src)
    library = _static_library(src) if static else _shared_library(src, home, soname or "")
    argv = compile_command(src, compiler, includes=includes, library=library, static=static)
    source = source_text()
    key = hashlib.sha256(json.dumps({
        "scheme": _SCHEME,
        "source": hashlib.sha256(source).hexdigest(),
        "headers": _digest_dirs(includes),
        "library": sha256_file(library),
        "compiler": compiler.identity,
        "command": [a for a in argv if not a.startswith("-I") and a != str(library)],
        "version": src.version,
    }, sort_keys=True).encode()).hexdigest()
    base = cache / CACHE_DIR
    done = base / key / PROGRAM
    if done.is_file():
        return done, True
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
    try:
        (tmp / SOURCE_NAME).write_bytes(source)
        runner.run(argv, cwd=tmp, env=clean_env(), timeout=600,
                   what=f"compiling the isolated interpreter main for CPython {src.version}")
        (tmp / SOURCE_NAME).unlink()
        try:
            os.rename(tmp, base / key)
        except OSError:  # another build published it first
            if not done.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done, False


def make_isolated(src: SourceInterpreter, interp: CopiedInterpreter, *, runner: Runner,
                  cache: Path, compiler: Compiler | None = None) -> Outcome:
    """Make the bundle's ``sys.executable`` isolated by itself; say how it is."""
    if isolated_by_itself(runner, src.executable):
        return Outcome(how=BUILT_IN, cached=False)
    cc = compiler or find_compiler(runner)
    program, cached = build_program(src, interp.home, compiler=cc, cache=cache, runner=runner)
    interp.executable.unlink()
    shutil.copyfile(program, interp.executable)
    interp.executable.chmod(0o755)
    return Outcome(how=EMBEDDED_MAIN, cached=cached)
