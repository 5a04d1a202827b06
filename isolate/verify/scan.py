"""One pass over a bundle tree: every file read once, hashed and searched at the same time.

``scan_tree`` walks the tree (symlinks are recorded, never followed), then reads every
regular file in worker threads: each chunk read feeds sha256 and a search for each
needle (the build marker, the build host's prefixes). hashlib and file reads release the
GIL, so two threads overlap on two cores. ELF files are also described
(``isolate.bundle.elf.read_elf``, which reads only their headers) by the same worker,
and when a needle occurs in one, its section table is kept to tell where.

The result is plain data for the checks: no check reads a file's content again.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from isolate.bundle.elf import ELF_MAGIC, ElfFile, read_elf
from isolate.bundle.unpack import Member
from isolate.errors import InputError
from isolate.model import tree

CHUNK = 8 << 20  # bytes read at a time; files larger than this are read in pieces
OFFSETS_KEPT = 1024  # offsets remembered per needle and file (each is located in ELF files)
SAMPLE_CHARS = 160  # characters of context kept around the first occurrence
_BATCH = 48  # files per work item: fewer futures, less scheduling
DEFAULT_JOBS = 2
_PATHISH = frozenset(range(0x21, 0x7F)) - frozenset(b"\"'`<>|;,()[]{}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Hit:
    """Where one needle occurs in one file."""

    needle: str
    count: int
    offsets: tuple[int, ...]  # the first OFFSETS_KEPT, ascending
    sample: str  # the path-like text around the first occurrence


@dataclass(frozen=True, kw_only=True, slots=True)
class ScannedFile:
    path: str  # bundle-relative POSIX path
    kind: str  # file | symlink | special
    mode: int  # permission bits (0o777 for a symlink)
    size: int
    sha256: str  # of the content; for a symlink, of its target text
    target: str | None = None  # symlink target
    special: str | None = None  # "FIFO", "socket", "device" for kind == "special"
    shebang_end: int = -1  # end offset of a "#!" first line, -1 when there is none
    hits: tuple[Hit, ...] = ()
    is_elf: bool = False  # starts with the ELF magic
    elf: ElfFile | None = None  # None for an ELF file that cannot be parsed (see problem)
    # (name, offset, size) of the sections of an ELF file with hits, to tell where they are
    sections: tuple[tuple[str, int, int], ...] = ()
    problem: str | None = None  # unreadable file, or an ELF file that cannot be parsed


@dataclass(frozen=True, kw_only=True, slots=True)
class Tree:
    root: Path
    files: Mapping[str, ScannedFile]  # by bundle-relative path, sorted
    dirs: frozenset[str]  # bundle-relative paths of real directories
    bytes_read: int
    unlisted: tuple[tuple[str, str], ...] = ()  # (directory, why) that could not be listed

    @property
    def elf_files(self) -> tuple[ScannedFile, ...]:
        return tuple(f for f in self.files.values() if f.is_elf)


def _walk(root: Path, skip: frozenset[str]
          ) -> tuple[list[tuple[str, str, bool]], set[str], list[tuple[str, str]]]:
    """(relative path, absolute path, is a symlink) of every non-directory, the directories,
    and (relative path, why) of the directories that cannot be listed."""
    entries: list[tuple[str, str, bool]] = []
    dirs: set[str] = set()
    unlisted: list[tuple[str, str]] = []
    stack = [("", os.fspath(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            listing = list(os.scandir(abs_dir))
        except OSError as exc:
            if not rel_dir:
                raise InputError(f"cannot list {abs_dir}: {exc.strerror}",
                                 hint="check the bundle's permissions") from exc
            unlisted.append((rel_dir.rstrip("/"), f"cannot be listed: {exc.strerror}"))
            continue
        for entry in listing:
            rel = f"{rel_dir}{entry.name}"
            if rel in skip:
                continue
            try:
                is_link = entry.is_symlink()
                is_dir = not is_link and entry.is_dir(follow_symlinks=False)
            except OSError:
                is_link = is_dir = False
            if is_dir:
                dirs.add(rel)
                stack.append((rel + "/", entry.path))
            else:
                entries.append((rel, entry.path, is_link))
    return entries, dirs, unlisted


def _sample(buf: bytes, at: int, length: int) -> str:
    """The path-like run of printable bytes around ``buf[at:at+length]``."""
    start = at
    floor = max(0, at - SAMPLE_CHARS)
    while start > floor and buf[start - 1] in _PATHISH:
        start -= 1
    end = at + length
    ceiling = min(len(buf), end + SAMPLE_CHARS)
    while end < ceiling and buf[end] in _PATHISH:
        end += 1
    return buf[start:end].decode("ascii", "replace")


class _Search:
    """The occurrences of several needles in a stream of chunks."""

    def __init__(self, needles: Sequence[bytes]) -> None:
        self.needles = needles
        self.keep = max((len(n) for n in needles), default=1) - 1
        self.found = False
        self.counts: list[int] = []
        self.offsets: list[list[int]] = []
        self.samples: list[str] = []
        self._tail = b""

    def _first(self) -> None:
        self.found = True
        self.counts = [0] * len(self.needles)
        self.offsets = [[] for _ in self.needles]
        self.samples = [""] * len(self.needles)

    def feed(self, chunk: bytes, base: int) -> None:
        """Search ``chunk``, which starts at file offset ``base``."""
        buf = self._tail + chunk if self._tail else chunk
        start = base - len(self._tail)
        for i, needle in enumerate(self.needles):
            # a match that ends inside the tail was counted with the previous chunk
            at = buf.find(needle, max(0, len(self._tail) - len(needle) + 1))
            if at >= 0 and not self.found:
                self._first()
            while at >= 0:
                if self.counts[i] == 0:
                    self.samples[i] = _sample(buf, at, len(needle))
                if len(self.offsets[i]) < OFFSETS_KEPT:
                    self.offsets[i].append(start + at)
                self.counts[i] += 1
                at = buf.find(needle, at + len(needle))
        self._tail = buf[-self.keep:] if self.keep else b""  # what a needle could straddle

    def hits(self, names: Sequence[str]) -> tuple[Hit, ...]:
        return tuple(
            Hit(needle=names[i], count=self.counts[i], offsets=tuple(self.offsets[i]),
                sample=self.samples[i])
            for i in range(len(self.needles)) if self.counts[i]
        )


def _scan_link(rel: str, path: str) -> ScannedFile:
    try:
        target = os.readlink(path)
    except OSError as exc:
        return ScannedFile(path=rel, kind=tree.SYMLINK, mode=tree.LINK_MODE, size=0, sha256="",
                           problem=f"cannot read the symlink: {exc.strerror}")
    return ScannedFile(path=rel, kind=tree.SYMLINK, mode=tree.LINK_MODE,
                       size=tree.link_size(target), sha256=tree.link_sha256(target),
                       target=target)


def _read_all(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    while len(data) < size:  # a short read: rare, but allowed
        more = os.read(fd, size - len(data))
        if not more:
            break
        data += more
    return data


class Needles:
    """The needles searched for in every file, with a cheap first test.

    ``common`` is the longest substring (4 bytes or more) every needle contains: a file
    without it holds no needle, which one ``in`` test tells; most files end there."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.names = tuple(dict.fromkeys(n for n in texts if n))
        self.raw = tuple(n.encode("utf-8", "surrogateescape") for n in self.names)
        self.common = _common_substring(self.raw)

    def hits(self, data: bytes) -> tuple[Hit, ...]:
        """Where each needle occurs in ``data``, a whole file."""
        if not self.raw or (self.common and self.common not in data):
            return ()
        search = _Search(self.raw)
        search.feed(data, 0)
        return search.hits(self.names) if search.found else ()


