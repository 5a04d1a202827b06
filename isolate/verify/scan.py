"""One pass over a bundle tree: every file read once, hashed and searched at the same time.

``start_scan`` walks the tree (symlinks are recorded, never followed), then reads every
regular file in worker processes (``isolate.proc.process_pool``): each chunk read feeds
sha256 and a search for each needle (the build marker, the build host's prefixes). ELF
files are also described (``isolate.bundle.elf.read_elf``, which reads only their
headers) by the same worker, and when a needle occurs in one, its section table is kept
to tell where. The per-file work is mostly Python, which holds the GIL: threads do not
spread it over cores, processes do. A small tree, one core, or processes that cannot
start or die: the same work in threads, with the same result.

The result is plain data for the checks: no check reads a file's content again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.bundle.elf import ELF_MAGIC, ElfFile, read_elf
from isolate.bundle.elf_cache import Counts, ElfCache
from isolate.errors import InputError
from isolate.model import tree
from isolate.proc import cpus, forks, process_pool

if TYPE_CHECKING:
    from isolate.bundle.unpack import Member, Part, PartState

# Bytes read at a time; a larger file is read in pieces. The buffer stays in the CPU's
# cache while each piece is hashed and searched: on Nova, 128 KiB costs a quarter less CPU
# than 8 MiB (the copies from the page cache, then hashing and searching, ran at the
# speed of memory).
CHUNK = 128 << 10
OFFSETS_KEPT = 1024  # offsets remembered per needle and file (each is located in ELF files)
SAMPLE_CHARS = 160  # characters of context kept around the first occurrence
DEFAULT_THREADS = 2  # more threads only fight over the GIL (see start_scan)
MAX_PROCESSES = 8
# A smaller tree is read in threads: starting processes would cost more than they save.
MIN_FILES_FOR_PROCESSES = 1000  # when they can be forked (a few milliseconds)
MIN_FILES_FOR_FORKSERVER = 8000  # when a fork server must start (about 0.2 s)
_FILE_COST = 16 << 10  # a file costs about as much as reading and hashing this many bytes
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
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


# What a worker returns for one file: a regular file that is not ELF and holds no needle
# (nearly all of them) as (path, mode, size, sha256, shebang_end), which is quick to
# pickle and to send; any other as its ``ScannedFile``.
Row = tuple[str, int, int, str, int] | ScannedFile


# A row is made a ``ScannedFile`` by setting its slots directly: the frozen dataclass's
# ``__init__`` (``object.__setattr__`` per field) takes 3.4 us a file, this 1.2 us, and a
# verify makes 21,000 of them after its workers are done. Every field is set, by name.
def _slot(name: str) -> Callable[[ScannedFile, object], None]:
    return ScannedFile.__dict__[name].__set__  # type: ignore[no-any-return]


_PLAIN_FIELDS = ("path", "kind", "mode", "size", "sha256", "target", "special", "shebang_end",
                 "hits", "is_elf", "elf", "sections", "problem")
if set(_PLAIN_FIELDS) != {f.name for f in dataclasses.fields(ScannedFile)}:
    raise RuntimeError("ScannedFile's fields changed: update _file_of")
(_set_path, _set_kind, _set_mode, _set_size, _set_sha256, _set_target, _set_special,
 _set_shebang_end, _set_hits, _set_is_elf, _set_elf, _set_sections,
 _set_problem) = map(_slot, _PLAIN_FIELDS)
_new = object.__new__


def _file_of(row: Row) -> ScannedFile:
    if isinstance(row, ScannedFile):
        return row
    path, mode, size, sha256, shebang_end = row
    f = _new(ScannedFile)
    _set_path(f, path)
    _set_kind(f, "file")
    _set_mode(f, mode)
    _set_size(f, size)
    _set_sha256(f, sha256)
    _set_target(f, None)
    _set_special(f, None)
    _set_shebang_end(f, shebang_end)
    _set_hits(f, ())
    _set_is_elf(f, False)
    _set_elf(f, None)
    _set_sections(f, ())
    _set_problem(f, None)
    return f


def _walk(root: Path, skip: frozenset[str], dirs: set[str], unlisted: list[tuple[str, str]]
          ) -> Iterator[list[tuple[str, bool]]]:
    """(relative path, is a symlink) of every non-directory, a directory's at a time; the
    directories are added to ``dirs``, (relative path, why) of those that cannot be
    listed to ``unlisted``."""
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
        entries: list[tuple[str, bool]] = []
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
                entries.append((rel, is_link))
        yield entries


def _sample(buf: bytes | bytearray, at: int, length: int, limit: int | None = None) -> str:
    """The path-like run of printable bytes around ``buf[at:at+length]``, within
    ``buf[:limit]``."""
    start = at
    floor = max(0, at - SAMPLE_CHARS)
    while start > floor and buf[start - 1] in _PATHISH:
        start -= 1
    end = at + length
    ceiling = min(len(buf) if limit is None else limit, end + SAMPLE_CHARS)
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
        self.search(buf, len(self._tail), len(buf), base - len(self._tail))
        self._tail = buf[-self.keep:] if self.keep else b""  # what a needle could straddle

    def search(self, buf: bytes | bytearray, new: int, end: int, start: int) -> None:
        """Search ``buf[:end]``, whose offset 0 is file offset ``start``: ``buf[new:end]``
        follows the tail of what was searched before, ``buf[:new]`` (at most ``keep``
        bytes), so that a needle across the two is found."""
        for i, needle in enumerate(self.needles):
            # a match that ends inside the tail was counted with the previous chunk
            at = buf.find(needle, max(0, new - len(needle) + 1), end)
            if at >= 0 and not self.found:
                self._first()
            while at >= 0:
                if self.counts[i] == 0:
                    self.samples[i] = _sample(buf, at, len(needle), end)
                if len(self.offsets[i]) < OFFSETS_KEPT:
                    self.offsets[i].append(start + at)
                self.counts[i] += 1
                at = buf.find(needle, at + len(needle), end)

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

    ``tests`` are what a file without needles is told by, one search each; most files
    end there. ``common`` is the longest substring (4 bytes or more) every needle
    contains: a file without it holds no needle. A search skips ahead by about the
    length of what it looks for, so one search for a short ``common`` can cost more than
    one for each needle ('isolate' against '.isolate-build-' and an 89-byte prefix):
    the cheaper is chosen, counting 1 / length per search."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.names = tuple(dict.fromkeys(n for n in texts if n))
        self.raw = tuple(n.encode("utf-8", "surrogateescape") for n in self.names)
        self.common = _common_substring(self.raw)
        each = sum(1 / len(n) for n in self.raw)
        self.tests = (self.common,) if self.common and 1 / len(self.common) <= each \
            else self.raw

    def maybe(self, buf: bytes | bytearray, end: int) -> bool:
        """Whether ``buf[:end]`` may hold a needle (False: it holds none)."""
        for test in self.tests:  # noqa: SIM110 (any() costs a microsecond more per file)
            if buf.find(test, 0, end) >= 0:
                return True
        return False

    def hits(self, data: bytes) -> tuple[Hit, ...]:
        """Where each needle occurs in ``data``, a whole file."""
        if not self.maybe(data, len(data)):
            return ()
        search = _Search(self.raw)
        search.search(data, 0, len(data), 0)
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
             hits: tuple[Hit, ...], where: str, data: bytes | memoryview | None,
             facts: ElfCache | None) -> ScannedFile:
    """The file's description from what was read: ``sha256`` of its content, ``data``
    (that content, when read whole; not kept: it may be a view of a buffer that is read
    into again). ELF facts come from ``facts``, the cache by content, else are parsed from
    that content (a file read in pieces is read again, and must have the same sha256)."""
    shebang_end = _shebang_end(head)
    is_elf = head[:4] == ELF_MAGIC
    elf: ElfFile | None = None
    problem: str | None = None
    sections: tuple[tuple[str, int, int], ...] = ()
    if is_elf:
        path = Path(where)
        try:
            elf = facts.cached(path, sha256) if facts is not None else None
            if elf is None:
                content = bytes(data) if data is not None else _content(where, sha256)
                elf = facts.parse(path, sha256, content) if facts is not None else read_elf(
                    path, content)
        except InputError as exc:
            problem = exc.message
        if hits:
            sections = _sections(bytes(data) if data is not None else b"", where)
    return ScannedFile(path=rel, kind="file", mode=mode, size=size, sha256=sha256,
                       shebang_end=shebang_end, hits=hits, is_elf=is_elf, elf=elf,
                       sections=sections, problem=problem)


def _content(path: str, sha256: str) -> bytes:
    """The content of the file at ``path``, read again whole; ``InputError`` when it
    cannot be read or its sha256 is no longer ``sha256`` (it changed while read)."""
    try:
        fd = os.open(path, _OPEN)
        try:
            with open(fd, "rb", closefd=False) as f:
                data = f.read()
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(f"cannot read ELF file {path}: {exc.strerror or exc}",
                         hint=f"check that {path} exists and is readable") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InputError(f"{path} changed while it was read",
                         hint="verify a bundle that nothing writes to")
    return data


def scan_data(rel: str, data: bytes, mode: int, needles: Needles, where: str | Path,
              facts: ElfCache | None = None) -> ScannedFile:
    """Describe a regular file whose whole content is ``data`` (``where`` names it)."""
    return _file_of(_data_row(rel, data, mode, needles, os.fspath(where), facts))


class _Buffer:
    """One thread's reusable read buffer: a file of up to ``CHUNK`` bytes is read into it
    with one system call, hashed and searched in place, and copied only when it holds a
    needle (fresh ``bytes`` per file would cost a page fault per 4 KiB). A larger file
    passes through it in pieces."""

    def __init__(self, size: int = CHUNK) -> None:
        self.size = size  # the largest file read whole
        self.buf = bytearray(size + 1)  # one byte more than a file: EOF in one read
        self.view = memoryview(self.buf)

    def fill(self, fd: int, size: int, n: int = 0) -> int:
        """Read on the file from ``fd`` whose size was ``size`` (``n`` bytes are in the
        buffer already); the bytes read, or -1 when it does not fit (it grew past
        ``self.size``).

        A read asks for one byte more than ``size`` (not for the whole buffer, which costs
        the kernel more on small files): when it gets ``size``, that was all."""
        view = self.view
        limit = size + 1
        while True:
            if n == limit:  # it grew since fstat
                if limit > self.size:
                    return -1
                limit = self.size + 1
            got = os.readv(fd, [view[n:limit]])
            n += got
            if not got or n == size:  # EOF; or as large as fstat said, and since the
                return n  # read had room for more, that was all (a second read would say so)


# One buffer per thread; a worker process's keeps its own from one work item to the next.
_BUFFERS = threading.local()


def _buffer() -> _Buffer:
    buffer: _Buffer | None = getattr(_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _BUFFERS.buffer = _Buffer()
    return buffer


def _scan_file(rel: str, path: str, needles: Needles, buffer: _Buffer,
               facts: ElfCache | None) -> Row:
    try:
        fd = os.open(path, _OPEN)
    except OSError as exc:
        if os.path.islink(path):  # replaced while we looked
            return _scan_link(rel, path)
        return ScannedFile(path=rel, kind="file", mode=0, size=0, sha256="",
                           problem=f"cannot be read: {exc.strerror}")
    try:
        st = os.fstat(fd)
        mode = st.st_mode & 0o7777  # stat.S_IMODE and S_ISREG, without a call per file
        if st.st_mode & 0o170000 != stat.S_IFREG:
            return ScannedFile(path=rel, kind="special", mode=mode, size=0, sha256="",
                               special=tree.special_kind(st.st_mode))
        size = st.st_size
        if size > buffer.size:
            return _large(rel, mode, fd, path, needles, buffer, facts)
        view = buffer.view
        n = os.readv(fd, [view[:size + 1]])  # as in _Buffer.fill, whose loop is rarely needed
        if n != size:
            n = buffer.fill(fd, size, n)
            if n < 0:
                return _large(rel, mode, fd, path, needles, buffer, facts)
    except OSError as exc:
        return ScannedFile(path=rel, kind="file", mode=0, size=0, sha256="",
                           problem=f"cannot be read: {exc.strerror}")
    finally:
        os.close(fd)
    # the common case: read whole with one call, hashed and searched in the buffer
    buf = buffer.buf
    sha256 = hashlib.sha256(view[:n]).hexdigest()
    if needles.maybe(buf, n):
        data = bytes(view[:n])
        return _scanned(rel, mode, n, sha256, data, needles.hits(data), path, data, facts)
    # (bounded: past n, the buffer holds what an earlier file left there)
    if buf.startswith(ELF_MAGIC, 0, n):  # not copied: the facts cache mostly has them
        return _scanned(rel, mode, n, sha256, bytes(view[:4]), (), path, view[:n], facts)
    if buf.startswith(b"#!", 0, n):
        return (rel, mode, n, sha256, _shebang_end(bytes(view[:min(n, 4096)])))
    return (rel, mode, n, sha256, -1)


def _large(rel: str, mode: int, fd: int, path: str, needles: Needles, buffer: _Buffer,
           facts: ElfCache | None) -> Row:
    """A file larger than the buffer, read through it in pieces from the start: each
    piece follows the tail of the one before, which a needle could straddle."""
    os.lseek(fd, 0, os.SEEK_SET)
    search = _Search(needles.raw)
    if buffer.size < 2 * search.keep:  # room for the tail and as much again
        buffer = _Buffer(2 * search.keep)
    buf, view = buffer.buf, buffer.view
    digest = hashlib.sha256()
    size, tail, head = 0, 0, b""
    while got := os.readv(fd, [view[tail:]]):
        end = tail + got
        if not size:
            head = bytes(view[:min(end, 4096)])
        digest.update(view[tail:end])
        search.search(buf, tail, end, size - tail)
        size += got
        tail = min(search.keep, end)
        buf[:tail] = buf[end - tail:end]
    hits = search.hits(needles.names) if search.found else ()
    return _scanned(rel, mode, size, digest.hexdigest(), head, hits, path, None, facts)


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


def _batches(listings: Iterable[list[tuple[str, bool]]], sizes: Mapping[str, int],
             workers: int, total: int) -> Iterator[list[tuple[str, bool]]]:
    """Work items of the entries in ``listings``, as they come: each of about 1 / (2 *
    ``workers``) of the cost left, and at first at most 1 / (4 * ``workers``) of ``total``
    (so that every worker soon has one), so that the items shrink towards the end and the
    workers finish together. A file's cost: ``_FILE_COST`` plus its size as ``sizes``
    says; ``total``: what they all are expected to cost."""
    floor = 256 * _FILE_COST
    cap = max(floor, total // (4 * workers))
    left = total
    batch: list[tuple[str, bool]] = []
    acc = 0
    target = max(floor, min(cap, left // (2 * workers)))
    for listing in listings:
        for entry in listing:
            batch.append(entry)
            acc += _FILE_COST + sizes.get(entry[0], 0)
            if acc >= target:
                yield batch
                left -= acc
                batch, acc = [], 0
                target = max(floor, min(cap, left // (2 * workers)))
    if batch:
        yield batch


def _cost(sizes: Mapping[str, int]) -> int:
    """What scanning the files of ``sizes`` is expected to cost (see ``_batches``)."""
    return len(sizes) * _FILE_COST + sum(sizes.values())


def _scan_rows(root: str, batch: Iterable[tuple[str, bool]], needles: Needles,
               buffer: _Buffer, facts: ElfCache | None) -> list[Row]:
    prefix = root if root.endswith("/") else root + "/"
    return [_scan_link(rel, prefix + rel) if link else
            _scan_file(rel, prefix + rel, needles, buffer, facts)
            for rel, link in batch]


def _scan_batch(root: str, batch: Sequence[tuple[str, bool]], needles: Sequence[str],
                elf_dir: str | None) -> tuple[list[Row], Counts | None]:
    """A worker process's work item: the rows of ``batch`` (relative path, is a symlink)
    under ``root``, and how its ELF facts were found (its cache is its own, over the
    caller's directory ``elf_dir``)."""
    facts = ElfCache(Path(elf_dir)) if elf_dir is not None else None
    try:
        rows = _scan_rows(root, batch, Needles(needles), _buffer(), facts)
        return rows, facts.counts if facts is not None else None
    finally:
        if facts is not None:
            facts.close()


class Scan:
    """A scan under way (see ``start_scan``); ``result`` waits for its ``Tree``. Leaving
    it as a context manager stops its worker processes, if any are left."""

    def __init__(self, root: Path, needles: tuple[str, ...], facts: ElfCache | None,
                 threads: int, pool: Executor | None) -> None:
        self.root = root
        self.dirs: set[str] = set()
        self.unlisted: list[tuple[str, str]] = []
        self.in_processes = pool is not None  # started in worker processes
        self.items_in_threads = 0  # work items read in threads (all without processes)
        self._needles = needles
        self._facts = facts
        self._threads = threads
        self._pool = pool
        self._batches: list[list[tuple[str, bool]]] = []
        self._futures: dict[Future[tuple[list[Row], Counts | None]], int] = {}
        self._elf_dir = os.fspath(facts.directory) if facts is not None else None

    def add(self, batch: list[tuple[str, bool]]) -> None:
        """A work item: sent to a worker process at once, if there are any."""
        self._batches.append(batch)
        if self._pool is not None:
            try:
                future = self._pool.submit(_scan_batch, os.fspath(self.root), batch,
                                           self._needles, self._elf_dir)
            except Exception:  # the pool is broken: what was not sent is read in threads
                self.close()
                return
            self._futures[future] = len(self._batches) - 1

    def result(self) -> Tree:
        """The ``Tree``: from the worker processes; any work item they did not return
        (a process died or could not start) is read again in threads."""
        done: list[list[Row] | None] = [None] * len(self._batches)
        scanned: list[ScannedFile] = []
        try:
            for future in as_completed(self._futures):
                rows, counts = future.result()
                done[self._futures[future]] = rows
                if counts is not None and self._facts is not None:
                    self._facts.add(counts)
                scanned += map(_file_of, rows)
        except Exception:  # a process died or could not start: see below
            pass
        finally:
            self.close()
        left = [batch for batch, rows in zip(self._batches, done, strict=True)
                if rows is None]
        self.items_in_threads = len(left)
        if left:
            for rows in _in_threads(os.fspath(self.root), left, Needles(self._needles),
                                    self._facts, self._threads):
                scanned += map(_file_of, rows)
        return tree_of(self.root, scanned, self.dirs, self.unlisted)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Scan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _in_threads(root: str, batches: Sequence[list[tuple[str, bool]]], needles: Needles,
                facts: ElfCache | None, threads: int) -> list[list[Row]]:
    def work(batch: list[tuple[str, bool]]) -> list[Row]:
        return _scan_rows(root, batch, needles, _buffer(), facts)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="isolate-scan") as pool:
        return list(pool.map(work, batches))


