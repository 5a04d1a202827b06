"""``isolate bundle``: lock -> a relocatable runtime directory and/or archive.

The stages run in a temporary directory inside the output directory and the result is
renamed into place at the end, so an interrupted build leaves the previous output
intact and no partial one. One build at a time per output directory (a file lock);
leftovers of killed builds are removed when the next build starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import os
import shutil
import stat
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import filelock
from packaging.utils import canonicalize_name

from isolate import __version__
from isolate.bundle import archive_format, contract, elf
from isolate.bundle.archive import write_archive
from isolate.bundle.archive_format import ZSTD_LEVEL, ZSTD_LEVELS
from isolate.bundle.bytecode import Compiler, CompileStats, bytecode_tag, sources
from isolate.bundle.elf_cache import ElfCache
from isolate.bundle.elf_closure import ClosureResult, close_tree, system_search_dirs
from isolate.bundle.fetch import Artifact, Fetcher, Target, check_hash
from isolate.bundle.hostlib_copies import vendored_copies
from isolate.bundle.install import Installed
from isolate.bundle.interpreter import (
    CopiedInterpreter,
    SourceInterpreter,
    copy_interpreter,
    describe,
    find_source,
)
from isolate.bundle.isolated_main import BUILT_IN, make_isolated
from isolate.bundle.launchers import python_launcher, script_launcher
from isolate.bundle.native import NativeTarget, native_wheel
from isolate.bundle.store import Layout, PlaceResult, WheelStore, placed_sha256
from isolate.bundle.unpack import unpack
from isolate.bundle.wheelhouse import wheel_from_sdist
from isolate.cache import cache_root
from isolate.errors import EnvironmentProblem, InputError
from isolate.fsutil import ensure_writable_dir, sha256_file, write_atomic
from isolate.interpreters import Discovery
from isolate.locking.backends import IndexOptions
from isolate.locking.lock import lock_inputs, read_lock
from isolate.model import tree
from isolate.model.hostlibs import library_floors
from isolate.model.lock import LockFile, Pin
from isolate.model.manifest import (
    MANIFEST_NAME,
    Contract,
    Distribution,
    ElfFacts,
    FileEntry,
    Interpreter,
    Manifest,
    VendoredLib,
)
from isolate.model.profiles import HostProfile, RuntimeProfile
from isolate.package.payload import FORMATS as PACKAGE_FORMATS
from isolate.package.payload import check_request, package_info
from isolate.proc import Runner
from isolate.profiles import LoadedRuntime
from isolate.progress import NoProgress, Progress
from isolate.pybuild.devpackages import DevPackages, load_dev_packages

FORMATS = ("dir", "tar.zst", "tar.gz", *PACKAGE_FORMATS)
FETCH_JOBS = 8  # downloads at a time


@dataclass(frozen=True, kw_only=True, slots=True)
class BundleOptions:
    output_dir: Path
    formats: tuple[str, ...] = ("tar.zst",)
    python: str | None = None  # an executable or an install_only archive
    # The source provider: the interpreter lock to build CPython from (``source:X.Y``, or
    # ``interpreter = "source"`` in the profile); ``python`` is then ignored.
    interpreter_lock: Path | None = None
    index: IndexOptions = field(default_factory=IndexOptions)
    include_headers: bool = False
    tests_overlay: bool = True
    jobs: int = 4
    # A directory filled by `isolate fetch`: a find-links source (the caller adds it to
    # ``index``) and where wheels built from sdists are found (built/<sdist sha256>/).
    wheelhouse: Path | None = None
    # No index at all (``index.index_url`` must be None); whatever would need the network
    # is an error that says to run `isolate fetch` first.
    offline: bool = False
    # The hosts the profile's [target] hosts resolve to (``Catalog.required_hosts``): the
    # runtime must be predicted compatible with each, except those in allow_incompatible.
    required_hosts: tuple[HostProfile, ...] = ()
    allow_incompatible: tuple[str, ...] = ()
    # Where a .deb or .rpm installs the runtime (default: the profile's package.prefix,
    # else /opt/<package name>).
    package_prefix: str | None = None
    zstd_level: int = ZSTD_LEVEL
    # The development-packages locks the profile's [native_builds] name (name -> file).
    dev_packages: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class BundleResult:
    name: str
    manifest: Manifest
    directory: Path | None
    archives: tuple[tuple[Path, str], ...]  # (path, sha256)
    packages: tuple[tuple[Path, str], ...]  # (.deb/.rpm path, sha256)
    overlay: Path | None
    seconds: dict[str, float]


def fresh_lock(loaded: LoadedRuntime, path: Path, kind: str) -> LockFile:
    """The lock at ``path``, refused when missing or made from another profile."""
    lf = read_lock(path)
    want = lock_inputs(loaded, kind)
    if lf.inputs is None or lf.inputs_sha256 != want.sha256:
        changes = want.describe_changes(lf.inputs) if lf.inputs else ["no isolate header"]
        raise InputError(
            f"the lock {path} is stale: the runtime profile changed since it was made",
            details="\n".join(f"  {c}" for c in changes),
            hint=f"run `isolate lock {loaded.profile.name}` first",
        )
    return lf


def target_of(profile: RuntimeProfile) -> Target:
    """What the artifacts must fit: the profile's Python, arch and glibc floor."""
    glibc = tuple(int(p) for p in profile.glibc.split(".")[:2])
    return Target(python=profile.python_tuple, arch=profile.arch, glibc=(glibc[0], glibc[1]))


