"""Write bundles as byte-reproducible archives (``write_archive``).

The tree is walked in bytewise name order (``os.scandir``, one directory at a time) and
written as a GNU tar stream whose headers carry only what matters: entry names under
``<root_name>/``, uid/gid 0 with empty owner names, one fixed mtime (``SOURCE_DATE_EPOCH``
or 1980-01-01, see ``default_mtime``) and normalised modes (directories 0755, files 0755
when any execute bit is set and 0644 otherwise, symlinks 0777 with their relative
target). Hard links are stored as regular files; FIFOs, devices and sockets are refused.
GNU headers never carry pax records, so no access or change times leak in.

The tar stream is compressed on the fly (nothing is held in memory):

* ``tar.gz``: ``gzip`` level 6, header mtime 0, no file name in the header.
* ``tar.zst``: ``zstandard`` level 3 (``--zstd-level``: 1 to 19) with a checksum and the
  content size in the frame header. Compression is multi-threaded (``threads=-1``, one
  worker per CPU): zstd's streaming multi-threaded output is byte-identical for any number of workers >= 1
  (facebook/zstd#2238, #2327, #3608), although it differs from single-threaded
  (``threads=0``) output, so the output does not depend on the machine's core count.

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
import gzip
import hashlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Protocol, cast

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

ZSTD_THREADS = -1  # multi-threaded, one worker per CPU; output independent of the count
GZIP_LEVEL = 6

_BLOCK = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 10240: tar output is padded to whole records
_CHUNK = 1 << 20
_AHEAD = 64  # small files read ahead of the writer


@dataclass(frozen=True, slots=True)
class _Entry:
    header: bytes
    source: str | None  # regular file whose content follows the header
    size: int


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _HashingFile:
    """Passes compressed bytes to the file, hashing them on the way."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()
        self.discard = False  # set on failure: closing a compressor then writes nothing

    def write(self, data: bytes, /) -> int:
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


def _block(raw: bytes, kind: bytes, mode: int, mtime: int, size: int, link: bytes) -> bytes:
    """One GNU header block; ``raw`` and ``link`` are cut to their 100-byte fields."""
    buf = bytearray(_BLOCK)
    name = raw[:tarfile.LENGTH_NAME]
    buf[0:len(name)] = name
    buf[100:108] = b"%07o\0" % (mode & 0o7777)
    buf[108:124] = b"0000000\0" * 2  # uid, gid
    buf[124:136] = b"%011o\0" % size
    buf[136:148] = b"%011o\0" % mtime
    buf[148:156] = b"        "  # the checksum counts its own field as spaces
    buf[156:157] = kind
    target = link[:tarfile.LENGTH_LINK]
    buf[157:157 + len(target)] = target
    buf[257:265] = tarfile.GNU_MAGIC
    buf[148:155] = b"%06o\0" % sum(buf)
    return bytes(buf)


def _long(value: bytes, kind: bytes) -> bytes:
    """A GNU ``././@LongLink`` record carrying a name or link target over 100 bytes."""
    payload = value + b"\0"
    return (_block(b"././@LongLink", kind, 0, 0, len(payload), b"")
            + payload + b"\0" * _padding(len(payload), _BLOCK))


def _fast_header(name: str, kind: bytes, mode: int, mtime: int, size: int = 0,
                 linkname: str = "") -> bytes:
    """``_header(_info(...))`` without tarfile's per-call cost: the same GNU header blocks,
    long-name and long-link records included. Sizes and times beyond the octal fields
    (base-256 numbers) go through tarfile. ``test_archive`` checks both give the same
    bytes."""
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    if not 0 <= size < _FIELD_MAX or not 0 <= mtime < _FIELD_MAX:
        return _header(_info(name, kind, mode, mtime, size, linkname))
    raw = name.encode("utf-8", "surrogateescape")
    link = linkname.encode("utf-8", "surrogateescape")
    head = b""
    if len(link) > tarfile.LENGTH_LINK:
        head += _long(link, tarfile.GNUTYPE_LONGLINK)
    if len(raw) > tarfile.LENGTH_NAME:
        head += _long(raw, tarfile.GNUTYPE_LONGNAME)
    return head + _block(raw, kind, mode, mtime, size, link)


def _sorted_children(path: str | Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: os.fsencode(e.name))
    except OSError as exc:
        raise InputError(f"cannot list {path}: {exc.strerror}",
                         hint="make the bundle directory readable") from exc


