"""Write bundles as byte-reproducible archives and unpack archives safely.

Writing (``write_archive``)
    The tree is walked in bytewise name order (``os.scandir``, one directory at a time) and
    written as a GNU tar stream whose headers carry only what matters: entry names under
    ``<root_name>/``, uid/gid 0 with empty owner names, one fixed mtime (``SOURCE_DATE_EPOCH``
    or 1980-01-01, see ``default_mtime``) and normalised modes (directories 0755, files 0755
    when any execute bit is set and 0644 otherwise, symlinks 0777 with their relative
    target). Hard links are stored as regular files; FIFOs, devices and sockets are refused.
    GNU headers never carry pax records, so no access or change times leak in.

    The tar stream is compressed on the fly (nothing is held in memory):

    * ``tar.gz``: ``gzip`` level 6, header mtime 0, no file name in the header.
    * ``tar.zst``: ``zstandard`` level 10 with a checksum and the content size in the frame
      header. Compression is multi-threaded (``threads=-1``, one worker per CPU): zstd's
      streaming multi-threaded output is byte-identical for any number of workers >= 1
      (facebook/zstd#2238, #2327, #3608), although it differs from single-threaded
      (``threads=0``) output, so the output does not depend on the machine's core count.

    The same tree, tool version, Python tar header code (stable from 3.9 to 3.13) and
    compression library versions (libzstd inside ``zstandard``, zlib) give the same bytes.

    The archive is written to a temporary file next to ``dest`` and renamed into place, so
    ``dest`` is never a partial archive; ``<dest>.sha256`` (``sha256sum`` format) follows.

Unpacking (``unpack``)
    Every entry is checked before anything is written and the tree is written by this
    module, never by ``tarfile.extract``. Refused with ``InputError``: absolute names,
    ``..`` components, entries below a symlink or a file, symlinks with absolute targets or
    targets that leave the top-level directory (checked lexically per entry, then with
    ``realpath`` over the finished tree), hard links except to a regular file extracted
    earlier from the same top-level directory (those are written as copies, counted in the
    size limits; isolate never writes hard links, other tools do), device nodes, FIFOs,
    unknown or sparse entry types, setuid/setgid/sticky bits, duplicate entries, more than
    one top-level directory or a top-level entry that is not a directory, oversize entries
    or totals, oversize metadata headers, truncated or corrupt data (the zstd checksum and
    the gzip CRC are checked by reading to the end), and a name whose suffix disagrees with
    the content. Owners are not restored; modes are normalised
    as on writing; mtimes are restored where possible.

    The tree is extracted into a temporary directory inside ``dest`` and its top-level
    directory is renamed to ``dest/<top>`` only when everything passed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Protocol, cast

import zstandard

from isolate.errors import InputError
from isolate.fsutil import ensure_writable_dir, sha256_file, write_atomic
from isolate.model import tree

FORMATS = ("tar.zst", "tar.gz")

DEFAULT_MTIME = 315532800  # 1980-01-01T00:00:00Z, the zip epoch
ZSTD_LEVEL = 10
ZSTD_THREADS = -1  # multi-threaded, one worker per CPU; output independent of the count
GZIP_LEVEL = 6

_BLOCK = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 10240: tar output is padded to whole records
_CHUNK = 1 << 20
_ZSTD_FEED = 1024  # compressed bytes per decompress call: bounds one call's output to ~32 MiB
_MAX_META_BYTES = 1 << 20  # pax / GNU long-name headers larger than this are refused
_HEADER_ALLOWANCE = 256 << 20  # decompressed bytes allowed beyond max_total_bytes (headers)

_MAGIC = {b"\x28\xb5\x2f\xfd": "tar.zst", b"\x1f\x8b": "tar.gz"}
_SUFFIXES: tuple[tuple[str, str | None], ...] = (
    (".tar.zst", "tar.zst"), (".tzst", "tar.zst"), (".zst", "tar.zst"),
    (".tar.gz", "tar.gz"), (".tgz", "tar.gz"), (".gz", "tar.gz"),
    (".tar.xz", None), (".txz", None), (".xz", None), (".tar.bz2", None), (".tbz2", None),
    (".bz2", None), (".tar.lz4", None), (".lz4", None), (".tar", None), (".zip", None),
)
_UNPACK_HINT = "the archive is not a bundle isolate can unpack safely; rebuild it with `isolate`"


def archive_name(bundle_name: str, fmt: str) -> str:
    """The archive's file name: ``<bundle_name>.<fmt>``."""
    _check_format(fmt)
    return f"{bundle_name}.{fmt}"


