"""Write bundles as byte-reproducible archives (``write_archive``).

The tree is walked in bytewise name order (``os.scandir``, one directory at a time) and
written as a tar stream whose headers carry only what matters: entry names under
``<root_name>/``, uid/gid 0 with empty owner names, one fixed mtime (``SOURCE_DATE_EPOCH``
or 1980-01-01, see ``default_mtime``) and normalised modes (directories 0755, files 0755
when any execute bit is set and 0644 otherwise, symlinks 0777 with their relative
target). Hard links are stored as regular files; FIFOs, devices and sockets are refused.
GNU headers never carry pax records, so no access or change times leak in. A name over
100 bytes that POSIX ustar's 155-byte prefix field can hold gets a ustar header instead
(one block where GNU writes a long-name record and the header: most of a Python
runtime's names are that long, and a reader parses half the headers); a longer one, or
one with a link target over 100 bytes, gets GNU long-name and long-link records.

The tree is listed first (each zstd frame header states its content's size), then the
tar stream is compressed on the fly, file contents read straight into buffers that a few
threads fill ahead of the writer (``gzip``: segments of 4 MiB, at most nine held in
memory, zlib's output not depending on how its input is cut; ``tar.zst``: whole frames,
at most ``_AHEAD_BYTES``, 48 MiB of tar, ahead):

* ``tar.gz``: ``gzip`` level 6, header mtime 0, no file name in the header.
* ``tar.zst``: ``zstandard`` level 3 (``--zstd-level``: 1 to 19), written as a sequence
  of independent zstd frames (RFC 8878 allows any number; ``zstd``, GNU tar and
  libarchive read them as one stream), each with a checksum and its content size, each
  holding whole tar entries: a frame ends after the first entry that brings it to
  ``_FRAME`` (8 MiB) of tar, and an entry of ``_LARGE`` (16 MiB) or more has a frame of
  its own. A frame therefore starts where a tar header starts, so a reader can read the
  frames in parallel, each on its own core (``isolate verify`` does: see
  ``isolate.bundle.unpack.archive_parts``). The frames are compressed in threads, one
  each, single-threaded (``threads=0``), so the output does not depend on the machine's
  core count; a large entry's frame is compressed as a stream by zstd's own workers
  (``threads=-1``): zstd's streaming multi-threaded output is byte-identical for any
  number of workers >= 1 (facebook/zstd#2238, #2327, #3608). Frames cost almost nothing
  in size: Nova's runtime is 0.08 % larger than as one frame. (A reader must go on
  after the first frame: ``zstandard.ZstdDecompressor().decompress`` stops there, its
  ``stream_reader(..., read_across_frames=True)`` does not.)

The same tree, tool version, Python tar header code (stable from 3.9 to 3.13) and
compression library versions (libzstd inside ``zstandard``, zlib) give the same bytes.

The archive is written to a temporary file next to ``dest`` and renamed into place, so
``dest`` is never a partial archive; ``<dest>.sha256`` (``sha256sum`` format) follows.

Unpacking is ``isolate.bundle.unpack``; the names and formats both sides agree on are
``isolate.bundle.archive_format``; the tree's modes and inside-root rules are
``isolate.model.tree``.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import itertools
import os
import stat
import struct
import tarfile
import tempfile
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

import zstandard

from isolate.bundle.archive_format import (
    ZSTD_LEVEL,
    ZSTD_LEVELS,
    archive_name,
    check_format,
    claimed_format,
    default_mtime,
)
from isolate.errors import InputError
from isolate.fsutil import ensure_writable_dir, write_atomic
from isolate.model import tree

ZSTD_THREADS = -1  # a large entry's frame: one worker per CPU; output independent of the count
GZIP_LEVEL = 6

_BLOCK = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 10240: tar output is padded to whole records
_SEGMENT = 4 << 20  # tar bytes per write into the compressor (gzip, a large entry's frame)
_FRAME = 8 << 20  # tar bytes per zstd frame, at least: it ends with the entry that gets there
_LARGE = 16 << 20  # an entry of this size or more (its data) gets a zstd frame of its own
_AHEAD_BYTES = 48 << 20  # tar bytes of frames filled and compressed ahead of the writer
_READERS = 4  # threads filling segments (and compressing frames)
_AHEAD = 8  # gzip segments filled ahead of the writer (zstd: _AHEAD_BYTES)


class _Entry(NamedTuple):  # a tuple: 24,000 of them are made at once, and cheaply
    header: bytes
    source: str | None  # regular file whose content follows the header
    size: int


class _Sink(Protocol):
    def write(self, data: bytes | bytearray, /) -> int: ...


class _HashingFile:
    """Passes compressed bytes to the file, hashing them on the way."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()
        self.discard = False  # set on failure: closing a compressor then writes nothing

    def write(self, data: bytes | bytearray, /) -> int:
        if not self.discard:
            self._f.write(data)
            self.sha256.update(data)
        return len(data)

    def flush(self) -> None:
        if not self.discard:
            self._f.flush()