@contextlib.contextmanager
def _build_dir(output_dir: Path) -> Iterator[Path]:
    """A private work directory in ``output_dir``, under the directory's build lock."""
    ensure_writable_dir(output_dir, what="output directory")
    with filelock.FileLock(str(output_dir / ".isolate-build.lock")):
        for stale in output_dir.glob(tree.BUILD_MARKER + "*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed build
        for tmp in output_dir.glob(".*.tmp"):  # archives and files a killed build was writing
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink(missing_ok=True)
        work = output_dir / f"{tree.BUILD_MARKER}{os.getpid()}"
        try:
            work.mkdir()
            try:
                yield work
            finally:
                shutil.rmtree(work, ignore_errors=True)
        except OSError as exc:
            full = _disk_full(exc)
            if full is None:
                raise
            raise EnvironmentProblem(
                f"cannot build in the output directory {output_dir}: "
                f"{os.strerror(errno.ENOSPC)} (writing {full})",
                hint="free space there, or choose an output directory on a larger disk (-o)",
            ) from exc


def _disk_full(exc: OSError) -> str | None:
    """The file being written when ``exc`` says the disk is full (or the quota spent)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return str(exc.filename2 or exc.filename or "")
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        for item in exc.args[0]:  # copytree: (source, destination, reason) per failure
            if len(item) == 3 and ("No space left" in str(item[2])
                                   or "Disk quota exceeded" in str(item[2])):
                return str(item[1])
    return None


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False
    when the system or the file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _normalise_modes(root: Path) -> None:
    """Directories 0755, files 0755 or 0644: what a build ships never follows the umask."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, tree.DIR_MODE)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            mode = tree.normal_mode(st.st_mode)
            if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
                os.chmod(path, mode)


def _publish_dir(src: Path, dest: Path) -> None:
    """Replace ``dest`` with ``src``: never a moment with a partial or missing ``dest``."""
    if (dest.exists() or dest.is_symlink()) and _exchange(src, dest):
        shutil.rmtree(src, ignore_errors=True)  # the old tree, now in the work directory
    elif dest.exists() or dest.is_symlink():
        trash = dest.with_name(f"{tree.BUILD_MARKER}old-{os.getpid()}-{dest.name}")
        os.replace(dest, trash)
        os.replace(src, dest)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dest)


