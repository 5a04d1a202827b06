"""A content-addressed store of installed wheels, byte code included.

A warm build places each wheel's installed files from the store instead of unzipping
the wheel and compiling its byte code again. An entry is keyed by the wheel's sha256 and
by everything that decides what installing it writes (``Layout``): where the interpreter
home, site-packages and the byte-code directory are relative to the bundle root, the
launchers' interpreter reference, the interpreter's magic number and cache tag, and the
versions of isolate, installer and this store's format.

An entry is ``<cache>/store/<key[:2]>/<key>/``: ``index.json`` (the distribution's name,
version and console scripts, and each file's bundle-relative path, sha256, size and mode,
sorted by path) and ``files`` (the files' bytes, one after the other in the index's
order). One file per entry rather than one per installed file: a warm build reads it
from start to end, and adding an entry creates two files, not thousands. Entries are
made in a temporary directory and renamed into place: an entry is whole or absent.

A wheel missing from the store is installed into a private staging directory and its
byte code compiled there; its entry is written from the staged files, and the staged
files themselves are then moved into the bundle (renamed, whole directories at a time
where the bundle has none yet): a cold build creates each file once.

What the store may change of a bundle is bounded:

* files are copied out of the entry, never linked, so changing the store later cannot
  change a bundle already built;
* every byte placed is hashed on its way and compared with the index;
* every file the wheel carries is also compared with the wheel's own ``RECORD``, read
  from the wheel, which was checked against the lock's hash. What installing generates
  (byte code, launchers, the rewritten ``RECORD``, ``INSTALLER``) is compared with the
  index only;
* an entry that fails either check is removed and made again from the wheel.

So a damaged or edited store file never reaches a bundle, except byte code or a generated
file edited together with its index line: the store alone vouches for those, as any build
cache writable by the building user does.

Placed files get the fixed mtime ``PLACED_MTIME_NS``; a later write (patchelf, for one)
gives a file the current time, which is how ``placed_sha256`` (for the manifest's hashes
and the ELF closure's) knows which hashes of ``placed`` are still the file's.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import ctypes
import errno
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import installer

from isolate import __version__
from isolate.bundle.bytecode import Compiler, CompileStats, sources
from isolate.bundle.install import Installed, install_wheel
from isolate.errors import EnvironmentProblem, InputError
from isolate.model import tree
from isolate.proc import Runner

FORMAT = 2
INDEX = "index.json"
FILES = "files"  # the entry's bytes
STALE_SECONDS = 24 * 3600  # what a killed build left is removed after this
PLACED_MTIME_NS = 315532800 * 10**9  # 1980-01-01, as the archives' default mtime


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """Where installing a wheel writes, relative to the bundle root."""

    python_home: str  # installer's "data" and "scripts" parent ("" for the tests overlay)
    site_packages: str
    compile_dir: str  # ``.py`` files below it get byte code
    python_name: str  # how launchers name the interpreter
    magic: str  # the interpreter's byte-code magic number (hex)
    cache_tag: str

    def digest(self) -> str:
        doc = {"format": FORMAT, "isolate": __version__, "installer": installer.__version__,
               **asdict(self)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def scripts(self) -> str:
        return f"{self.python_home}/bin" if self.python_home else "bin"


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredFile:
    path: str  # relative to the bundle root
    sha256: str
    size: int
    mode: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    directory: Path
    installed: Installed
    files: tuple[StoredFile, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class PlaceResult:
    installed: list[Installed]  # in the order of the wheels given
    placed: dict[str, tuple[str, int]]  # bundle-relative path -> (sha256, size)
    reused: int  # wheels placed from entries that were already in the store
    added: int  # wheels installed into new entries by this build
    repaired: int  # entries that failed a check and were made again
    compile: CompileStats | None  # byte code of the new entries


_PLACE_CHUNK = 1 << 20  # bytes read at a time while placing a file

def placed_sha256(placed: Mapping[str, tuple[str, int]], rel: str,
                  st: os.stat_result) -> str | None:
    """The sha256 placing computed for the file at bundle-relative ``rel`` (``placed``:
    ``PlaceResult.placed``), while its status ``st`` shows that nothing wrote it since:
    a regular file with the mtime placing gave it and the same size. Else None."""
    got = placed.get(rel)
    if got is None or not stat.S_ISREG(st.st_mode) or st.st_mtime_ns != PLACED_MTIME_NS \
            or st.st_size != got[1]:
        return None
    return got[0]


class _Corrupt(Exception):
    """An entry's file differs from its index or from its wheel's RECORD."""


def _record_hashes(wheel: Path) -> dict[str, str]:
    """path -> sha256 (hex) of every hashed file in the wheel's own RECORD."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.count("/") == 1
                 and n.endswith(".dist-info/RECORD")]
        if len(names) != 1:
            raise InputError(f"{wheel.name}: not one .dist-info/RECORD in the wheel",
                             hint="the wheel is corrupt or not a wheel; remove it from the "
                                  "cache and build again")
        text = zf.read(names[0]).decode("utf-8")
    out: dict[str, str] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and row[1].startswith("sha256="):
            digest = row[1].removeprefix("sha256=")
            raw = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4))
            out[row[0]] = raw.hex()
    return out