def start_scan(root: Path, needles: Iterable[str], *, skip: Iterable[str] = (),
               size_hint: Mapping[str, int] | None = None, jobs: int | None = None,
               elf_cache: ElfCache | None = None, processes: bool | None = None,
               method: str | None = None, pool: Executor | None = None) -> Scan:
    """Walk ``root`` and start reading every file once: sha256, mode, needle hits, ELF
    facts; ``Scan.result()`` gives the ``Tree``.

    ``skip`` names bundle-relative paths left out (the manifest). ``size_hint`` (the
    manifest's sizes) sizes the work items, and tells how many files to expect: then the
    worker processes start first, and read while the tree is walked. ``elf_cache`` holds
    ELF facts parsed before, by content (see ``isolate.bundle.elf_cache``); without one
    every ELF file is parsed.

    The files are read by ``jobs`` worker processes (default: one per CPU, at most
    ``MAX_PROCESSES``), started here: before the caller starts threads of its own, they
    can be forked (see ``isolate.proc.process_pool``, which ``method`` is passed to).
    ``processes``: False reads in threads, True in processes even for a small tree; by
    default a tree of fewer than ``MIN_FILES_FOR_PROCESSES`` files (when they can be
    forked, else ``MIN_FILES_FOR_FORKSERVER``) is read in threads. ``pool``: worker
    processes started before (``worker_pool``), used whatever the tree; the scan shuts
    them down.
    Threads are ``jobs`` or ``DEFAULT_THREADS``: one hashes or reads (no GIL) while the
    other searches and parses (GIL); on the Nova bundle, 4 threads cost twice the CPU of
    2 for no gain in wall time.
    """
    wanted = Needles(needles).names
    skipped = frozenset(skip)
    sizes = size_hint or {}
    n_cpus = cpus()
    workers = jobs or min(n_cpus, MAX_PROCESSES)
    threads = jobs or min(DEFAULT_THREADS, n_cpus)
    least = MIN_FILES_FOR_PROCESSES if forks() else MIN_FILES_FOR_FORKSERVER
    listings: Iterable[list[tuple[str, bool]]]
    if pool is not None:
        processes = True
    if sizes:  # the manifest says how many files, how large: the walk feeds the workers
        if processes is None:
            processes = len(sizes) >= least
        scan = _start(root, wanted, elf_cache, processes, workers, threads, method, pool)
        listings = _walk(root, skipped, scan.dirs, scan.unlisted)
        total = _cost(sizes)
    else:  # walked first, and counted
        dirs: set[str] = set()
        unlisted: list[tuple[str, str]] = []
        listings = list(_walk(root, skipped, dirs, unlisted))
        count = sum(map(len, listings))
        if processes is None:
            processes = count >= least
        scan = _start(root, wanted, elf_cache, processes, workers, threads, method, pool)
        scan.dirs, scan.unlisted = dirs, unlisted
        total = count * _FILE_COST
    try:
        for batch in _batches(listings, sizes, workers if scan.in_processes else threads,
                              total):
            scan.add(batch)
    except BaseException:
        scan.close()
        raise
    return scan


