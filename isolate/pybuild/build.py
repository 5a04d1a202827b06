"""``isolate python build``: CPython and its C dependencies from pinned sources, for a glibc.

The result is an installation tree cached under ``<cache>/interpreters/``, keyed by the
hash of every input (the interpreter lock, the target, the compiler, the recipes and the
interpreter's main()). It is built in a private directory and renamed into place only
when complete and proven, so an interrupted or failed build leaves no cache entry; a
second build of the same inputs gives a byte-identical tree (fixed build paths mapped
away with ``-ffile-prefix-map``, no build date, stripped binaries, normalised mtimes).

The tree's ``python/bin/python3.X`` is a static interpreter whose main() ignores the
environment (``csrc/isolated_main.c``), with OpenSSL, libffi, zlib, bzip2, xz, SQLite,
expat, mpdecimal and libuuid linked into its extension modules: the only shared
libraries it needs are glibc's.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from isolate.bundle import elf
from isolate.cache import cache_root
from isolate.errors import CommandFailed, EnvironmentProblem, InputError
from isolate.fsutil import sha256_file
from isolate.model import tree
from isolate.proc import Runner, clean_env
from isolate.pybuild import recipes, selftest
from isolate.pybuild.lock import InterpreterLock, Source
from isolate.pybuild.toolchain import ARCH_TRIPLES, find_zig, parse_glibc, write_wrappers

FORMAT = 1  # bump when the layout of a cached interpreter changes
BUILD_EPOCH = recipes.BUILD_EPOCH
MAPPED_BUILD_DIR = "/build"  # what the build directory is called inside the binaries
INSTALL_PREFIX = recipes.INSTALL_PREFIX
GLIBC_LIBS = frozenset({"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2",
                        "librt.so.1", "libutil.so.1", "ld-linux-x86-64.so.2",
                        "ld-linux-aarch64.so.1"})
_LOG_TAIL = 30


@dataclass(frozen=True, kw_only=True, slots=True)
class BuiltInterpreter:
    """A cached source-built CPython."""

    root: Path  # <cache>/interpreters/<id>
    info: dict[str, Any]  # build-info.json
    cached: bool  # True when it was there already

    @property
    def home(self) -> Path:
        return self.root / "python"

    @property
    def executable(self) -> Path:
        return self.home / "bin" / f"python{self.info['python']}"


def input_key(lock: InterpreterLock, *, glibc: str, arch: str, compiler_version: str) -> str:
    """The hash of every input of a build."""
    h = hashlib.sha256()
    parts = {
        "format": FORMAT, "lock": lock.sha256, "glibc": glibc, "arch": arch,
        "compiler": f"{lock.compiler} {compiler_version}",
        # How each source is built; a change to the builder's own output (its layout,
        # what it scrubs) bumps FORMAT instead.
        "recipes": sha256_file(Path(recipes.__file__)),
        "main": sha256_file(recipes.ISOLATED_MAIN),
    }
    h.update(json.dumps(parts, sort_keys=True).encode())
    return h.hexdigest()


def interpreter_dir_name(lock: InterpreterLock, glibc: str, arch: str, key: str) -> str:
    return f"cpython-{lock.version}-{arch}-glibc{glibc}-{key[:16]}"


def find_cached(lock: InterpreterLock, *, glibc: str, arch: str = "x86_64",
                cache: Path | None = None) -> BuiltInterpreter | None:
    zig_version = lock.compiler_version
    key = input_key(lock, glibc=glibc, arch=arch, compiler_version=zig_version)
    root = (cache or cache_root()) / "interpreters" / interpreter_dir_name(lock, glibc, arch, key)
    info = root / "build-info.json"
    if info.is_file():
        try:
            return BuiltInterpreter(root=root, info=json.loads(info.read_text()), cached=True)
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- sources


def fetch_source(source: Source, cache: Path, *, timeout: float = 120,
                 lock_name: str = "interpreter lock", key: str = "sources") -> Path:
    """The tarball of ``source``, downloaded once into ``<cache>/sources`` and hash-checked.

    A download whose sha256 differs from the lock is deleted and refused; nothing with a
    wrong hash is ever kept.
    """
    d = cache / "sources" / source.sha256
    path = d / source.filename
    if path.is_file() and sha256_file(path) == source.sha256:
        return path
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{source.filename}.{os.getpid()}.part"
    h = hashlib.sha256()
    try:
        req = urllib.request.Request(source.url, headers={"User-Agent": "isolate"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(tmp, "wb") as out:
            while chunk := resp.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(
            f"cannot download the {source.name} {source.version} source: {source.url}: "
            f"HTTP {exc.code}",
            hint="the archive no longer serves this file: pin a version it serves in the "
                 f"{lock_name} (see its header)") from exc
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise EnvironmentProblem(
            f"cannot download the {source.name} {source.version} source {source.url}: {reason}",
            hint="check the network, or put the file into " + str(d)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    actual = h.hexdigest()
    if actual != source.sha256:
        tmp.unlink(missing_ok=True)
        raise InputError(
            f"the {source.name} source {source.filename} does not match the {lock_name}",
            details=f"  url:      {source.url}\n  expected: {source.sha256}\n"
                    f"  got:      {actual}",
            hint="nothing was kept; if the lock is right the download was tampered with, "
                 f"else correct {key}.{source.name}.sha256 in the lock")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- building


class _Log:
    def __init__(self, path: Path):
        self.path = path
        self._f = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115

    def write(self, text: str) -> None:
        self._f.write(text)
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def tail(self, lines: int = _LOG_TAIL) -> str:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def _unpack(runner: Runner, tarball: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    runner.run(["tar", "-xf", tarball, "-C", dest, "--strip-components=1", "--no-same-owner"],
               timeout=600, what=f"unpacking {tarball.name}")


def _run_steps(runner: Runner, name: str, steps: list[recipes.Step], env: dict[str, str],
               log: _Log) -> None:
    for step in steps:
        log.write(f"\n### {name}: (cd {step.cwd} && {' '.join(step.argv)})\n")
        done = runner.run(step.argv, cwd=step.cwd, env={**env, **step.env}, timeout=3600,
                          check=False)
        log.write(done.stdout)
        log.write(done.stderr)
        if not done.ok:
            reason = "timed out" if done.timed_out else f"exit code {done.returncode}"
            raise CommandFailed(f"building {name} failed: {' '.join(step.argv[:3])} ({reason})")


def _scrub_text(root: Path, replacements: list[tuple[bytes, bytes]]) -> list[str]:
    """Replace build paths in text files; return the binary files that still hold one."""
    left: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_symlink():
                continue
            data = p.read_bytes()
            if not any(old in data for old, _new in replacements):
                continue
            if b"\0" in data:
                left.append(p.relative_to(root).as_posix())
                continue
            for old, new in replacements:
                data = data.replace(old, new)
            p.write_bytes(data)
    return sorted(left)


def _normalise(root: Path) -> None:
    """No byte code, fixed modes and mtimes: the tree is a function of its inputs."""
    for dirpath, dirs, files in os.walk(root, topdown=False):
        for f in files:
            p = Path(dirpath) / f
            if f.endswith((".pyc", ".pyo")):
                p.unlink()
                continue
            if not p.is_symlink():
                mode = p.stat().st_mode
                p.chmod(tree.normal_mode(mode))
            os.utime(p, (BUILD_EPOCH, BUILD_EPOCH), follow_symlinks=False)
        for d in dirs:
            p = Path(dirpath) / d
            if d == "__pycache__":
                shutil.rmtree(p)
                continue
            if not p.is_symlink():
                p.chmod(tree.DIR_MODE)
            os.utime(p, (BUILD_EPOCH, BUILD_EPOCH), follow_symlinks=False)
    os.utime(root, (BUILD_EPOCH, BUILD_EPOCH))


def tree_digest(root: Path) -> str:
    """sha256 over every path, mode, link target and content under ``root``, sorted.

    Byte code is not part of the tree: the build removes it, running the interpreter in
    place writes it back (its ``main()`` ignores PYTHONDONTWRITEBYTECODE), and a bundle
    never copies it but compiles its own.
    """
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            p = Path(dirpath) / f
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                h.update(f"L {rel} {os.readlink(p)}\n".encode())
            else:
                h.update(f"F {rel} {p.stat().st_mode & 0o777:o} {sha256_file(p)}\n".encode())
    return h.hexdigest()


def _elf_facts(home: Path) -> dict[str, Any]:
    files = [elf.read_elf(p) for p in elf.iter_elf_files(home)]
    floor = elf.glibc_floor(files, home)
    foreign = sorted({f"{elf.relative_path(e.path, home)}: {n}" for e in files for n in e.needed
                      if n not in GLIBC_LIBS})
    return {
        "elf_files": len(files),
        "glibc_floor": floor[0] if floor else None,
        "glibc_floor_file": floor[1] if floor else None,
        "glibc_floor_symbol": floor[2] if floor else None,
        "needed": sorted({n for e in files for n in e.needed}),
        "foreign_needed": foreign,
    }


def _dir_size(root: Path) -> int:
    return sum((Path(d) / f).lstat().st_size for d, _s, fs in os.walk(root) for f in fs)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(path)):
        yield


def build_interpreter(
    lock: InterpreterLock, *, glibc: str | None = None, arch: str = "x86_64",
    runner: Runner, cache: Path | None = None, jobs: int | None = None,
    run_selftest: bool = True, step: Callable[[str], None] | None = None,
) -> BuiltInterpreter:
    """The cached interpreter for ``lock`` and ``glibc``; built first when missing."""
    cache = cache or cache_root()
    glibc = glibc or lock.glibc
    parse_glibc(glibc, arch=arch)
    if arch not in ARCH_TRIPLES:
        raise InputError(f"arch {arch!r}: isolate builds CPython for "
                         f"{', '.join(ARCH_TRIPLES)} only")
    say = step or (lambda _text: None)
    found = find_cached(lock, glibc=glibc, arch=arch, cache=cache)
    if found is not None:
        return found
    zig, zig_version = find_zig(lock.compiler_version)
    key = input_key(lock, glibc=glibc, arch=arch, compiler_version=zig_version)
    base = cache / "interpreters"
    name = interpreter_dir_name(lock, glibc, arch, key)
    final = base / name
    with _lock(base / f".cpython-{lock.version}-{arch}-glibc{glibc}.lock"):
        found = find_cached(lock, glibc=glibc, arch=arch, cache=cache)
        if found is not None:  # another process built it while we waited
            return found
        # The same directory for every build of this version and target: the zig cache
        # (keyed by each compile's arguments, which name it) serves a rebuild after a
        # recipe change. Builds of one version and target take turns (the lock).
        work = base / f".build-cpython-{lock.version}-{arch}-glibc{glibc}"
        if work.exists():
            shutil.rmtree(work)  # a killed build's leftovers
        work.mkdir(parents=True)
        logs = base / "logs"
        logs.mkdir(exist_ok=True)
        log = _Log(work / "build.log")
        try:
            built = _build(lock, glibc=glibc, arch=arch, runner=runner, cache=cache, work=work,
                           zig=zig, zig_version=zig_version, key=key, jobs=jobs or
                           (os.cpu_count() or 1), run_selftest=run_selftest, log=log, say=say)
            log.close()
            shutil.copyfile(work / "build.log", built / "build.log")
            os.utime(built / "build.log", (BUILD_EPOCH, BUILD_EPOCH))
            os.rename(built, final)
        except CommandFailed as exc:
            if exc.details:  # a check of the result, not a command: say what it found
                log.write(f"\n### {exc.message}\n{exc.details}\n")
            log.close()
            kept = logs / f"{name}.failed.log"
            shutil.copyfile(work / "build.log", kept)
            raise CommandFailed(exc.message, details=exc.details or log.tail(),
                                hint=f"the whole log is {kept}; nothing was cached") from exc
        except BaseException:
            log.close()
            with contextlib.suppress(OSError):
                shutil.copyfile(work / "build.log", logs / f"{name}.failed.log")
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    result = find_cached(lock, glibc=glibc, arch=arch, cache=cache)
    assert result is not None
    return BuiltInterpreter(root=result.root, info=result.info, cached=False)


def _build(lock: InterpreterLock, *, glibc: str, arch: str, runner: Runner, cache: Path,
           work: Path, zig: Path, zig_version: str, key: str, jobs: int, run_selftest: bool,
           log: _Log, say: Callable[[str], None]) -> Path:
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    say("sources")
    tarballs = {s.name: fetch_source(s, cache) for s in lock.sources}
    seconds["download"] = time.monotonic() - t0
    target = f"{ARCH_TRIPLES[arch]}.{glibc}"
    tools = write_wrappers(zig, zig_version, target, work / "tools", cache / "zig",
                           prefix_map=(work, MAPPED_BUILD_DIR))
    deps = work / "deps"
    stage = work / "stage"
    cflags = "-O2 -fPIC"
    tool_env = tools.env(os.environ.get("PATH", "/usr/bin:/bin"))
    env = clean_env({
        **tool_env, "CFLAGS": cflags, "SOURCE_DATE_EPOCH": str(BUILD_EPOCH),
        "TZ": "UTC", "LC_ALL": "C", "PKG_CONFIG_LIBDIR": f"{deps}/lib/pkgconfig",
        "PKG_CONFIG_PATH": "", "MAKEFLAGS": "", "ZERO_AR_DATE": "1",
    })
    def one(name: str) -> None:
        source = lock.source(name)
        t = time.monotonic()
        say(f"{name} {source.version}")
        src = work / "src" / name
        _unpack(runner, tarballs[name], src)
        ctx = recipes.Context(src=src, prefix=deps, jobs=jobs, cflags=cflags,
                              tools=tool_env, arch=arch, destdir=stage)
        if name == "cpython":
            recipes.patch_cpython(src)
        steps = getattr(recipes, name)(ctx)
        part = _Log(work / "logs" / f"{name}.log")
        try:
            _run_steps(runner, f"{name} {source.version}", steps, env, part)
        finally:
            part.close()
            log.write(part.path.read_text(encoding="utf-8", errors="replace"))
        seconds[name] = time.monotonic() - t

    (work / "logs").mkdir()
    # The dependencies do not need each other: build them side by side (configure
    # scripts are serial, so two at a time keep the cores busy), then CPython.
    with ThreadPoolExecutor(max_workers=max(1, min(2, jobs))) as pool:
        futures = [pool.submit(one, n) for n in recipes.ORDER if n != "cpython"]
        errors = [f.exception() for f in futures]
    failed = next((e for e in errors if e is not None), None)
    if failed is not None:
        raise failed
    one("cpython")
    out = work / "publish"
    home = out / "python"
    out.mkdir()
    os.rename(stage / INSTALL_PREFIX.lstrip("/"), home)
    xy = lock.python
    for extra in ("share",):  # man pages
        shutil.rmtree(home / extra, ignore_errors=True)
    # Objects for embedding CPython into another program: no runtime links them, and
    # they carry the compiler's record of the build directory.
    for leftover in sorted(home.glob(f"lib/python{xy}/config-{xy}*/*")):
        if leftover.suffix in (".o", ".a"):
            leftover.unlink()
    # The tools were the build's wrappers; a runtime's sysconfig names plain ones.
    replacements = [(f"{tools.bin_dir}/".encode(), b""), (str(work).encode(),
                                                           MAPPED_BUILD_DIR.encode())]
    leaks = _scrub_text(home, replacements)
    if leaks:
        raise CommandFailed("the built interpreter still holds the build directory's path",
                            details="\n".join(f"  {p}" for p in leaks))
    missing = _missing_modules(runner, home / "bin" / f"python{xy}")
    if missing:
        raise CommandFailed(f"CPython {lock.version} built without these modules: "
                            f"{', '.join(missing)}",
                            details=log.tail(60))
    facts = _elf_facts(home)
    if facts["foreign_needed"]:
        raise CommandFailed("the built interpreter needs shared libraries other than glibc's",
                            details="\n".join(f"  {x}" for x in facts["foreign_needed"]))
    seconds["total"] = time.monotonic() - t0
    tests: dict[str, Any] | None = None
    _normalise(home)
    if run_selftest:
        say("self-test (CPython's own tests)")
        t = time.monotonic()
        tests = selftest.run(runner, home / "bin" / f"python{xy}", jobs=jobs,
                             scratch=work / "selftest")
        seconds["selftest"] = time.monotonic() - t
        _normalise(home)  # the tests must leave no byte code behind
        if tests["failed"]:
            raise CommandFailed(
                f"CPython's own tests failed on the built interpreter: {tests['failed']} failed",
                details=tests["tail"])
    info = {
        "format": FORMAT,
        "python": xy,
        "version": lock.version,
        "arch": arch,
        "glibc_target": glibc,
        "compiler": f"{lock.compiler} {zig_version}",
        "key": key,
        "dir_name": interpreter_dir_name(lock, glibc, arch, key),
        "lock": str(lock.path),
        "lock_sha256": lock.sha256,
        "sources": {s.name: {"version": s.version, "sha256": s.sha256} for s in lock.sources},
        **facts,
        "size_bytes": _dir_size(home),
        "tree_sha256": tree_digest(home),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "selftest": tests,
    }
    (out / "build-info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return out


_MODULES = ("ssl", "_hashlib", "sqlite3", "lzma", "bz2", "zlib", "ctypes", "_decimal",
            "pyexpat", "_elementtree", "uuid", "_uuid", "_ctypes", "binascii", "select",
            "_socket", "_json", "_pickle", "_datetime", "_multiprocessing", "_posixsubprocess",
            "unicodedata", "_struct", "mmap", "fcntl", "grp")
_MODULES_PROBE = "modules_probe.py"  # runs under the built interpreter: which do not import


def _missing_modules(runner: Runner, exe: Path) -> list[str]:
    code = importlib.resources.files("isolate.pybuild").joinpath(_MODULES_PROBE).read_text(
        encoding="utf-8")
    done = runner.run([exe, "-B", "-c", code, *_MODULES], env=clean_env(), timeout=120,
                      check=False)
    if not done.ok:
        return [f"(the interpreter does not start: {done.tail(5)})"]
    missing: list[str] = json.loads(done.stdout)
    return missing


def known_versions(lock_dir_files: dict[str, Path]) -> list[str]:
    out = []
    for stem in lock_dir_files:
        m = re.match(r"^cpython-(3\.\d+)$", stem)
        if m:
            out.append(m.group(1))
    return sorted(out, key=lambda v: tuple(int(p) for p in v.split(".")))