class Builder:
    def __init__(self, *, runner: Runner, discovery: Discovery, progress: Progress | None = None):
        self.runner = runner
        self.discovery = discovery
        self.progress = progress or NoProgress()
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def _timed(self, name: str, total: int | None = None) -> Iterator[None]:
        self.progress.step(name, total)
        start = time.monotonic()
        yield
        self.timings[name] = round(time.monotonic() - start, 3)

    # -- artifacts ----------------------------------------------------------------------
    def _fetch_and_place(self, pins: tuple[Pin, ...], target: Target, options: BundleOptions,
                         offline_hint: str | None, *, root: Path, layout: Layout,
                         python: Path, compiler: Compiler | None, what: str,
                         native: _Native | None = None,
                         ) -> tuple[list[tuple[Artifact, Path, str | None]], PlaceResult]:
        """Download (or build) each pin's wheel and install it below ``root`` from the
        store, each wheel as soon as it is there: installing and compiling overlap with
        the downloads. Returns (artifact, wheel path, sdist sha256 when built) per pin,
        all hash-checked, and what placing did."""
        fetcher = Fetcher(options.index, cache_root(), offline_hint=offline_hint)
        got: list[tuple[Artifact, Path, str | None] | None] = [None] * len(pins)
        building = threading.Lock()  # wheels are built from sdists one at a time

        def one(i: int, pin: Pin) -> tuple[Path, str]:
            art = fetcher.fetch_one(pin, target)
            check_hash(art.pin, sha256_file(art.path), art.path.name)  # again, before use
            devs = native.devs_of(art.pin.name) if native else ()
            wheel, built = art.path, None
            if devs and native is not None:
                if art.is_wheel:
                    raise InputError(
                        f"{art.pin.key}: [native_builds] compiles it from its sdist, but the "
                        f"lock's artifact for the target is a wheel ({art.path.name})",
                        hint="drop it from [native_builds], or lock its sdist only")
                with building:
                    wheel, built = native_wheel(
                        art, target=native.target, devs=devs, index=options.index,
                        runner=self.runner, cache=cache_root(), progress=self.progress,
                        offline_hint=offline_hint), art.sha256
            elif not art.is_wheel:
                with building:
                    wheel, built = wheel_from_sdist(
                        art, index=options.index, python=target.python, runner=self.runner,
                        discovery=self.discovery, progress=self.progress,
                        wheelhouse=options.wheelhouse, offline_hint=offline_hint), art.sha256
            got[i] = (art, wheel, built)
            return wheel, (sha256_file(wheel) if built else art.sha256)

        store = WheelStore(cache_root(), layout, python=python, runner=self.runner,
                           jobs=options.jobs)
        with ThreadPoolExecutor(max_workers=FETCH_JOBS) as downloads:
            futures = [downloads.submit(one, i, pin) for i, pin in enumerate(pins)]
            try:
                result = store.place(futures, root, compiler=compiler,
                                     on_placed=self.progress.advance)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        if result.compile is not None:
            self._note_compile(result.compile)
        self.progress.note(
            f"{what}: {len(pins)} wheels, {result.reused} placed from the store, "
            f"{result.added} installed into it"
            + (f", {result.repaired} store entries failed their check and were made again"
               if result.repaired else ""))
        return [g for g in got if g is not None], result

    # -- the build ----------------------------------------------------------------------
    def build(self, loaded: LoadedRuntime, *, lock_path: Path, tests_lock_path: Path,
              options: BundleOptions) -> BundleResult:
        profile = loaded.profile
        for fmt in options.formats:
            if fmt not in FORMATS:
                raise InputError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
        check_request(profile, options.formats, prefix=options.package_prefix,
                      where=str(loaded.path))
        if not ZSTD_LEVELS[0] <= options.zstd_level <= ZSTD_LEVELS[1]:
            raise InputError(f"--zstd-level {options.zstd_level} is out of range",
                             hint=f"use {ZSTD_LEVELS[0]} to {ZSTD_LEVELS[1]}")
        lock = fresh_lock(loaded, lock_path, "runtime")
        tests_lock = (fresh_lock(loaded, tests_lock_path, "tests")
                      if options.tests_overlay and profile.tests.requirements else None)
        target = target_of(profile)
        offline_hint = None
        if options.offline:
            if options.index.index_url is not None:
                raise InputError("an offline build takes no index",
                                 hint="drop --index-url, or drop --offline")
            wh = options.wheelhouse or "DIR"
            offline_hint = (f"run `isolate fetch {profile.name} --wheelhouse {wh}` where there "
                            "is network first, then build offline again")
        if options.wheelhouse is not None and not options.wheelhouse.is_dir():
            raise InputError(f"the wheelhouse {options.wheelhouse} does not exist",
                             hint=f"run `isolate fetch {profile.name} --wheelhouse "
                                  f"{options.wheelhouse}` first")
        out = options.output_dir
        with _build_dir(out) as work, contextlib.ExitStack() as stack:
            root = work / "bundle"
            root.mkdir()
            with self._timed("interpreter"):
                native_target = None
                if options.interpreter_lock is not None:
                    src, native_target = self._source_built(options.interpreter_lock, profile)
                else:
                    src = find_source(self.runner, self.discovery, profile.python,
                                      options.python, work / "source", unpack)
                interp = copy_interpreter(src, root / "python",
                                          include_headers=options.include_headers,
                                          runner=self.runner)
                isolated = make_isolated(src, interp, runner=self.runner, cache=cache_root())
                self.progress.note(
                    "interpreter: isolated by itself, kept" if isolated.how == BUILT_IN else
                    "interpreter: isolated main " + ("from the cache" if isolated.cached
                                                     else "compiled"))
            magic_tag = bytecode_tag(interp.executable, self.runner)
            compiler = stack.enter_context(Compiler(
                interp.executable, cache=cache_root(), runner=self.runner, tag=magic_tag))
            # the interpreter's own byte code, on the compiler's workers while downloading
            stdlib_code = compiler.submit(root, sources([interp.stdlib],
                                                        (interp.site_packages,)))
            with self._timed("download + install", len(lock.pins)):
                layout = _layout(root, magic_tag, home=interp.home, site=interp.site_packages,
                                 compile_dir=interp.stdlib, python_name=interp.executable.name)
                wheels, placed = self._fetch_and_place(
                    lock.pins, target, options, offline_hint, root=root, layout=layout,
                    python=interp.executable, compiler=compiler, what="runtime",
                    native=_native_builds(profile, options, native_target))
                installed = placed.installed
            with self._timed("compile"):
                # the interpreter's own byte code, compiled while downloading
                self._note_compile(stdlib_code.result())
            # before the ELF closure, which may patch the interpreter its workers run
            compiler.close()
            scripts = self._launchers(loaded, root, interp, installed)
            copies = vendored_copies(interp.site_packages,
                                     [h.soname for h in profile.host_libraries])
            if copies:
                raise InputError(
                    "a wheel carries its own copy of a library the runtime profile declares "
                    "host-provided",
                    details="\n".join(
                        f"  {interp.site_packages.relative_to(root).as_posix()}/{f} is a copy "
                        f"of {s}" for f, s in copies),
                    hint="the host's library must be used: build that distribution from its "
                         "sdist ([native_builds]) or pin a wheel that does not vendor it")
            with self._timed("elf closure"), ElfCache(cache_root() / "elf") as facts:
                closure = close_tree(
                    root, lib_dir=tree.VENDORED_LIB_DIR,
                    search_dirs=[src.libdir, *system_search_dirs()],
                    allowlist=elf.load_allowlist(),
                    host_provided=frozenset(h.soname for h in profile.host_libraries)
                    | _dev_provided(options),
                    runner=self.runner, cache=facts,
                    known_sha256=functools.partial(placed_sha256, placed.placed))
            self._note_facts(closure, facts)
            _check_host_libraries(profile, options, closure)
            if closure.unresolved:
                raise InputError(
                    "shared libraries needed by the bundle were not found on this machine",
                    details="\n".join(f"  {f} needs {s}" for f, s in closure.unresolved),
                    hint="install them here so they can be vendored, or declare them as "
                         "[[host_libraries]] in the runtime profile",
                )
            elf_facts = _elf_facts(profile, closure)
            for h in elf_facts.host_floors:
                if not h.needed_by:
                    # (no brackets: the terminal view reads them as markup)
                    self.progress.note(f"warning: the host library {h.soname} is declared by "
                                       "the runtime profile but no ELF file of the runtime "
                                       "needs it")
            agreed = self._check_contract(loaded, options, root, interp, wheels, closure,
                                          elf_facts)
            overlay_root = None
            if tests_lock is not None:
                with self._timed("tests overlay", len(tests_lock.pins)):
                    overlay_root = self._overlay(tests_lock, target, options, interp, work,
                                                 offline_hint, magic_tag)
            with self._timed("manifest"):
                manifest = self._manifest(loaded, lock_path, tests_lock_path if tests_lock else
                                          None, root, interp, wheels, installed, scripts,
                                          elf_facts, agreed, src_prefixes=interp.source_prefixes,
                                          isolated=isolated.how, placed=placed.placed)
            return self._publish(loaded, manifest, root, overlay_root, options)

    def _source_built(self, lock_path: Path,
                      profile: RuntimeProfile) -> tuple[SourceInterpreter, NativeTarget]:
        """CPython built from the interpreter lock (cached), described for the copy."""
        from isolate.pybuild.build import build_interpreter
        from isolate.pybuild.lock import load_interpreter_lock

        ilock = load_interpreter_lock(lock_path)
        if ilock.python != profile.python:
            raise InputError(
                f"the interpreter lock {lock_path} builds CPython {ilock.python}, but the "
                f"runtime profile {profile.name!r} asks for {profile.python}",
                hint=f"use source:{profile.python}, or change the profile's python")
        built = build_interpreter(ilock, arch=profile.arch, runner=self.runner,
                                  step=lambda text: self.progress.note(
                                      f"building CPython: {text}"))
        info = built.info
        native = NativeTarget(python=built.executable, key=str(info["key"]),
                              glibc=str(info["glibc_target"]), arch=str(info["arch"]),
                              compiler_version=ilock.compiler_version)
        return describe(self.runner, built.executable,
                        source=f"source:{info['version']} (glibc {info['glibc_target']}, "
                               f"{info['compiler']}, inputs {info['key'][:16]})"), native

    def _check_contract(self, loaded: LoadedRuntime, options: BundleOptions, root: Path,
                        interp: CopiedInterpreter,
                        wheels: list[tuple[Artifact, Path, str | None]],
                        closure: ClosureResult, elf_facts: ElfFacts) -> Contract:
        """Refuse a tree that breaks the profile's floors or misses a required host."""
        profile = loaded.profile
        site_rel = interp.site_packages.relative_to(root).as_posix()
        by_file: dict[str, str] = {}
        for _art, wheel, _built in wheels:
            try:
                with zipfile.ZipFile(wheel) as zf:
                    for name in zf.namelist():
                        by_file[f"{site_rel}/{name}"] = f"wheel {wheel.name}"
            except (OSError, zipfile.BadZipFile):
                continue  # installed already, so readable; a name is only a courtesy
        for v in closure.vendored:
            by_file[v.dest] = f"vendored from {v.origin} (needed by {', '.join(v.needed_by)})"
        origins = contract.Origins(by_file=by_file,
                                   default=f"the interpreter ({interp.source})")
        contract.check_floors(profile, loaded.path, closure.file_floors, origins)
        allowed = contract.check_hosts(
            profile, loaded.path, arch=profile.arch, elf=elf_facts,
            python_version=interp.version, required=options.required_hosts,
            allow=options.allow_incompatible)
        return Contract(target=profile.ceilings, required_hosts=profile.hosts,
                        resolved_hosts=tuple(h.id for h in options.required_hosts),
                        allowed_incompatible=allowed)

    def _launchers(self, loaded: LoadedRuntime, root: Path, interp: CopiedInterpreter,
                   installed: list[Installed]) -> tuple[str, ...]:
        profile = loaded.profile
        by_name = {s[0]: s for inst in installed for s in inst.console_scripts}
        if profile.scripts is None:
            top = set(profile.top_level_names)
            chosen = [s for inst in installed if inst.name in top for s in inst.console_scripts]
        else:
            missing = [n for n in profile.scripts if n not in by_name]
            if missing:
                raise InputError(
                    f"{loaded.path}: scripts: {', '.join(missing)} is not a console script of "
                    "any installed distribution",
                    hint=f"known console scripts: {', '.join(sorted(by_name)) or 'none'}",
                )
            chosen = [by_name[n] for n in profile.scripts]
        bin_dir = root / "bin"
        bin_dir.mkdir()
        python_rel = os.path.relpath(interp.executable, bin_dir)
        (bin_dir / "python3").write_text(python_launcher(python_rel))
        (bin_dir / "python3").chmod(0o755)
        for name, module, attr in chosen:
            path = bin_dir / name
            path.write_text(script_launcher(python_rel, module, attr))
            path.chmod(0o755)
        return tuple(sorted(s[0] for s in chosen))

    def _note_facts(self, closure: ClosureResult, facts: ElfCache) -> None:
        counts = facts.counts
        self.progress.note(
            f"elf closure: {closure.elf_files} ELF files, {len(closure.patched)} patched, "
            f"{len(closure.vendored)} vendored; ELF facts {counts.cached} from the cache, "
            f"{counts.parsed} parsed"
            + (f" (not from the cache: {counts.ignored})" if counts.ignored else ""))

    def _note_compile(self, stats: CompileStats) -> None:
        self.progress.note(f"byte code: {stats.files} files, {stats.cached} from the cache, "
                           f"{stats.compiled} compiled, {stats.failed} not Python 3 source")

    def _overlay(self, tests_lock: LockFile, target: Target, options: BundleOptions,
                 interp: CopiedInterpreter, work: Path, offline_hint: str | None,
                 magic_tag: tuple[str, str]) -> Path:
        """The test requirements, installed apart from the runtime."""
        root = work / "overlay"
        site = root / "site-packages"
        site.mkdir(parents=True)
        layout = _layout(root, magic_tag, home=root, site=site, compile_dir=site,
                         python_name=os.path.relpath(interp.executable, root / "bin"))
        self._fetch_and_place(tests_lock.pins, target, options, offline_hint, root=root,
                              layout=layout, python=interp.executable, compiler=None,
                              what="tests overlay")
        # The matrix adds only site-packages to the runtime's path; console scripts of
        # test tools could not find the interpreter from a published overlay anyway.
        shutil.rmtree(root / "bin", ignore_errors=True)
        return root

    def _manifest(self, loaded: LoadedRuntime, lock_path: Path, tests_lock_path: Path | None,
                  root: Path, interp: CopiedInterpreter,
                  wheels: list[tuple[Artifact, Path, str | None]], installed: list[Installed],
                  scripts: tuple[str, ...], elf_facts: ElfFacts, agreed: Contract,
                  src_prefixes: tuple[str, ...], isolated: str,
                  placed: Mapping[str, tuple[str, int]]) -> Manifest:
        profile = loaded.profile
        versions = {i.name: i.version for i in installed}
        top = profile.top_level_names[0]
        app_version = versions.get(top, "0")
        floor = elf_facts.glibc_floor
        glibc_tag = floor.split(".") if floor else profile.glibc.split(".")
        platform = f"manylinux_{glibc_tag[0]}_{glibc_tag[1]}_{profile.arch}"
        py_tag = "cp{}{}".format(*profile.python_tuple)
        name = f"{profile.name}-{app_version}-{py_tag}-{platform}"
        files = hash_tree(root, placed)
        dists = tuple(sorted(
            (Distribution(name=a.pin.name, version=a.pin.version, sha256=sha256_file(w)
                          if built else a.sha256, filename=w.name, built_from_sdist=built)
             for a, w, built in wheels), key=lambda d: d.name))
        site_rel = interp.site_packages.relative_to(root).as_posix()
        sizes = {
            "total": sum(f.size for f in files),
            "files": len(files),
            "site_packages": sum(f.size for f in files if f.path.startswith(site_rel + "/")),
            "vendored_libraries": sum(f.size for f in files
                                      if f.path.startswith(tree.VENDORED_LIB_DIR + "/")),
            "pruned": interp.pruned_bytes,
        }
        tests_sha = hashlib.sha256(tests_lock_path.read_bytes()).hexdigest() \
            if tests_lock_path else None
        manifest = Manifest(
            name=name, runtime=profile.name, version=app_version, python_tag=py_tag,
            platform=platform, arch=profile.arch, tool_version=__version__,
            profile_sha256=loaded.sha256,
            lock_sha256=hashlib.sha256(lock_path.read_bytes()).hexdigest(),
            test_lock_sha256=tests_sha,
            build_marker=tree.BUILD_MARKER,
            interpreter=Interpreter(
                version=interp.version, source=interp.source,
                executable=interp.executable.relative_to(root).as_posix(),
                stdlib=interp.stdlib.relative_to(root).as_posix(), site_packages=site_rel,
                pruned=interp.pruned, pruned_bytes=interp.pruned_bytes, isolated=isolated),
            distributions=dists,
            scripts=scripts,
            elf=elf_facts,
            contract=agreed,
            files=files,
            sizes=sizes,
            test_command=profile.tests.command,
            test_env=profile.tests.env,
            test_timeout=profile.tests.timeout,
            test_junit=profile.tests.junit,
            source_prefixes=src_prefixes,
        )
        (root / MANIFEST_NAME).write_text(manifest.dumps())
        (root / MANIFEST_NAME).chmod(0o644)
        return manifest

    def _packages(self, loaded: LoadedRuntime, manifest: Manifest, root: Path, mtime: int,
                  options: BundleOptions) -> list[tuple[Path, str]]:
        """The .deb and .rpm asked for, from the finished tree (the archive's payload)."""
        from isolate.package.deb import build_deb
        from isolate.package.rpm import build_rpm

        out: list[tuple[Path, str]] = []
        info = package_info(loaded.profile, manifest, prefix=options.package_prefix,
                            mtime=mtime)
        for fmt, build in (("deb", build_deb), ("rpm", build_rpm)):
            if fmt not in options.formats:
                continue
            with self._timed(f"package {fmt}"):
                work = root.parent / f"package-{fmt}"
                work.mkdir()
                try:
                    path = build(root, options.output_dir, info, work=work, runner=self.runner)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                out.append((path, sha256_file(path)))
        return out

    def _publish(self, loaded: LoadedRuntime, manifest: Manifest, root: Path,
                 overlay: Path | None, options: BundleOptions) -> BundleResult:
        out = options.output_dir
        for published in (root, overlay):
            if published is not None:
                _normalise_modes(published)
        archives: list[tuple[Path, str]] = []
        mtime = archive_format.default_mtime()
        packages = (self._packages(loaded, manifest, root, mtime, options)
                    if set(options.formats) & set(PACKAGE_FORMATS) else [])
        for fmt in options.formats:
            if fmt not in archive_format.FORMATS:
                continue
            with self._timed(f"archive {fmt}"):
                dest = out / archive_format.archive_name(manifest.name, fmt)
                digest = write_archive(root, dest, fmt=fmt, root_name=manifest.name,
                                       mtime=mtime, zstd_level=options.zstd_level)
                archives.append((dest, digest))
                if overlay is not None:
                    write_archive(
                        overlay, out / archive_format.archive_name(
                            archive_format.overlay_name(manifest.name), fmt),
                        fmt=fmt, root_name=archive_format.overlay_name(manifest.name),
                        mtime=mtime,
                        zstd_level=options.zstd_level)
        directory = None
        overlay_dir = None
        if "dir" in options.formats:
            directory = out / manifest.name
            _publish_dir(root, directory)
            if overlay is not None:
                overlay_dir = out / archive_format.overlay_name(manifest.name)
                _publish_dir(overlay, overlay_dir)
        # The manifest's own hash, kept outside it, so that a tampered manifest is seen.
        manifest_sha = hashlib.sha256(((directory or root) / MANIFEST_NAME).read_bytes())
        write_atomic(out / f"{manifest.name}.{MANIFEST_NAME}.sha256",
                     f"{manifest_sha.hexdigest()}  {MANIFEST_NAME}\n")
        write_atomic(out / archive_format.LATEST, manifest.name + "\n")
        return BundleResult(name=manifest.name, manifest=manifest, directory=directory,
                            archives=tuple(archives), packages=tuple(packages),
                            overlay=overlay_dir,
                            seconds=dict(self.timings))