def _start(root: Path, needles: tuple[str, ...], facts: ElfCache | None, processes: bool,
           workers: int, threads: int, method: str | None, pool: Executor | None) -> Scan:
    if pool is None and processes:
        pool = worker_pool(workers, method)
    return Scan(root, needles, facts, threads, pool)


def worker_pool(jobs: int | None = None, method: str | None = None) -> Executor | None:
    """Worker processes for ``start_scan``, started now; None on one CPU or where they
    cannot start (the scan then reads in threads). ``jobs``: how many (default: one per
    CPU, at most ``MAX_PROCESSES``); ``method``: see ``isolate.proc.process_pool``.

    Started before large data is built, they cost less: a forked process shares this
    one's memory, and every page of it that this process writes while they live is
    copied first (on Nova, building the manifest from its JSON after the fork took 3,400
    more page faults and 0.015 to 0.05 s more CPU)."""
    workers = jobs or min(cpus(), MAX_PROCESSES)
    if workers < 2:
        return None
    try:
        return process_pool(workers, preload=[__name__], method=method)
    except Exception:  # no processes here (no /dev/shm, a limit): threads then
        return None


def scan_tree(root: Path, needles: Iterable[str], *, skip: Iterable[str] = (),
              size_hint: Mapping[str, int] | None = None, jobs: int | None = None,
              elf_cache: ElfCache | None = None, processes: bool | None = None,
              method: str | None = None) -> Tree:
    """Read every file under ``root`` once (see ``start_scan``) and return the ``Tree``."""
    with start_scan(root, needles, skip=skip, size_hint=size_hint, jobs=jobs,
                    elf_cache=elf_cache, processes=processes, method=method) as scan:
        return scan.result()