def _done(value: tuple[Path, str]) -> Future[tuple[Path, str]]:
    fut: Future[tuple[Path, str]] = Future()
    fut.set_result(value)
    return fut


def _hash_file(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class WheelStore:
    def __init__(self, cache: Path, layout: Layout, *, python: Path, runner: Runner,
                 jobs: int = 4) -> None:
        self.dir = cache / "store"
        self.cache = cache
        self.layout = layout
        self.layout_digest = layout.digest()
        self.python = python
        self.runner = runner
        self.jobs = max(1, jobs)

    def key(self, wheel_sha256: str) -> str:
        return hashlib.sha256(f"{wheel_sha256}\0{self.layout_digest}".encode()).hexdigest()

    def _entry_dir(self, wheel_sha256: str) -> Path:
        key = self.key(wheel_sha256)
        return self.dir / key[:2] / key

    def lookup(self, wheel_sha256: str) -> Entry | None:
        """The entry of the wheel with this hash, or None when absent or unreadable."""
        d = self._entry_dir(wheel_sha256)
        try:
            doc = json.loads((d / INDEX).read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT or doc.get("wheel_sha256") != wheel_sha256:
                return None
            installed = Installed(name=str(doc["name"]), version=str(doc["version"]),
                                  console_scripts=tuple(tuple(s) for s in doc["scripts"]))
            files = tuple(StoredFile(path=str(p), sha256=str(h), size=int(n), mode=int(m))
                          for p, h, n, m in doc["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return Entry(directory=d, installed=installed, files=files)

    # -- making entries -------------------------------------------------------------------
    def _stage(self, wheel: Path, beside: Path) -> tuple[Path, Installed]:
        """``wheel`` installed into a staging directory of its own in ``beside`` (the
        bundle's own directory, so that its files can be moved into the bundle on any
        file system)."""
        lay = self.layout
        staging = Path(tempfile.mkdtemp(dir=beside, prefix=".staging-"))
        try:
            home = staging / lay.python_home if lay.python_home else staging
            site = staging / lay.site_packages
            site.mkdir(parents=True)
            inst = install_wheel(wheel, python_home=home, site_packages=site,
                                 python_name=lay.python_name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging, inst

    def _byte_code(self, staging: Path, compiler: Compiler) -> Future[CompileStats]:
        """The byte code of what ``staging`` holds below the layout's compile dir."""
        return compiler.submit(staging, sources([staging / self.layout.compile_dir]),
                               private=True)

    def _finish(self, staging: Path, wheel_sha256: str, inst: Installed, root: Path,
                wheel: Path) -> dict[str, tuple[str, int]]:
        """Write a staged and compiled wheel's entry (``_commit``), then move the staged
        files into ``root``. The staging directory is gone afterwards, whatever
        happened. The placed files' hashes (as ``PlaceResult.placed``)."""
        try:
            placed = self._commit(staging, wheel_sha256, inst)
            _prune_empty_dirs(staging)
            _move_tree(staging, root, "", wheel.name)
            return placed
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _compiler(self) -> Compiler:
        return Compiler(self.python, cache=self.cache, runner=self.runner,
                        tag=(self.layout.magic, self.layout.cache_tag))

    def _commit(self, staging: Path, wheel_sha256: str, inst: Installed,
                ) -> dict[str, tuple[str, int]]:
        """Write the entry of ``staging`` (one wheel installed, and its byte code),
        checked to hold nothing else: the files' bytes in one file and their index. The
        staged files get their normal modes and ``PLACED_MTIME_NS``, as placed files do.
        Returns path -> (sha256, size)."""
        final = self._entry_dir(wheel_sha256)
        rels: set[str] = set()
        for written in inst.files:
            rel = os.path.relpath(written, staging)
            rels.add(rel)
            if rel.endswith(".py"):
                head, name = os.path.split(rel)
                pyc = os.path.join(head, "__pycache__",
                                   f"{name[:-3]}.{self.layout.cache_tag}.pyc")
                if os.path.exists(staging / pyc):
                    rels.add(pyc)
        left = sorted(rel for dp, _dn, fn in os.walk(staging) for f in fn
                      if (rel := os.path.relpath(os.path.join(dp, f), staging)) not in rels)
        if left:
            raise EnvironmentProblem(
                "installing wheels into the store wrote files that no wheel owns: "
                + ", ".join(left[:5]), hint="report this as a bug of isolate")
        files: list[list[object]] = []
        placed: dict[str, tuple[str, int]] = {}
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
        try:
            out = os.open(tmp / FILES, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                          0o644)
            try:
                for rel in sorted(rels, key=lambda r: Path(r).as_posix()):
                    path = os.path.join(staging, rel)
                    mode = tree.normal_mode(os.lstat(path).st_mode)
                    os.chmod(path, mode)
                    h = hashlib.sha256()
                    size = 0
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        while chunk := os.read(fd, _PLACE_CHUNK):
                            h.update(chunk)
                            size += len(chunk)
                            _write_all(out, chunk)
                    finally:
                        os.close(fd)
                    os.utime(path, ns=(PLACED_MTIME_NS, PLACED_MTIME_NS))
                    posix = Path(rel).as_posix()
                    files.append([posix, h.hexdigest(), size, mode])
                    placed[posix] = (h.hexdigest(), size)
            finally:
                os.close(out)
            doc = {"format": FORMAT, "wheel_sha256": wheel_sha256, "name": inst.name,
                   "version": inst.version, "scripts": [list(s) for s in inst.console_scripts],
                   "files": files}
            (tmp / INDEX).write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
            try:
                os.rename(tmp, final)
            except OSError:  # made by another build meanwhile (or a stale one): keep that
                if self.lookup(wheel_sha256) is None:
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return placed

    def _sweep(self) -> None:
        """Remove what killed builds left: staging directories, entries being written,
        entries being removed, untouched for a day (a running build's are younger)."""
        old = time.time() - STALE_SECONDS
        try:
            found = [*self.dir.glob(".staging-*"), *self.dir.glob("??/.*.tmp"),
                     *self.dir.glob("??/.*.removed")]
        except OSError:
            return
        for p in found:
            with contextlib.suppress(OSError):
                if p.lstat().st_mtime < old:
                    shutil.rmtree(p, ignore_errors=True)

    def remove(self, wheel_sha256: str) -> None:
        d = self._entry_dir(wheel_sha256)
        if d.exists():
            trash = d.with_name(f".{d.name}.{os.getpid()}.removed")
            os.replace(d, trash)
            shutil.rmtree(trash, ignore_errors=True)

    # -- placing --------------------------------------------------------------------------
    def place(self, wheels: Sequence[tuple[Path, str] | Future[tuple[Path, str]]], root: Path,
              *, compiler: Compiler | None = None,
              on_placed: Callable[[], None] | None = None) -> PlaceResult:
        """Install ``(wheel, sha256)`` pairs below ``root`` from the store, adding what
        is missing and making again what fails a check.

        A pair may be a future (a download under way): each wheel goes on as soon as its
        future is done, so that installing and compiling one overlaps with downloading
        the next. A wheel missing from the store is installed into a staging directory,
        its byte code compiled by ``compiler``'s workers (by workers of the store's own
        when None), committed as an entry, and placed; a wheel in the store is placed
        at once. ``on_placed`` is called after each wheel is placed.

        On an error (a future's, or one of the work's) the work under way is stopped,
        the staging directories removed, and the first error raised; entries already
        committed stay (they are whole).
        """
        self._sweep()
        n = len(wheels)
        pairs: list[tuple[Path, str] | None] = [None] * n
        results: list[tuple[Entry, dict[str, tuple[str, int]] | None] | None] = [None] * n
        added: set[str] = set()
        staged: dict[int, tuple[Path, Installed]] = {}
        twins: list[int] = []  # a wheel given again while its first copy is being added
        stats: CompileStats | None = None
        pending: dict[Future[Any], tuple[str, int]] = {}
        for i, w in enumerate(wheels):
            pending[w if isinstance(w, Future) else _done(w)] = ("wheel", i)

        def place_one(i: int) -> tuple[Entry, dict[str, tuple[str, int]] | None]:
            wheel, sha = pairs[i]  # type: ignore[misc]
            entry = self.lookup(sha)
            if entry is None:
                raise EnvironmentProblem(f"the store has no entry for {wheel.name} after "
                                         f"adding it ({self.dir})",
                                         hint="check that the cache directory is writable")
            try:
                got = self._place_entry(entry, wheel, root)
            except _Corrupt:
                return entry, None
            return entry, got

        def finish_and_place(i: int) -> tuple[Entry, dict[str, tuple[str, int]] | None]:
            staging, inst = staged.pop(i)
            wheel, sha = pairs[i]  # type: ignore[misc]
            got = self._finish(staging, sha, inst, root, wheel)
            entry = self.lookup(sha)
            if entry is None:
                raise EnvironmentProblem(f"the store has no entry for {wheel.name} after "
                                         f"adding it ({self.dir})",
                                         hint="check that the cache directory is writable")
            return entry, got

        own = compiler is None
        work = compiler or self._compiler()

        def stage(wheel: Path) -> tuple[Path, Installed, Future[CompileStats]]:
            staging, inst = self._stage(wheel, beside=root.parent)
            try:
                return staging, inst, self._byte_code(staging, work)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise

        with contextlib.ExitStack() as stack:
            if own:
                stack.enter_context(work)
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=self.jobs))
            try:
                while pending:
                    ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in ready:
                        kind, i = pending.pop(fut)
                        value = fut.result()
                        if kind == "wheel":
                            pairs[i] = value
                            if value[1] in added:
                                twins.append(i)  # placed once its entry is made
                            elif self.lookup(value[1]) is not None:
                                pending[pool.submit(place_one, i)] = ("placed", i)
                            else:
                                added.add(value[1])
                                pending[pool.submit(stage, value[0])] = ("staged", i)
                        elif kind == "staged":
                            staged[i] = value[:2]
                            pending[value[2]] = ("compiled", i)
                        elif kind == "compiled":
                            stats = value if stats is None else stats + value
                            pending[pool.submit(finish_and_place, i)] = ("placed", i)
                        else:
                            results[i] = value
                            if on_placed is not None:
                                on_placed()
                for i in twins:
                    results[i] = place_one(i)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                if own:
                    work.close(kill=True)
                else:
                    work.cancel_queued()
                pool.shutdown(wait=True, cancel_futures=True)
                # staged meanwhile: their byte code may be on its way into their staging
                late = [f.result() for f, (kind, _i) in pending.items() if kind == "staged"
                        and f.done() and not f.cancelled() and f.exception() is None]
                if not own:
                    work.cancel_queued()
                wait([f for f in pending if not f.cancelled()] + [s[2] for s in late])
                for staging, _inst in [*staged.values(), *(s[:2] for s in late)]:
                    shutil.rmtree(staging, ignore_errors=True)
                raise
        placed: dict[str, tuple[str, int]] = {}
        redo: list[int] = []
        for i, res in enumerate(results):
            assert res is not None
            if res[1] is None:
                redo.append(i)
            else:
                placed.update(res[1])
        installed = [res[0].installed for res in results if res is not None]
        if redo:  # made again from their wheels, then placed as any new entry is
            for i in redo:
                self.remove(pairs[i][1])  # type: ignore[index]
            again = self.place([pairs[i] for i in redo], root,  # type: ignore[misc]
                               compiler=compiler)
            placed.update(again.placed)
            if again.compile is not None:
                stats = again.compile if stats is None else stats + again.compile
            for i, inst in zip(redo, again.installed, strict=True):
                installed[i] = inst
        fresh = added | {pairs[i][1] for i in redo}  # type: ignore[index]
        return PlaceResult(installed=installed, placed=placed,
                           reused=sum(1 for p in pairs if p is not None and p[1] not in fresh),
                           added=len(added), repaired=len(redo), compile=stats)

    def _place_entry(self, entry: Entry, wheel: Path, root: Path) -> dict[str, tuple[str, int]]:
        """Copy one entry's files below ``root``, checking each; on a failed check the
        files already copied are removed and ``_Corrupt`` is raised."""
        record = _record_hashes(wheel)
        site_prefix = self.layout.site_packages + "/"
        written: list[str] = []
        out: dict[str, tuple[str, int]] = {}
        made_dirs: set[str] = set()
        try:
            try:
                blob = os.open(os.path.join(entry.directory, FILES), os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise _Corrupt(f"{FILES}: {exc.strerror}") from exc
            try:
                for f in entry.files:
                    if os.path.isabs(f.path) or tree.leaves_root(os.path.normpath(f.path)):
                        raise _Corrupt(f"{f.path}: outside the bundle")
                    if f.mode not in (tree.FILE_MODE, tree.EXEC_MODE):
                        raise _Corrupt(f"{f.path}: mode {f.mode:o}")
                    if f.path.startswith(site_prefix):
                        expected = record.get(f.path[len(site_prefix):])
                        if expected is not None and expected != f.sha256:
                            raise _Corrupt(f"{f.path}: the index differs from the wheel's "
                                           "RECORD")
                    dest = os.path.join(root, f.path)
                    parent = os.path.dirname(dest)
                    if parent not in made_dirs:
                        os.makedirs(parent, exist_ok=True)
                        made_dirs.add(parent)
                    try:
                        # the umask may take bits away; hash_tree and publishing
                        # normalise the modes of the whole tree anyway
                        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                     f.mode)
                    except FileExistsError as exc:
                        raise _conflict(wheel.name, f.path) from exc
                    written.append(dest)
                    h = hashlib.sha256()
                    try:  # plain system calls: no file objects for 20,000 small files
                        left = f.size
                        while left:
                            chunk = os.read(blob, min(left, _PLACE_CHUNK))
                            if not chunk:
                                raise _Corrupt(f"{f.path}: {FILES} ends before it")
                            left -= len(chunk)
                            h.update(chunk)
                            _write_all(fd, chunk)
                        os.utime(fd, ns=(PLACED_MTIME_NS, PLACED_MTIME_NS))
                    finally:
                        os.close(fd)
                    digest = h.hexdigest()
                    if digest != f.sha256:
                        raise _Corrupt(f"{f.path}: its content differs from the store's index")
                    out[f.path] = (digest, f.size)
                if os.read(blob, 1):
                    raise _Corrupt(f"{FILES} holds more than its index says")
            finally:
                os.close(blob)
        except (_Corrupt, InputError):
            for p in written:
                with contextlib.suppress(OSError):
                    os.unlink(p)
            raise
        return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _conflict(wheel: str, rel: str) -> InputError:
    return InputError(f"cannot install {wheel}: {rel} is installed by another distribution "
                      "of the lock too", hint="the lock's distributions must not share files")


def _prune_empty_dirs(top: Path) -> None:
    """Remove the directories below ``top`` that hold no file (placing from an entry
    makes only the directories of its files; a cold build must give the same tree)."""
    for dirpath, _dirnames, filenames in os.walk(top, topdown=False):
        if not filenames and dirpath != str(top):
            with contextlib.suppress(OSError):  # not empty: a subdirectory has files
                os.rmdir(dirpath)


def _move_tree(src: Path, root: Path, rel: str, wheel: str) -> None:
    """Move what ``src`` holds into ``root``/``rel``: an entry that ``root`` lacks is
    renamed whole (a directory with all it holds), a directory both have is merged, and
    a file both have is the conflict ``_place_entry`` reports too."""
    with os.scandir(src) as it:
        names = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
    for name, is_dir in names:
        sub = f"{rel}/{name}" if rel else name
        s, d = src / name, root / sub
        moved = _rename_noreplace(s, d)
        if moved:
            continue
        if moved is None:  # no renameat2: a link and a directory fail as atomically
            if not is_dir:
                try:
                    os.link(s, d)
                except FileExistsError:
                    raise _conflict(wheel, sub) from None
                os.unlink(s)
                continue
            with contextlib.suppress(FileExistsError):
                os.mkdir(d)
        if is_dir and d.is_dir():  # as placing does, through a link to a directory
            _move_tree(s, root, sub, wheel)
            continue
        raise _conflict(wheel, sub)


_RENAME_NOREPLACE = 1
_renameat2: Any = None


def _rename_noreplace(src: Path, dest: Path) -> bool | None:
    """Rename ``src`` to ``dest`` unless ``dest`` exists (False then), in one step
    (Linux ``renameat2(RENAME_NOREPLACE)``); None where the system cannot."""
    global _renameat2
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2:
        at_fdcwd = -100
        if _renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dest),
                      _RENAME_NOREPLACE) == 0:
            return True
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            return False
        if err not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(src), None, str(dest))
    return None