def _info(name: str, kind: bytes, mode: int, mtime: int, size: int = 0,
          linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = mtime
    ti.size = size
    ti.linkname = linkname
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def _header(ti: tarfile.TarInfo) -> bytes:
    return ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


_FIELD_MAX = 8**11  # the largest size or mtime an 11-digit octal field holds, plus one
# name, mode, uid+gid, size, mtime, checksum, type, link target, magic, owner names and
# device numbers (zeros), ustar name prefix, padding
_LAYOUT = struct.Struct("100s8s16s12s12s8sc100s8s80s155s12s")
_IDS = b"0000000\0" * 2  # uid 0, gid 0


def _byte_sum(block: bytes) -> int:
    """The sum of a header block's bytes. The low 16 bits of Adler-32 are one plus the sum
    of the bytes modulo 65521; 256 bytes sum to at most 65280, so each half is exact."""
    view = memoryview(block)
    return (zlib.adler32(view[:256]) & 0xFFFF) + (zlib.adler32(view[256:]) & 0xFFFF) - 2


def _block(raw: bytes, kind: bytes, mode: int, mtime: int, size: int, link: bytes,
           prefix: bytes | None = None) -> bytes:
    """One header block: GNU, or POSIX ustar with the name's ``prefix``; ``raw`` and
    ``link`` are cut to their 100-byte fields."""
    magic = tarfile.GNU_MAGIC if prefix is None else tarfile.POSIX_MAGIC
    buf = _LAYOUT.pack(raw, b"%07o" % (mode & 0o7777), _IDS, b"%011o" % size, b"%011o" % mtime,
                       b"        ", kind, link, magic, b"", prefix or b"", b"")
    # the checksum counts its own field as spaces
    return b"%s%06o\0 %s" % (buf[:148], _byte_sum(buf), buf[156:])


@functools.lru_cache(maxsize=512)
def _long_block(size: int, kind: bytes) -> bytes:
    return _block(b"././@LongLink", kind, 0, 0, size, b"")


def _long(value: bytes, kind: bytes) -> bytes:
    """A GNU ``././@LongLink`` record carrying a name or link target over 100 bytes."""
    size = len(value) + 1
    return b"%s%s%s" % (_long_block(size, kind), value, bytes(1 + _padding(size, _BLOCK)))


def _ustar_split(raw: bytes) -> tuple[bytes, bytes] | None:
    """A name over 100 bytes as ustar's prefix (at most 155 bytes) and name (at most 100),
    cut at a "/" as tarfile cuts it (the shortest prefix that leaves a name that fits);
    None when no cut fits."""
    cut = raw.find(b"/", max(0, len(raw) - tarfile.LENGTH_NAME - 1))
    while 0 < cut <= tarfile.LENGTH_PREFIX:
        if len(raw) - cut - 1 <= tarfile.LENGTH_NAME:
            return raw[:cut], raw[cut + 1:]
        cut = raw.find(b"/", cut + 1)
    return None


def _fast_header(name: str, kind: bytes, mode: int, mtime: int, size: int = 0,
                 linkname: str = "") -> bytes:
    """``_header(_info(...))`` without tarfile's per-call cost: a name over 100 bytes that
    ustar's prefix field can hold gets a POSIX ustar header (tarfile's ``USTAR_FORMAT``
    bytes, one block instead of a long-name record and the header, half the headers a
    reader parses), anything else tarfile's GNU header blocks, long-name and long-link
    records included. Sizes and times beyond the octal fields (base-256 numbers) go
    through tarfile. ``test_archive`` checks both give tarfile's bytes."""
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    if not 0 <= size < _FIELD_MAX or not 0 <= mtime < _FIELD_MAX:
        return _header(_info(name, kind, mode, mtime, size, linkname))
    raw = name.encode("utf-8", "surrogateescape")
    link = linkname.encode("utf-8", "surrogateescape")
    if len(raw) > tarfile.LENGTH_NAME and len(link) <= tarfile.LENGTH_LINK:
        split = _ustar_split(raw)
        if split is not None:
            return _block(split[1], kind, mode, mtime, size, link, prefix=split[0])
    block = _block(raw, kind, mode, mtime, size, link)
    if len(raw) > tarfile.LENGTH_NAME:
        block = _long(raw, tarfile.GNUTYPE_LONGNAME) + block
    if len(link) > tarfile.LENGTH_LINK:
        block = _long(link, tarfile.GNUTYPE_LONGLINK) + block
    return block


def _sorted_children(path: str | Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: os.fsencode(e.name))
    except OSError as exc:
        raise InputError(f"cannot list {path}: {exc.strerror}",
                         hint="make the bundle directory readable") from exc


def _collect(src: Path, root_name: str, mtime: int) -> list[_Entry]:
    """The tree's entries in archive order: depth first, each directory's children in
    bytewise name order."""
    real_src = os.path.realpath(src)
    entries = [_Entry(_fast_header(root_name, tarfile.DIRTYPE, tree.DIR_MODE, mtime), None, 0)]
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [
        (root_name, iter(_sorted_children(src)))]
    while stack:
        arc_dir, children = stack[-1]
        for entry in children:
            path = entry.path
            arcname = f"{arc_dir}/{entry.name}"
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror}",
                                 hint="make the bundle directory readable") from exc
            mode = st.st_mode
            if stat.S_ISREG(mode):
                size = st.st_size
                entries.append(_Entry(_fast_header(arcname, tarfile.REGTYPE,
                                                   tree.normal_mode(mode), mtime, size),
                                      path, size))
            elif stat.S_ISDIR(mode):
                entries.append(_Entry(_fast_header(arcname, tarfile.DIRTYPE, tree.DIR_MODE,
                                                   mtime), None, 0))
                stack.append((arcname, iter(_sorted_children(path))))
                break  # its children come next; this directory's others after them
            elif stat.S_ISLNK(mode):
                entries.append(_Entry(_fast_header(arcname, tarfile.SYMTYPE, tree.LINK_MODE,
                                                   mtime, linkname=_link_target(src, real_src,
                                                                                arc_dir, path)),
                                      None, 0))
            else:
                raise InputError(f"cannot archive {path}: it is a {tree.special_kind(mode)}",
                                 hint="remove it; a bundle holds only files, directories and "
                                      "symlinks")
        else:
            stack.pop()
    return entries