@dataclass(frozen=True, kw_only=True, slots=True)
class _Native:
    """What the profile's [native_builds] need: the interpreter and the loaded locks."""

    target: NativeTarget
    builds: Mapping[str, DevPackages]  # canonical distribution name -> its dev packages

    def devs_of(self, name: str) -> tuple[DevPackages, ...]:
        found = self.builds.get(canonicalize_name(name))
        return (found,) if found is not None else ()


def _native_builds(profile: RuntimeProfile, options: BundleOptions,
                   target: NativeTarget | None) -> _Native | None:
    if not profile.native_builds:
        return None
    if target is None:
        raise InputError(
            f"the runtime profile {profile.name!r} compiles "
            f"{', '.join(sorted(profile.native_builds))} against pinned development packages, "
            "which needs the interpreter isolate builds",
            hint="drop --python (the profile says interpreter = \"source\"), or use "
                 f"--python source:{profile.python}")
    builds: dict[str, DevPackages] = {}
    for dist, dev in profile.native_builds.items():
        path = options.dev_packages.get(dev)
        if path is None:
            raise InputError(f"native_builds.{dist}: no development-packages lock {dev!r} "
                             "was given to the build",
                             hint=f"add profiles/devpackages/{dev}.toml")
        builds[dist] = load_dev_packages(path)
    return _Native(target=target, builds=builds)