def tree_of(root: Path, scanned: Iterable[ScannedFile], dirs: Iterable[str],
            unlisted: Iterable[tuple[str, str]] = ()) -> Tree:
    """The ``Tree`` of scanned files, wherever they were read (a directory, an archive)."""
    files = {f.path: f for f in sorted(scanned, key=lambda f: f.path)}
    total = sum(f.size for f in files.values() if f.kind == "file")
    return Tree(root=root, files=files, dirs=frozenset(dirs), bytes_read=total,
                unlisted=tuple(sorted(unlisted)))


def _member_rows(root: Path, members: Iterable[Member], needles: Needles,
                 left_out: frozenset[str], facts: ElfCache | None
                 ) -> tuple[list[Row], list[str], dict[str, bytes]]:
    """The rows of an archive's entries as they stream past, the directories they have
    entries for, and the data of the entries in ``left_out``."""
    rows: list[Row] = []
    dirs: list[str] = []
    kept: dict[str, bytes] = {}
    prefix = f"{root}/"
    for m in members:
        path = m.path
        if not path:
            continue  # the top-level directory itself
        if path in left_out:
            if m.kind == "file":
                kept[path] = m.data
            continue
        kind = m.kind
        if kind == "file":
            rows.append(_data_row(path, m.data, m.mode, needles, prefix + path, facts))
        elif kind == "dir":
            dirs.append(path)
        else:
            target = m.target or ""
            rows.append(ScannedFile(path=path, kind=tree.SYMLINK, mode=tree.LINK_MODE,
                                    size=tree.link_size(target),
                                    sha256=tree.link_sha256(target), target=target))
    return rows, dirs, kept