def _collect(src: Path, root_name: str, mtime: int) -> list[_Entry]:
    real_src = os.path.realpath(src)
    entries = [_Entry(_fast_header(root_name, tarfile.DIRTYPE, tree.DIR_MODE, mtime), None, 0)]
    stack: list[tuple[tuple[str, ...], Iterator[os.DirEntry[str]]]] = [
        ((), iter(_sorted_children(src)))]
    while stack:
        rel_dir, children = stack[-1]
        entry = next(children, None)
        if entry is None:
            stack.pop()
            continue
        path = entry.path
        rel = (*rel_dir, entry.name)
        arcname = "/".join((root_name, *rel))
        try:
            st = entry.stat(follow_symlinks=False)
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}",
                             hint="make the bundle directory readable") from exc
        if stat.S_ISDIR(st.st_mode):
            entries.append(_Entry(_fast_header(arcname, tarfile.DIRTYPE, tree.DIR_MODE, mtime),
                                  None, 0))
            stack.append((rel, iter(_sorted_children(path))))
        elif stat.S_ISREG(st.st_mode):
            entries.append(_Entry(_fast_header(arcname, tarfile.REGTYPE,
                                               tree.normal_mode(st.st_mode), mtime,
                                               size=st.st_size), path, st.st_size))
        elif stat.S_ISLNK(st.st_mode):
            if (not target or target.startswith("/") or tree.link_escapes(rel_dir, target)
                    or not tree.resolves_within(path, real_src)):
                raise InputError(
                    f"cannot archive symlink {path} -> {target}: it points outside {src}",
                    hint="bundles are relocatable: make the link relative and inside the bundle")
            entries.append(_Entry(_fast_header(arcname, tarfile.SYMTYPE, tree.LINK_MODE, mtime,
                                               linkname=target), None, 0))
        else:
            raise InputError(f"cannot archive {path}: it is a {tree.special_kind(st.st_mode)}",
                             hint="remove it; a bundle holds only files, directories and symlinks")
    return entries


def _padding(size: int, unit: int) -> int:
    return -size % unit


def _tar_size(entries: Sequence[_Entry]) -> int:
    body = sum(len(e.header) + e.size + _padding(e.size, _BLOCK) for e in entries) + 2 * _BLOCK
    return body + _padding(body, _RECORD)


class _Batched:
    """Gathers small writes into blocks of ``_CHUNK`` bytes: one call into the compressor
    per block instead of one per tar header."""

    def __init__(self, out: _Sink) -> None:
        self._out = out
        self._buf = bytearray()

    def write(self, data: bytes, /) -> int:
        if len(data) >= _CHUNK:
            self.flush()
            self._out.write(data)
        else:
            self._buf += data
            if len(self._buf) >= _CHUNK:
                self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buf:
            self._out.write(bytes(self._buf))
            self._buf.clear()


def _read_small(e: _Entry) -> bytes:
    assert e.source is not None
    try:
        with open(e.source, "rb") as f:
            data = f.read(e.size)
    except OSError as exc:
        raise InputError(f"cannot read {e.source}: {exc.strerror}",
                         hint="make the bundle directory readable") from exc
    if len(data) < e.size:
        raise InputError(f"{e.source} shrank while it was being archived",
                         hint="do not change the bundle while archiving it")
    return data


class _ReadAhead:
    """The contents of the small files (up to ``_CHUNK``), read ``_AHEAD`` files ahead of
    the writer by two threads (reads release the GIL), in the entries' order."""

    def __init__(self, pool: ThreadPoolExecutor, entries: Sequence[_Entry]) -> None:
        self._pool = pool
        self._todo = iter(i for i, e in enumerate(entries)
                          if e.source is not None and 0 < e.size <= _CHUNK)
        self._entries = entries
        self._pending: dict[int, Future[bytes]] = {}
        self._fill()

    def _fill(self) -> None:
        while len(self._pending) < _AHEAD:
            i = next(self._todo, None)
            if i is None:
                return
            self._pending[i] = self._pool.submit(_read_small, self._entries[i])

    def take(self, i: int) -> bytes:
        data = self._pending.pop(i).result()
        self._fill()
        return data


def _emit(sink: _Sink, entries: Sequence[_Entry], total: int,
          progress: Callable[[int, int], None] | None) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        _emit_entries(sink, entries, total, progress, _ReadAhead(pool, entries))


def _emit_entries(sink: _Sink, entries: Sequence[_Entry], total: int,
                  progress: Callable[[int, int], None] | None, ahead: _ReadAhead) -> None:
    out = _Batched(sink)
    done = 0
    for i, e in enumerate(entries):
        out.write(e.header)
        done += len(e.header)
        if e.source is not None and 0 < e.size <= _CHUNK:
            out.write(ahead.take(i))
            done += e.size
            pad = _padding(e.size, _BLOCK)
            out.write(b"\0" * pad)
            done += pad
        elif e.source is not None and e.size:
            remaining = e.size
            try:
                f = open(e.source, "rb")  # noqa: SIM115 - read errors and write errors differ
            except OSError as exc:
                raise InputError(f"cannot read {e.source}: {exc.strerror}",
                                 hint="make the bundle directory readable") from exc
            with f:
                while remaining:
                    try:
                        chunk = f.read(min(_CHUNK, remaining))
                    except OSError as exc:
                        raise InputError(f"cannot read {e.source}: {exc.strerror}",
                                         hint="make the bundle directory readable") from exc
                    if not chunk:
                        raise InputError(f"{e.source} shrank while it was being archived",
                                         hint="do not change the bundle while archiving it")
                    out.write(chunk)
                    remaining -= len(chunk)
                    done += len(chunk)
                    if progress is not None and remaining:
                        progress(done, total)
            pad = _padding(e.size, _BLOCK)
            out.write(b"\0" * pad)
            done += pad
        if progress is not None:
            progress(done, total)
    tail = total - done
    out.write(b"\0" * tail)
    out.flush()
    if progress is not None:
        progress(total, total)


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
            comp: zstandard.ZstdCompressionWriter | gzip.GzipFile
            if fmt == "tar.zst":
                cctx = zstandard.ZstdCompressor(level=zstd_level, threads=ZSTD_THREADS,
                                                write_checksum=True, write_content_size=True)
                comp = cctx.stream_writer(cast(IO[bytes], sink), size=total, closefd=False)
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