def _dev_provided(options: BundleOptions) -> frozenset[str]:
    """The sonames the development packages stand in for: the host's, never vendored."""
    return frozenset(s for path in options.dev_packages.values()
                     for s in load_dev_packages(path).provides)


def _check_host_libraries(profile: RuntimeProfile, options: BundleOptions,
                          closure: ClosureResult) -> None:
    """A library a binding was compiled against must be a declared host library."""
    declared = {h.soname for h in profile.host_libraries}
    undeclared = sorted(set(closure.host_provided) - declared)
    if undeclared:
        raise InputError(
            "the runtime needs host libraries its profile does not declare: "
            f"{', '.join(undeclared)}",
            details="\n".join(f"  {f} needs {s}" for f, s, _v in closure.host_needs
                              if s in undeclared),
            hint="add a [[host_libraries]] entry for each (required = false when only a "
                 "feature needs it)")


def _elf_facts(profile: RuntimeProfile, closure: ClosureResult) -> ElfFacts:
    floor = closure.glibc_floor
    return ElfFacts(
        glibc_floor=floor[0] if floor else None,
        glibc_floor_file=floor[1] if floor else None,
        glibc_floor_symbol=floor[2] if floor else None,
        floors=closure.floors,
        vendored=tuple(VendoredLib(soname=v.soname, path=v.dest, origin=str(v.origin),
                                   needed_by=v.needed_by) for v in closure.vendored),
        host_libraries=tuple(h.to_dict() for h in profile.host_libraries),
        host_floors=library_floors(
            [(h.soname, h.required, h.purpose, h.feature) for h in profile.host_libraries],
            closure.host_needs),
        system_libraries=closure.system,
        elf_files=closure.elf_files)