def default_mtime() -> int:
    """``SOURCE_DATE_EPOCH`` when set to a non-negative integer, else 1980-01-01."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if value.isascii() and value.isdigit() and int(value) < 8**11:
        return int(value)
    return DEFAULT_MTIME


def _claimed_format(name: str) -> tuple[str, str | None]:
    """The archive suffix of a file name and the format it claims ("", None: no suffix)."""
    lower = name.lower()
    return next(((sfx, fmt) for sfx, fmt in _SUFFIXES if lower.endswith(sfx)), ("", None))


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InputError(f"unknown archive format {fmt!r}",
                         hint=f"use one of: {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True, slots=True)
class _Entry:
    header: bytes
    source: Path | None  # regular file whose content follows the header
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


def _sorted_children(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: os.fsencode(e.name))
    except OSError as exc:
        raise InputError(f"cannot list {path}: {exc.strerror}",
                         hint="make the bundle directory readable") from exc


def _collect(src: Path, root_name: str, mtime: int) -> list[_Entry]:
    real_src = os.path.realpath(src)
    entries = [_Entry(_header(_info(root_name, tarfile.DIRTYPE, tree.DIR_MODE, mtime)), None, 0)]
    stack: list[tuple[tuple[str, ...], Iterator[os.DirEntry[str]]]] = [
        ((), iter(_sorted_children(src)))]
    while stack:
        rel_dir, children = stack[-1]
        entry = next(children, None)
        if entry is None:
            stack.pop()
            continue
        path = Path(entry.path)
        rel = (*rel_dir, entry.name)
        arcname = "/".join((root_name, *rel))
        try:
            st = entry.stat(follow_symlinks=False)
            target = str(path.readlink()) if stat.S_ISLNK(st.st_mode) else ""
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}",
                             hint="make the bundle directory readable") from exc
        if stat.S_ISDIR(st.st_mode):
            entries.append(_Entry(_header(_info(arcname, tarfile.DIRTYPE, tree.DIR_MODE, mtime)),
                                  None, 0))
            stack.append((rel, iter(_sorted_children(path))))
        elif stat.S_ISREG(st.st_mode):
            ti = _info(arcname, tarfile.REGTYPE, tree.normal_mode(st.st_mode), mtime,
                       size=st.st_size)
            entries.append(_Entry(_header(ti), path, st.st_size))
        elif stat.S_ISLNK(st.st_mode):
            if (not target or target.startswith("/") or tree.link_escapes(rel_dir, target)
                    or not tree.resolves_within(os.fspath(path), real_src)):
                raise InputError(
                    f"cannot archive symlink {path} -> {target}: it points outside {src}",
                    hint="bundles are relocatable: make the link relative and inside the bundle")
            ti = _info(arcname, tarfile.SYMTYPE, tree.LINK_MODE, mtime, linkname=target)
            entries.append(_Entry(_header(ti), None, 0))
        else:
            raise InputError(f"cannot archive {path}: it is a {tree.special_kind(st.st_mode)}",
                             hint="remove it; a bundle holds only files, directories and symlinks")
    return entries


def _padding(size: int, unit: int) -> int:
    return -size % unit


def _tar_size(entries: Sequence[_Entry]) -> int:
    body = sum(len(e.header) + e.size + _padding(e.size, _BLOCK) for e in entries) + 2 * _BLOCK
    return body + _padding(body, _RECORD)


def _emit(out: _Sink, entries: Sequence[_Entry], total: int,
          progress: Callable[[int, int], None] | None) -> None:
    done = 0
    for e in entries:
        out.write(e.header)
        done += len(e.header)
        if e.source is not None and e.size:
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
    if progress is not None:
        progress(total, total)


def write_archive(src: Path, dest: Path, *, fmt: str, root_name: str, mtime: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> str:
    """Archive the tree ``src`` as ``root_name/...`` into ``dest``; return its sha256.

    ``progress(done, total)`` is called as uncompressed tar bytes are written; an exception
    it raises aborts the write and leaves no file behind. ``<dest>.sha256`` is written too.
    """
    _check_format(fmt)
    if not root_name or "/" in root_name or root_name in (".", "..") or "\0" in root_name:
        raise InputError(f"bad archive root name {root_name!r}",
                         hint="use the bundle's name: one path component")
    suffix, claimed = _claimed_format(dest.name)
    if suffix and claimed != fmt:
        raise InputError(f"cannot write a {fmt} archive to {dest}: the name says {suffix}",
                         hint=f"name it {archive_name('<bundle>', fmt)}")
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
                cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=ZSTD_THREADS,
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


# --------------------------------------------------------------------------- reading


class _Corrupt(Exception):
    """The compressed or tar data cannot be read; turned into ``InputError``. The message
    completes "refusing to unpack <archive>: ..."."""


def _corrupt(exc: BaseException | str) -> _Corrupt:
    detail = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    return _Corrupt(f"it is truncated or corrupt ({detail})")


def detect_format(path: Path) -> str:
    """The archive format by magic bytes; ``InputError`` if unknown or the name disagrees."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise InputError(f"cannot read archive {path}: {exc.strerror}",
                         hint="check the path and its permissions") from exc
    fmt = next((v for k, v in _MAGIC.items() if head.startswith(k)), None)
    if fmt is None:
        raise InputError(f"{path} is not a zstd or gzip compressed archive",
                         hint=f"isolate archives are {' or '.join('.' + f for f in FORMATS)}")
    suffix, claimed = _claimed_format(path.name)
    if suffix and claimed != fmt:
        raise InputError(f"{path}: the name says {suffix} but the content is {fmt}",
                         hint=f"rename it to end in .{fmt}, or fetch the archive again")
    return fmt