def _link_target(src: Path, real_src: str, arc_dir: str, path: str) -> str:
    """The target of the symlink ``path`` in the directory ``arc_dir`` (an archive name),
    refused unless it is relative and stays inside ``src``."""
    try:
        target = os.readlink(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}",
                         hint="make the bundle directory readable") from exc
    rel_dir = arc_dir.split("/")[1:]
    if (not target or target.startswith("/") or tree.link_escapes(rel_dir, target)
            or not tree.resolves_within(path, real_src)):
        raise InputError(
            f"cannot archive symlink {path} -> {target}: it points outside {src}",
            hint="bundles are relocatable: make the link relative and inside the bundle")
    return target


def _padding(size: int, unit: int) -> int:
    return -size % unit


def _tar_size(entries: Sequence[_Entry]) -> int:
    body = sum(len(e.header) + e.size + _padding(e.size, _BLOCK) for e in entries) + 2 * _BLOCK
    return body + _padding(body, _RECORD)


class _Part(NamedTuple):
    """A stretch of the tar stream that is not zeros: a header, or a file's content."""

    offset: int  # in the tar stream
    size: int
    header: bytes | None
    source: str | None


@dataclass(frozen=True, slots=True)
class _Segment:
    """The tar stream's bytes ``start`` to ``end``: zeros but where ``parts`` cover it."""

    start: int
    end: int
    parts: tuple[_Part, ...]


def _parts(entries: Sequence[_Entry]) -> Iterator[_Part]:
    offset = 0
    for header, source, size in entries:
        yield _Part(offset, len(header), header, None)
        offset += len(header)
        if size:
            yield _Part(offset, size, None, source)
            offset += size + _padding(size, _BLOCK)


def _segments(entries: Sequence[_Entry], cuts: Iterable[tuple[int, int]]) -> Iterator[_Segment]:
    """The tar stream cut into the pieces ``cuts`` gives, in order and without gaps (a
    large file spans several; padding and the end-of-archive blocks are the zeros between
    and after the parts)."""
    parts = _parts(entries)
    part = next(parts, None)
    for start, end in cuts:
        inside: list[_Part] = []
        while part is not None and part.offset < end:
            inside.append(part)
            if part.offset + part.size > end:
                break  # it goes on in the next segment
            part = next(parts, None)
        yield _Segment(start, end, tuple(inside))