def _layout(root: Path, magic_tag: tuple[str, str], *, home: Path, site: Path,
            compile_dir: Path, python_name: str) -> Layout:
    """What installing writes where, for the store (``store.Layout``)."""
    return Layout(python_home=_rel(home, root), site_packages=_rel(site, root),
                  compile_dir=_rel(compile_dir, root), python_name=python_name,
                  magic=magic_tag[0], cache_tag=magic_tag[1])


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return "" if rel == "." else rel


def hash_tree(root: Path, placed: Mapping[str, tuple[str, int]] | None = None,
              ) -> tuple[FileEntry, ...]:
    """sha256 and mode of every file below ``root`` (the manifest itself excepted).

    ``placed``: the hashes of the files placed from the store, already computed on their
    way; a file's hash is taken from there only while nothing wrote it since
    (``store.placed_sha256``).
    """
    known = placed or {}
    rels: list[str] = []
    top = str(root)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        base = os.path.relpath(dirpath, top)
        prefix = "" if base == "." else base + "/"
        rels += [prefix + f for f in filenames]
        rels += [prefix + d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
    rels = sorted(r for r in rels if r != MANIFEST_NAME)

    def entry(rel: str) -> FileEntry:
        p = os.path.join(top, rel)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(p)
            return FileEntry(path=rel, sha256=tree.link_sha256(target), mode=tree.LINK_MODE,
                             size=tree.link_size(target), kind=tree.SYMLINK, target=target)
        mode = tree.normal_mode(st.st_mode)
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(p, mode)  # normalise: no group/world write, no setuid
        sha = placed_sha256(known, rel, st)
        if sha is not None:
            return FileEntry(path=rel, sha256=sha, mode=mode, size=st.st_size)
        return FileEntry(path=rel, sha256=sha256_file(Path(p)), mode=mode, size=st.st_size)

    def batch(chunk: list[str]) -> list[FileEntry]:
        return [entry(r) for r in chunk]

    size = 256
    chunks = [rels[i:i + size] for i in range(0, len(rels), size)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return tuple(e for part in pool.map(batch, chunks) for e in part)
