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
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from isolate.bundle.elf import ELF_MAGIC, ElfFile, read_elf
from isolate.bundle.elf_cache import ElfCache
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


def _shebang_end(head: bytes | bytearray) -> int:
    """The end offset of a "#!" first line in ``head``, -1 when there is none."""
    if head[:2] != b"#!":
        return -1
    newline = head.find(b"\n", 0, 4096)
    return newline if newline >= 0 else min(len(head), 4096)


def _scanned(rel: str, mode: int, size: int, sha256: str, head: bytes | bytearray,
             hits: tuple[Hit, ...], where: str, data: bytes | None,
             facts: ElfCache | None) -> ScannedFile:
    """The file's description from what was read; ELF facts from ``data`` (the whole
    content) when given, else from the file at ``where``; ``facts`` keeps them by content."""
    shebang_end = _shebang_end(head)
    is_elf = head[:4] == ELF_MAGIC
    elf: ElfFile | None = None
    problem: str | None = None
    sections: tuple[tuple[str, int, int], ...] = ()
    if is_elf:
        path = Path(where)
        try:
            elf = facts.read(path, sha256, data) if facts is not None else read_elf(path, data)
        except InputError as exc:
            problem = exc.message
        if hits:
            sections = _sections(data or b"", where)
    return ScannedFile(path=rel, kind="file", mode=mode, size=size, sha256=sha256,
                       shebang_end=shebang_end, hits=hits, is_elf=is_elf, elf=elf,
                       sections=sections, problem=problem)


def scan_data(rel: str, data: bytes, mode: int, needles: Needles, where: str | Path,
              facts: ElfCache | None = None) -> ScannedFile:
    """Describe a regular file whose whole content is ``data`` (``where`` names it)."""
    return _scanned(rel, mode, len(data), hashlib.sha256(data).hexdigest(), data,
                    needles.hits(data), os.fspath(where), data, facts)


class _Buffer:
    """One thread's reusable read buffer: a file of up to ``CHUNK`` bytes is read into it
    with one system call, hashed and searched in place, and copied only when it is an ELF
    file or holds a needle (fresh ``bytes`` per file would cost a page fault per 4 KiB)."""

    def __init__(self) -> None:
        self.buf = bytearray(CHUNK + 1)  # one byte more than a small file: EOF in one read
        self.view = memoryview(self.buf)

    def fill(self, fd: int, size: int) -> int:
        """Read the file from ``fd`` whose size was ``size``; the bytes read, or -1 when
        it does not fit (it grew past ``CHUNK``)."""
        n = 0
        while True:
            got = os.readv(fd, [self.view[n:]])
            n += got
            if not got or n == size:  # EOF; or as large as fstat said, and since the
                break  # read had room for more, that was all (a second read would say so)
            if n > CHUNK:
                return -1
        return n


def _scan_file(rel: str, path: str, needles: Needles, buffer: _Buffer,
               facts: ElfCache | None) -> ScannedFile:
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
        n = buffer.fill(fd, st.st_size) if st.st_size <= CHUNK else -1
        if n >= 0:  # the common case: one read, hashed and searched in the buffer
            return _small(rel, mode, n, buffer, needles, path, facts)
        os.lseek(fd, 0, os.SEEK_SET)
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
    return _scanned(rel, mode, size, digest.hexdigest(), head, hits, path, None, facts)


def _small(rel: str, mode: int, n: int, buffer: _Buffer, needles: Needles, path: str,
           facts: ElfCache | None) -> ScannedFile:
    """A file read whole into ``buffer`` (``n`` bytes)."""
    buf = buffer.buf
    sha256 = hashlib.sha256(buffer.view[:n]).hexdigest()
    maybe = bool(needles.raw) and (not needles.common or buf.find(needles.common, 0, n) >= 0)
    if maybe or buf.startswith(ELF_MAGIC):
        data = bytes(buffer.view[:n])
        return _scanned(rel, mode, n, sha256, data, needles.hits(data) if maybe else (),
                        path, data, facts)
    head = bytes(buffer.view[:min(n, 4096)]) if buf.startswith(b"#!") else b""
    return ScannedFile(path=rel, kind="file", mode=mode, size=n, sha256=sha256,
                       shebang_end=_shebang_end(head))


def _sections(data: bytes, path: str) -> tuple[tuple[str, int, int], ...]:
    """(name, file offset, size) of each section that occupies bytes in an ELF file.

    Read from ``data`` when the file was read whole, else from the file (headers only).
    """
    from elftools.elf.elffile import ELFFile  # imported when needed: rare, slow to import

    try:
        with (io.BytesIO(data) if data else open(path, "rb")) as f:
            return tuple((str(s.name), int(s["sh_offset"]), int(s["sh_size"]))
                         for s in ELFFile(f).iter_sections() if s["sh_type"] != "SHT_NOBITS")
    except Exception:  # pyelftools raises many types on odd files; then nothing is mapped
        return ()


def scan_tree(root: Path, needles: Iterable[str], *, skip: Iterable[str] = (),
              size_hint: Mapping[str, int] | None = None, jobs: int | None = None,
              elf_cache: ElfCache | None = None) -> Tree:
    """Read every file under ``root`` once: sha256, mode, needle hits, ELF facts.

    ``skip`` names bundle-relative paths left out (the manifest); ``size_hint`` (the
    manifest's sizes) lets the largest files start first, which evens out the threads.
    ``elf_cache`` holds ELF facts parsed before, by content (see
    ``isolate.bundle.elf_cache``); without one every ELF file is parsed.
    """
    wanted = Needles(needles)
    entries, dirs, unlisted = _walk(root, frozenset(skip))
    sizes = size_hint or {}
    entries.sort(key=lambda e: -sizes.get(e[0], 0))
    batches = [entries[i:i + _BATCH] for i in range(0, len(entries), _BATCH)]

    local = threading.local()

    def work(batch: list[tuple[str, str, bool]]) -> list[ScannedFile]:
        buffer = getattr(local, "buffer", None)
        if buffer is None:
            buffer = local.buffer = _Buffer()
        return [_scan_link(rel, path) if link else
                _scan_file(rel, path, wanted, buffer, elf_cache)
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
                 skip: Iterable[str] = (), elf_cache: ElfCache | None = None
                 ) -> tuple[Tree, dict[str, bytes]]:
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
            scanned.append(scan_data(m.path, m.data, m.mode, wanted, f"{root}/{m.path}",
                                     elf_cache))
    for f in scanned:  # directories an archive implies without an entry of their own
        parent = f.path.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return tree_of(root, scanned, dirs), kept