def _common_substring(needles: Sequence[bytes]) -> bytes:
    if not needles:
        return b""
    shortest = min(needles, key=len)
    for length in range(len(shortest), 3, -1):
        for start in range(len(shortest) - length + 1):
            piece = shortest[start:start + length]
            if all(piece in n for n in needles):
                return piece
    return b""


def _scanned(rel: str, mode: int, size: int, sha256: str, head: bytes,
             hits: tuple[Hit, ...], where: Path, data: bytes | None) -> ScannedFile:
    """The file's description from what was read; ELF facts from ``data`` (the whole
    content) when given, else from the file at ``where``."""
    shebang_end = -1
    if head[:2] == b"#!":
        newline = head.find(b"\n", 0, 4096)
        shebang_end = newline if newline >= 0 else min(len(head), 4096)
    is_elf = head[:4] == ELF_MAGIC
    elf: ElfFile | None = None
    problem: str | None = None
    sections: tuple[tuple[str, int, int], ...] = ()
    if is_elf:
        try:
            elf = read_elf(where, data)
        except InputError as exc:
            problem = exc.message
        if hits:
            sections = _sections(data or b"", str(where))
    return ScannedFile(path=rel, kind="file", mode=mode, size=size, sha256=sha256,
                       shebang_end=shebang_end, hits=hits, is_elf=is_elf, elf=elf,
                       sections=sections, problem=problem)


def scan_data(rel: str, data: bytes, mode: int, needles: Needles, where: Path) -> ScannedFile:
    """Describe a regular file whose whole content is ``data`` (``where`` names it)."""
    return _scanned(rel, mode, len(data), hashlib.sha256(data).hexdigest(), data,
                    needles.hits(data), where, data)