def _data_row(rel: str, data: bytes, mode: int, needles: Needles, where: str,
              facts: ElfCache | None) -> Row:
    """``scan_data``'s description of a file whose whole content is ``data``, as a
    ``Row``: a plain tuple for a file that is not ELF and holds no needle."""
    sha256 = hashlib.sha256(data).hexdigest()
    n = len(data)
    if needles.maybe(data, n):
        return _scanned(rel, mode, n, sha256, data, needles.hits(data), where, data, facts)
    if data.startswith(ELF_MAGIC):
        return _scanned(rel, mode, n, sha256, data, (), where, data, facts)
    return (rel, mode, n, sha256, _shebang_end(data) if data.startswith(b"#!") else -1)


def _archive_tree(root: Path, scanned: list[ScannedFile], dirs: Iterable[str]) -> Tree:
    """The ``Tree`` of an archive's files and directory entries, with the directories it
    implies without an entry of their own."""
    seen = set(dirs)
    for f in scanned:
        parent = f.path.rpartition("/")[0]
        while parent and parent not in seen:
            seen.add(parent)
            parent = parent.rpartition("/")[0]
    return tree_of(root, scanned, seen)


def scan_members(root: Path, members: Iterable[Member], needles: Iterable[str], *,
                 skip: Iterable[str] = (), elf_cache: ElfCache | None = None
                 ) -> tuple[Tree, dict[str, bytes]]:
    """The ``Tree`` of an archive's entries as they stream past (``root`` names its
    top-level directory; nothing is on disk), and the data of the entries in ``skip``."""
    rows, dirs, kept = _member_rows(root, members, Needles(needles), frozenset(skip),
                                    elf_cache)
    return _archive_tree(root, [_file_of(r) for r in rows], dirs), kept


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def _keep_freed_memory() -> None:
    """In a worker process, have glibc's malloc keep what is freed for what comes next.
    By default a block over 128 KiB (the threshold rises with what is freed, to 32 MiB
    at most) is a mapping of its own, unmapped when freed, and the heap's top is given
    back beyond 128 KiB: a part's frames (8 MiB each, decompressed) and large files were
    fresh pages every time, a page fault each 4 KiB. A Nova verify took 102,000 page
    faults and 0.44 s of system time with them, 68,000 and 0.29 s without. The worker
    ends with the scan, and what it kept goes then. Elsewhere than glibc (no
    ``mallopt``), nothing changes."""
    import ctypes
    import multiprocessing

    if multiprocessing.parent_process() is None:  # this process lives on: leave it be
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # the largest glibc takes
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def _scan_part(root: str, archive: str, part: Part, max_entry_bytes: int,
               max_total_bytes: int, needles: Sequence[str], skip: Sequence[str],
               elf_dir: str | None
               ) -> tuple[list[Row], list[str], dict[str, bytes], PartState, Counts | None]:
    """A worker process's share of ``PartScan``: the rows, directory entries, the sha256
    digests of the entries skipped (not their data: the caller has it, and Nova's
    manifest is 4 MB to send) and ``PartState`` of one part of an archive (``Irregular``
    when it cannot be read on its own), and how its ELF facts were found (its cache is
    its own, over ``elf_dir``)."""
    from isolate.bundle.unpack import PartReader

    _keep_freed_memory()
    facts = ElfCache(Path(elf_dir)) if elf_dir is not None else None
    try:
        reader = PartReader(Path(archive), part, max_entry_bytes=max_entry_bytes,
                            max_total_bytes=max_total_bytes)
        rows, dirs, kept = _member_rows(Path(root), reader.members(), Needles(needles),
                                        frozenset(skip), facts)
        digests = {path: hashlib.sha256(data).digest() for path, data in kept.items()}
        return rows, dirs, digests, reader.state(), \
            facts.counts if facts is not None else None
    finally:
        if facts is not None:
            facts.close()