def _read_into(path: str, view: memoryview, offset: int) -> None:
    """Fill ``view`` with the bytes of the file ``path`` from ``offset`` on."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}",
                         hint="make the bundle directory readable") from exc
    try:
        while view:
            try:
                n = os.preadv(fd, [view], offset)
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror}",
                                 hint="make the bundle directory readable") from exc
            if not n:
                raise InputError(f"{path} shrank while it was being archived",
                                 hint="do not change the bundle while archiving it")
            view = view[n:]
            offset += n
    finally:
        os.close(fd)


def _fill(segment: _Segment) -> bytearray:
    """The bytes of ``segment``: headers copied, file contents read in place."""
    start = segment.start
    buf = bytearray(segment.end - start)
    view = memoryview(buf)
    for p in segment.parts:
        lo = max(p.offset, start)
        hi = min(p.offset + p.size, segment.end)
        if p.header is not None:
            buf[lo - start:hi - start] = p.header[lo - p.offset:hi - p.offset]
        else:
            assert p.source is not None
            _read_into(p.source, view[lo - start:hi - start], lo - p.offset)
    return buf


def _even_cuts(start: int, end: int) -> Iterator[tuple[int, int]]:
    """``start`` to ``end`` in pieces of ``_SEGMENT`` bytes (the last one shorter)."""
    for lo in range(start, end, _SEGMENT):
        yield lo, min(lo + _SEGMENT, end)


def _emit(sink: _Sink, entries: Sequence[_Entry], total: int,
          progress: Callable[[int, int], None] | None) -> None:
    """Write the tar stream of ``entries`` to ``sink`` in order, ``_SEGMENT`` bytes at a
    time, while ``_READERS`` threads fill the next ``_AHEAD`` segments (reads and the
    compressor release the GIL, so reading overlaps compressing)."""
    pool = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="isolate-archive")
    try:
        pending: deque[Future[bytearray]] = deque()
        todo = _segments(entries, _even_cuts(0, total))
        for segment in itertools.islice(todo, _AHEAD):
            pending.append(pool.submit(_fill, segment))
        done = 0
        while pending:
            data = pending.popleft().result()
            following = next(todo, None)
            if following is not None:
                pending.append(pool.submit(_fill, following))
            sink.write(data)
            done += len(data)
            if progress is not None:
                progress(done, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Frame(NamedTuple):
    """The tar stream's bytes ``start`` to ``end`` as one zstd frame: whole entries."""

    start: int
    end: int
    large: bool  # one entry of ``_LARGE`` or more: compressed in segments, as a stream


def _frames(entries: Sequence[_Entry], total: int) -> list[_Frame]:
    """The zstd frames of the tar stream of ``entries``: each ends with the entry that
    brings it to ``_FRAME`` bytes, an entry of ``_LARGE`` or more has one of its own, and
    the last one holds the end-of-archive blocks."""
    frames: list[_Frame] = []
    start = offset = 0
    for header, _source, size in entries:
        length = len(header) + size + _padding(size, _BLOCK)
        if size >= _LARGE:
            if offset > start:
                frames.append(_Frame(start, offset, large=False))
            frames.append(_Frame(offset, offset + length, large=True))
            start = offset = offset + length
            continue
        offset += length
        if offset - start >= _FRAME:
            frames.append(_Frame(start, offset, large=False))
            start = offset
    frames.append(_Frame(start, total, large=False))  # at least the end-of-archive blocks
    return frames


_COMPRESSORS = threading.local()  # each thread's compressor, kept: it holds its tables


def _zstd_frame(segment: _Segment, level: int) -> bytes:
    """The bytes of ``segment`` (a whole small frame) compressed as one zstd frame."""
    cctx: zstandard.ZstdCompressor | None = getattr(_COMPRESSORS, str(level), None)
    if cctx is None:
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=True,
                                        write_content_size=True)
        setattr(_COMPRESSORS, str(level), cctx)
    return cctx.compress(_fill(segment))