class _ZstdReader:
    """Decompresses zstd frames; a truncated frame or a bad checksum is refused.

    Compressed input is fed 1 KiB at a time and only while the caller wants more, so a
    decompression bomb never holds more than ~32 MiB beyond the request in memory.
    (``ZstdDecompressor.stream_reader`` would not notice a truncated frame.)
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj: zstandard.ZstdDecompressionObj | None = None
        self._pending = memoryview(b"")
        self._buf = bytearray()
        self._eof = False

    def _more(self) -> None:
        if not self._pending:
            data = self._raw.read(_CHUNK)
            if not data:
                if self._obj is not None:
                    raise _corrupt("the zstd stream ends inside a frame")
                self._eof = True
                return
            self._pending = memoryview(data)
        if self._obj is None:
            self._obj = self._dctx.decompressobj()
        piece, self._pending = self._pending[:_ZSTD_FEED], self._pending[_ZSTD_FEED:]
        self._buf += self._obj.decompress(piece)
        if self._obj.eof:  # a frame ended: what follows is another frame
            rest = self._obj.unused_data
            self._obj = None
            if rest:
                self._pending = memoryview(rest + self._pending.tobytes())

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buf) < size):
            self._more()
        n = len(self._buf) if size < 0 else min(size, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _LimitedReader:
    """The decompressed tar stream: decoder errors become ``_Corrupt``; the size is capped."""

    def __init__(self, inner: _Readable, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.count = 0
        self._pushed = b""

    def first_block_is_blank(self) -> bool:
        """Whether the tar stream starts with an end-of-archive (zero) block or nothing:
        an archive without entries. (tarfile's stream mode reports that differently
        from one Python version to the next.)"""
        block = self.read(512)
        self._pushed = block
        return not block.strip(b"\0")

    def read(self, size: int = -1) -> bytes:
        if self._pushed:
            if size < 0 or size >= len(self._pushed):
                data, self._pushed = self._pushed, b""
                return data + (self.read(size - len(data)) if size > len(data) else b"")
            data, self._pushed = self._pushed[:size], self._pushed[size:]
            return data
        try:
            data = self._inner.read(size)
        except _Corrupt:
            raise
        except (zstandard.ZstdError, zlib.error, EOFError, OSError, ValueError) as exc:
            raise _corrupt(exc) from exc
        self.count += len(data)
        if self.count > self._limit:
            raise _Corrupt(f"it decompresses to more than {self._limit} bytes")
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


_META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
               tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


class _GuardedTarInfo(tarfile.TarInfo):
    """Refuses huge pax / GNU long-name headers before tarfile reads them into memory."""

    def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _META_TYPES and self.size > _MAX_META_BYTES:
            raise _Corrupt(f"it has a metadata header of {self.size} bytes, over the limit of "
                           f"{_MAX_META_BYTES}")
        member: tarfile.TarInfo = super()._proc_member(tf)  # type: ignore[misc]
        return member


@dataclass
class _Limits:
    entry: int
    total: int


class _Extractor:
    def __init__(self, archive: Path, dest: Path, work: Path, limits: _Limits) -> None:
        self.archive = archive
        self.dest = dest
        self.work = work
        self.limits = limits
        self.top: str | None = None
        self.kinds: dict[tuple[str, ...], str] = {}  # parts below top -> dir | file | symlink
        self.explicit: set[tuple[str, ...]] = set()
        self.sizes: dict[tuple[str, ...], int] = {}  # regular files written so far
        self.links: list[tuple[str, Path]] = []
        self.dir_times: list[tuple[Path, float]] = []
        self.total = 0

    def refuse(self, name: str, why: str, hint: str = _UNPACK_HINT) -> InputError:
        return InputError(f"refusing to unpack {self.archive}: entry {name!r} {why}", hint=hint)

    def parts_of(self, member: tarfile.TarInfo) -> list[str]:
        name = member.name
        if not name:
            raise self.refuse(name, "has an empty name")
        if name.startswith("/"):
            raise self.refuse(name, "is an absolute path")
        if "\0" in name:
            raise self.refuse(name, "has a NUL byte in its name")
        parts = name.rstrip("/").split("/")
        while len(parts) > 1 and parts[0] == ".":
            del parts[0]
        if ".." in parts:
            raise self.refuse(name, "climbs out with '..'")
        if any(p in ("", ".") for p in parts):
            raise self.refuse(name, "has an empty or '.' path component")
        return parts

    def check(self, member: tarfile.TarInfo) -> list[str]:
        name = member.name
        parts = self.parts_of(member)
        if self.top is None:
            self.top = parts[0]
            if os.path.lexists(self.dest / self.top):
                raise InputError(
                    f"cannot unpack {self.archive}: {self.dest / self.top} already exists",
                    hint="remove it or unpack into another directory")
        elif parts[0] != self.top:
            raise self.refuse(name, f"is outside the top-level directory {self.top!r}: "
                                    "an archive must hold exactly one top-level directory")
        if member.islnk():
            self.hardlink_source(member)  # refuses every hard link but the harmless kind
        if member.ischr() or member.isblk():
            raise self.refuse(name, "is a device node")
        if member.isfifo():
            raise self.refuse(name, "is a FIFO")
        if member.issparse():
            raise self.refuse(name, "is a sparse file")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise self.refuse(name, f"has an unsupported type {member.type.decode('latin-1')!r}")
        bits = member.mode & 0o7000
        if bits:
            what = [w for b, w in ((0o4000, "setuid"), (0o2000, "setgid"), (0o1000, "sticky"))
                    if bits & b]
            raise self.refuse(name, f"has the {'/'.join(what)} bit set")
        if len(parts) == 1 and not member.isdir():
            raise self.refuse(name, "is the top-level entry but not a directory")
        rel = tuple(parts[1:])
        if rel in self.explicit:
            raise self.refuse(name, "appears twice")
        if rel in self.kinds and not (member.isdir() and self.kinds[rel] == "dir"):
            raise self.refuse(name, "clashes with a directory earlier entries imply")
        for i in range(len(rel)):
            kind = self.kinds.get(rel[:i])
            if kind in ("symlink", "file"):
                below = "/".join((parts[0], *rel[:i]))
                raise self.refuse(name, f"lies below the {kind} {below!r}")
        size = self.sizes[self.hardlink_source(member)] if member.islnk() else member.size
        if member.isreg() or member.islnk():
            if size > self.limits.entry:
                raise self.refuse(name, f"is {size} bytes, over the limit of "
                                        f"{self.limits.entry}",
                                  hint="raise the entry size limit if the archive is trusted")
            self.total += size
            if self.total > self.limits.total:
                raise self.refuse(name, f"brings the total to over {self.limits.total} bytes",
                                  hint="raise the total size limit if the archive is trusted")
        if member.issym():
            target = member.linkname
            if not target or target.startswith("/") or "\0" in target:
                raise self.refuse(name, f"is a symlink with an absolute or empty target "
                                        f"{target!r}")
            if tree.link_escapes(rel[:-1], target):
                raise self.refuse(name, f"is a symlink to {target!r}, outside {self.top!r}")
        return parts

    def ensure_dirs(self, parts: Sequence[str]) -> None:
        rel = tuple(parts[1:])
        top = self.work / parts[0]
        if () not in self.kinds:
            top.mkdir(0o700)
            self.kinds[()] = "dir"
        for i in range(1, len(rel)):
            if rel[:i] not in self.kinds:
                sub = top.joinpath(*rel[:i])
                sub.mkdir(0o700)
                sub.chmod(tree.DIR_MODE)
                self.kinds[rel[:i]] = "dir"

    def extract(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = self.check(member)
        rel = tuple(parts[1:])
        self.ensure_dirs(parts)
        path = self.work.joinpath(*parts)
        if member.isdir():
            if rel not in self.kinds:
                path.mkdir(0o700)
                self.kinds[rel] = "dir"
            path.chmod(tree.DIR_MODE)
            self.dir_times.append((path, member.mtime))
        elif member.issym():
            path.symlink_to(member.linkname)
            self.kinds[rel] = "symlink"
            self.links.append((member.name, path))
            self.set_mtime(path, member.mtime)
        elif member.islnk():
            source = self.hardlink_source(member)
            fd = os.open(self.work.joinpath(self.top or "", *source),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as src:
                self.write_file(member, src, self.sizes[source], path)
            self.kinds[rel] = "file"
            self.sizes[rel] = self.sizes[source]
            self.set_mtime(path, member.mtime)
        else:
            data = tf.extractfile(member)
            if data is None:  # pragma: no cover - regular members always have a file object
                raise self.refuse(member.name, "has no data")
            self.write_file(member, data, member.size, path)
            self.kinds[rel] = "file"
            self.sizes[rel] = member.size
            self.set_mtime(path, member.mtime)
        self.explicit.add(rel)

    def hardlink_source(self, member: tarfile.TarInfo) -> tuple[str, ...]:
        """The earlier regular file (parts below top) a hard link names, or a refusal."""
        target = member.linkname
        why = (f"is a hard link to {target!r}, which is not a regular file extracted earlier "
               f"from {self.top!r}")
        if not target or target.startswith("/") or "\0" in target:
            raise self.refuse(member.name, why)
        parts = target.rstrip("/").split("/")
        while len(parts) > 1 and parts[0] == ".":
            del parts[0]
        source = tuple(parts[1:])
        if (any(p in ("", ".", "..") for p in parts) or parts[0] != self.top
                or self.kinds.get(source) != "file"):
            raise self.refuse(member.name, why)
        return source

    def write_file(self, member: tarfile.TarInfo, src: IO[bytes], size: int,
                   path: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            remaining = size
            while remaining:
                chunk = _read_member(src, min(_CHUNK, remaining))
                if not chunk:
                    raise _corrupt(f"entry {member.name!r} is cut short")
                out.write(chunk)
                remaining -= len(chunk)
            os.fchmod(out.fileno(), tree.normal_mode(member.mode))

    @staticmethod
    def set_mtime(path: Path, mtime: float) -> None:
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(path, (mtime, mtime), follow_symlinks=False)

    def finish(self) -> str:
        if self.top is None:
            raise InputError(f"refusing to unpack {self.archive}: the archive is empty",
                             hint=_UNPACK_HINT)
        root = os.path.realpath(self.work / self.top)
        for name, link in self.links:
            resolved = os.path.realpath(link)
            if not tree.within(resolved, root):
                target = str(link.readlink())
                raise self.refuse(name, f"is a symlink to {target!r} that resolves outside "
                                        f"{self.top!r}")
        for path, mtime in reversed(self.dir_times):
            self.set_mtime(path, mtime)
        return self.top


def _read_member(src: IO[bytes], size: int) -> bytes:
    try:
        return src.read(size)
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise _corrupt(exc) from exc


def _next(tf: tarfile.TarFile) -> tarfile.TarInfo | None:
    try:
        return tf.next()
    except (tarfile.TarError, EOFError, ValueError, UnicodeError, OverflowError) as exc:
        raise _corrupt(exc) from exc


def _check_sidecar(archive: Path) -> None:
    sidecar = archive.with_name(archive.name + ".sha256")
    if not sidecar.is_file():
        return
    try:
        with open(sidecar, "rb") as f:
            text = f.read(4096).decode("ascii", "replace")
    except OSError as exc:
        raise InputError(f"cannot read {sidecar}: {exc.strerror}",
                         hint="check its permissions, or delete it to skip the check") from exc
    words = text.split()
    expected = words[0].lower() if words else ""
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise InputError(f"{sidecar} is not a sha256sum file",
                         hint="fetch it again, or delete it to skip the check")
    actual = sha256_file(archive)
    if actual != expected:
        raise InputError(
            f"{archive} has sha256 {actual} but {sidecar.name} says {expected}",
            hint="the archive is corrupt or was replaced; fetch it again")


def unpack(archive: Path, dest: Path, *, max_entry_bytes: int = 4 << 30,
           max_total_bytes: int = 32 << 30) -> Path:
    """Unpack ``archive`` into ``dest``; return ``dest/<top-level directory>``."""
    if not archive.is_file():
        raise InputError(f"archive {archive} does not exist or is not a file",
                         hint="check the path")
    _check_sidecar(archive)
    fmt = detect_format(archive)
    ensure_writable_dir(dest, what="unpack directory")
    work = Path(tempfile.mkdtemp(dir=dest, prefix=".isolate-unpack-"))
    try:
        ex = _Extractor(archive, dest, work, _Limits(max_entry_bytes, max_total_bytes))
        with open(archive, "rb") as raw:
            inner: _Readable = (_ZstdReader(raw) if fmt == "tar.zst"
                                else gzip.GzipFile(fileobj=raw, mode="rb"))
            stream = _LimitedReader(inner, max_total_bytes + _HEADER_ALLOWANCE)
            try:
                if stream.first_block_is_blank():
                    stream.drain()  # still verify the checksum: corrupt beats empty
                    raise InputError(f"refusing to unpack {archive}: the archive is empty",
                                     hint=_UNPACK_HINT)
                try:
                    tf = tarfile.open(  # noqa: SIM115 - closed by the `with tf` below
                        fileobj=cast(IO[bytes], stream), mode="r|", tarinfo=_GuardedTarInfo,
                        encoding="utf-8", errors="surrogateescape", bufsize=1 << 18)
                except (tarfile.TarError, EOFError, ValueError, UnicodeError,
                        OverflowError) as exc:
                    raise _corrupt(exc) from exc
                with tf:
                    while (member := _next(tf)) is not None:
                        try:
                            ex.extract(tf, member)
                        except OSError as exc:
                            raise ex.refuse(member.name, f"cannot be written: {exc.strerror}",
                                            hint="check free space and the unpack directory"
                                            ) from exc
                stream.drain()  # reach the end: verifies the zstd checksum / gzip CRC
            except _Corrupt as exc:
                raise InputError(f"refusing to unpack {archive}: {exc}",
                                 hint="fetch or build the archive again") from exc
        top = ex.finish()
        final = dest / top
        if os.path.lexists(final):
            raise InputError(f"cannot unpack {archive}: {final} already exists",
                             hint="remove it or unpack into another directory")
        (work / top).chmod(tree.DIR_MODE)
        (work / top).rename(final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["DEFAULT_MTIME", "FORMATS", "archive_name", "default_mtime", "detect_format",
           "sha256_file", "unpack", "write_archive"]