_HAND_OVER_SECONDS = 0.02


class PartScan:
    """The scan of a multi-frame archive (see ``isolate.bundle.unpack.archive_parts``)
    under way, one part per worker process; ``result`` waits for its ``Tree``, or says
    it must be read whole. Until ``result`` gives a tree, the pool is this scan's: leaving
    it as a context manager, or a failed ``result``, shuts the pool down and waits for
    its processes; after, it is the caller's again (to shut down, and with work it may
    have given the pool meanwhile)."""

    def __init__(self, root: Path, archive: Path, parts: Sequence[Part],
                 needles: Iterable[str], pool: Executor, *, skip: Iterable[str] = (),
                 elf_cache: ElfCache | None = None, max_entry_bytes: int = 4 << 30,
                 max_total_bytes: int = 32 << 30) -> None:
        self._root = root
        self._facts = elf_cache
        self._pool: Executor | None = pool
        self._max_total = max_total_bytes
        self.why: str | None = None  # why ``result`` gave None
        elf_dir = os.fspath(elf_cache.directory) if elf_cache is not None else None
        wanted, left_out = Needles(needles).names, tuple(skip)
        self._futures = [pool.submit(_scan_part, os.fspath(root), os.fspath(archive), part,
                                     max_entry_bytes, max_total_bytes, wanted, left_out,
                                     elf_dir) for part in parts]
        # A process pool's threads hand the parts to the workers, and need the GIL for it:
        # a long call that holds it (parsing the manifest's JSON, 40 ms for Nova) would
        # hold a worker back. Give them a moment first (until each part is handed over,
        # 20 ms at most, then 1 ms).
        deadline = time.monotonic() + _HAND_OVER_SECONDS
        while time.monotonic() < deadline and not all(f.running() or f.done()
                                                      for f in self._futures):
            time.sleep(0.0005)
        time.sleep(0.001)  # (the queue's thread pickles and sends what it was given)

    def result(self) -> tuple[Tree, dict[str, bytes]] | None:
        """The ``Tree`` of the archive and the sha256 digest of each entry skipped; None when a
        part cannot be read on its own, the parts do not join into an archive that
        ``read_members`` accepts, or a worker died (``why`` says which): then read the
        archive whole, which refuses it, if it must be refused, in its own words."""
        from isolate.bundle.unpack import Irregular, join_parts

        index = {future: i for i, future in enumerate(self._futures)}
        done: list[Any] = [None] * len(self._futures)
        scanned: list[ScannedFile] = []
        try:
            for future in as_completed(self._futures):  # a part's files are made while
                done[index[future]] = result = future.result()  # the others are read
                scanned += map(_file_of, result[0])
        except Irregular as exc:
            self.why = f"a part cannot be read on its own ({exc})"
        except Exception as exc:  # a worker died or could not start
            self.why = f"a worker failed ({type(exc).__name__}: {exc})"
        else:
            if not join_parts([d[3] for d in done], max_total_bytes=self._max_total):
                self.why = "its parts do not join"
        if self.why is not None:
            self.close()  # (the archive is read whole next, by a child this process forks)
            return None
        self._pool = None  # done with it: the pool's owner shuts it down (see close)
        dirs: list[str] = []
        kept: dict[str, bytes] = {}
        for _rows, part_dirs, part_kept, _state, counts in done:
            dirs += part_dirs
            kept.update(part_kept)
            if counts is not None and self._facts is not None:
                self._facts.add(counts)
        return _archive_tree(self._root, scanned, dirs), kept

    def close(self) -> None:
        """Shut the pool down, its work not yet started cancelled, and wait for its
        processes to end; once ``result`` has given a tree, the pool is its owner's
        again, and this does nothing."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> PartScan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