def _emit_zstd(sink: _Sink, entries: Sequence[_Entry], total: int, level: int,
               progress: Callable[[int, int], None] | None) -> None:
    """Write the tar stream of ``entries`` to ``sink`` as the zstd frames ``_frames``
    gives, in order: ``_READERS`` threads fill and compress the next ``_AHEAD_BYTES`` of small
    frames (reading and compressing release the GIL), or fill the next segments of a
    large entry's frame, which zstd's own workers compress as a stream here."""
    frames = _frames(entries, total)
    cuts: list[tuple[int, int]] = []
    ends: list[tuple[_Frame, bool]] = []  # per piece: its frame, whether the frame ends
    for frame in frames:
        pieces = list(_even_cuts(frame.start, frame.end)) if frame.large else \
            [(frame.start, frame.end)]
        cuts += pieces
        ends += [(frame, i == len(pieces) - 1) for i in range(len(pieces))]
    pool = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="isolate-archive")
    stream: zstandard.ZstdCompressionObj | None = None
    try:
        pending: deque[Future[bytes] | Future[bytearray]] = deque()
        todo = zip(_segments(entries, cuts), ends, strict=True)

        held = 0  # tar bytes submitted and not written yet

        def submit() -> None:
            nonlocal held
            while held < _AHEAD_BYTES or not pending:
                item = next(todo, None)
                if item is None:
                    return
                segment, (frame, _end) = item
                pending.append(pool.submit(_fill, segment) if frame.large
                               else pool.submit(_zstd_frame, segment, level))
                held += segment.end - segment.start

        submit()
        done = 0
        for (start, end), (frame, last) in zip(cuts, ends, strict=True):
            data = pending.popleft().result()
            held -= end - start
            submit()
            if not frame.large:
                sink.write(data)
            else:
                if stream is None:
                    cctx = zstandard.ZstdCompressor(level=level, threads=ZSTD_THREADS,
                                                    write_checksum=True,
                                                    write_content_size=True)
                    stream = cctx.compressobj(size=frame.end - frame.start)
                sink.write(stream.compress(data))
                if last:
                    sink.write(stream.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))
                    stream = None
            done += end - start
            if progress is not None:
                progress(done, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def write_archive(src: Path, dest: Path, *, fmt: str, root_name: str, mtime: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  zstd_level: int = ZSTD_LEVEL) -> str:
    """Archive the tree ``src`` as ``root_name/...`` into ``dest``; return its sha256.

    ``progress(done, total)`` is called as uncompressed tar bytes are written; an exception
    it raises aborts the write and leaves no file behind. ``<dest>.sha256`` is written too.
    """
    check_format(fmt)
    if not root_name or "/" in root_name or root_name in (".", "..") or "\0" in root_name:
        raise InputError(f"bad archive root name {root_name!r}",
                         hint="use the bundle's name: one path component")
    suffix, claimed = claimed_format(dest.name)
    if suffix and claimed != fmt:
        raise InputError(f"cannot write a {fmt} archive to {dest}: the name says {suffix}",
                         hint=f"name it {archive_name('<bundle>', fmt)}")
    if not ZSTD_LEVELS[0] <= zstd_level <= ZSTD_LEVELS[1]:
        raise InputError(f"zstd level {zstd_level} is out of range",
                         hint=f"use {ZSTD_LEVELS[0]} to {ZSTD_LEVELS[1]}")
    stamp = default_mtime() if mtime is None else mtime
    if not 0 <= stamp < 8**11:
        raise InputError(f"archive mtime {stamp} is out of range",
                         hint="set SOURCE_DATE_EPOCH to seconds since 1970")
    if not src.is_dir():
        raise InputError(f"cannot archive {src}: not a directory",
                         hint="pass the bundle's directory")
    if tree.within(os.path.realpath(dest.parent), os.path.realpath(src)):
        raise InputError(f"cannot write the archive {dest} inside the tree it archives ({src})",
                         hint="write the archive next to the bundle directory")
    entries = _collect(src, root_name, stamp)
    total = _tar_size(entries)
    ensure_writable_dir(dest.parent, what="output directory")
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    sidecar = dest.with_name(dest.name + ".sha256")
    try:
        with os.fdopen(fd, "wb") as raw:
            sink = _HashingFile(raw)
            if fmt == "tar.zst":
                try:
                    _emit_zstd(sink, entries, total, zstd_level, progress)
                except BaseException:
                    sink.discard = True
                    raise
            else:
                comp = gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL,
                                     fileobj=sink, mtime=0)
                try:
                    _emit(comp, entries, total, progress)
                    comp.close()
                except BaseException:
                    sink.discard = True
                    with contextlib.suppress(Exception):
                        comp.close()
                    raise
            raw.flush()
            os.fsync(raw.fileno())
        tmp.chmod(0o644)
        digest = sink.sha256.hexdigest()
        line = f"{digest}  {dest.name}\n"
        try:
            unchanged = sidecar.read_text() == line
        except (OSError, UnicodeDecodeError):
            unchanged = False
        if not unchanged:
            # Never a stale checksum beside a new archive: without one, unpack checks
            # nothing; with a stale one it would refuse a good archive.
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()
        tmp.replace(dest)
        if unchanged:
            return digest  # the same bytes: the checksum beside it stays right throughout
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write archive {dest}: {exc.strerror or exc}",
                         hint="check free space and permissions of the output directory") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    write_atomic(sidecar, f"{digest}  {dest.name}\n")
    return digest


__all__ = ["write_archive"]