def _scan_file(rel: str, path: str, needles: Needles) -> ScannedFile:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):  # replaced while we looked
            return _scan_link(rel, path)
        return ScannedFile(path=rel, kind="file", mode=0, size=0, sha256="",
                           problem=f"cannot be read: {exc.strerror}")
    try:
        st = os.fstat(fd)
        mode = stat.S_IMODE(st.st_mode)
        if not stat.S_ISREG(st.st_mode):
            return ScannedFile(path=rel, kind="special", mode=mode, size=0, sha256="",
                               special=tree.special_kind(st.st_mode))
        if st.st_size <= CHUNK:  # the common case: one read, one hash call
            data = _read_all(fd, st.st_size)
            if len(data) == st.st_size:
                more = os.read(fd, 1)
                if more:  # it grew while we looked: read the rest in pieces
                    data += more + _read_rest(fd)
            if len(data) <= CHUNK:
                return scan_data(rel, data, mode, needles, Path(path))
            return _large(rel, mode, data, needles, path)
        digest = hashlib.sha256()
        search = _Search(needles.raw)
        size, head = 0, b""
        while chunk := os.read(fd, CHUNK):
            if not size:
                head = chunk[:4096]
            digest.update(chunk)
            search.feed(chunk, size)
            size += len(chunk)
    except OSError as exc:
        return ScannedFile(path=rel, kind="file", mode=0, size=0, sha256="",
                           problem=f"cannot be read: {exc.strerror}")
    finally:
        os.close(fd)
    hits = search.hits(needles.names) if search.found else ()
    return _scanned(rel, mode, size, digest.hexdigest(), head, hits, Path(path), None)


def _read_rest(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, CHUNK):
        parts.append(chunk)
    return b"".join(parts)


def _large(rel: str, mode: int, data: bytes, needles: Needles, path: str) -> ScannedFile:
    search = _Search(needles.raw)
    search.feed(data, 0)
    hits = search.hits(needles.names) if search.found else ()
    return _scanned(rel, mode, len(data), hashlib.sha256(data).hexdigest(), data[:4096],
                    hits, Path(path), None)


def _sections(data: bytes, path: str) -> tuple[tuple[str, int, int], ...]:
    """(name, file offset, size) of each section that occupies bytes in an ELF file.

    Read from ``data`` when the file was read whole, else from the file (headers only).
    """
    try:
        with (io.BytesIO(data) if data else open(path, "rb")) as f:
            return tuple((str(s.name), int(s["sh_offset"]), int(s["sh_size"]))
                         for s in ELFFile(f).iter_sections() if s["sh_type"] != "SHT_NOBITS")
    except Exception:  # pyelftools raises many types on odd files; then nothing is mapped
        return ()


def scan_tree(root: Path, needles: Iterable[str], *, skip: Iterable[str] = (),
              size_hint: Mapping[str, int] | None = None, jobs: int | None = None) -> Tree:
    """Read every file under ``root`` once: sha256, mode, needle hits, ELF facts.

    ``skip`` names bundle-relative paths left out (the manifest); ``size_hint`` (the
    manifest's sizes) lets the largest files start first, which evens out the threads.
    """
    wanted = Needles(needles)
    entries, dirs, unlisted = _walk(root, frozenset(skip))
    sizes = size_hint or {}
    entries.sort(key=lambda e: -sizes.get(e[0], 0))
    batches = [entries[i:i + _BATCH] for i in range(0, len(entries), _BATCH)]

    def work(batch: list[tuple[str, str, bool]]) -> list[ScannedFile]:
        return [_scan_link(rel, path) if link else _scan_file(rel, path, wanted)
                for rel, path, link in batch]

    # Two threads: one hashes (no GIL) while the other searches and parses ELF headers
    # (GIL). More threads only fight over the GIL: on the Nova bundle, 4 threads cost
    # twice the CPU of 2 for no gain in wall time.
    workers = jobs or min(DEFAULT_JOBS, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="isolate-scan") as pool:
        scanned = [f for batch in pool.map(work, batches) for f in batch]
    return tree_of(root, scanned, dirs, unlisted)


def tree_of(root: Path, scanned: Iterable[ScannedFile], dirs: Iterable[str],
            unlisted: Iterable[tuple[str, str]] = ()) -> Tree:
    """The ``Tree`` of scanned files, wherever they were read (a directory, an archive)."""
    files = {f.path: f for f in sorted(scanned, key=lambda f: f.path)}
    total = sum(f.size for f in files.values() if f.kind == "file")
    return Tree(root=root, files=files, dirs=frozenset(dirs), bytes_read=total,
                unlisted=tuple(sorted(unlisted)))


def scan_members(root: Path, members: Iterable[Member], needles: Iterable[str], *,
                 skip: Iterable[str] = ()) -> tuple[Tree, dict[str, bytes]]:
    """The ``Tree`` of an archive's entries as they stream past (``root`` names its
    top-level directory; nothing is on disk), and the data of the entries in ``skip``."""
    wanted = Needles(needles)
    left_out = frozenset(skip)
    scanned: list[ScannedFile] = []
    dirs: set[str] = set()
    kept: dict[str, bytes] = {}
    for m in members:
        if not m.path:
            continue  # the top-level directory itself
        if m.path in left_out:
            if m.kind == "file":
                kept[m.path] = m.data
            continue
        if m.kind == "dir":
            dirs.add(m.path)
        elif m.kind == "symlink":
            target = m.target or ""
            scanned.append(ScannedFile(path=m.path, kind=tree.SYMLINK, mode=tree.LINK_MODE,
                                       size=tree.link_size(target),
                                       sha256=tree.link_sha256(target), target=target))
        else:
            scanned.append(scan_data(m.path, m.data, m.mode, wanted, root / m.path))
    for f in scanned:  # directories an archive implies without an entry of their own
        parent = f.path.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return tree_of(root, scanned, dirs), kept
