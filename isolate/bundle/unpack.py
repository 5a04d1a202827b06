"""Unpack bundle archives safely (``unpack``), whoever wrote them.

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
the content. Owners are not restored; modes are normalised as on writing; mtimes are
restored where possible.

The tree is extracted into a temporary directory inside ``dest`` and its top-level
directory is renamed to ``dest/<top>`` only when everything passed.

Writing is ``isolate.bundle.archive``; the names and formats both sides agree on are
``isolate.bundle.archive_format``; the tree's modes and inside-root rules are
``isolate.model.tree``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Protocol, cast

import zstandard

from isolate.bundle.archive_format import FORMATS, MAGIC, claimed_format
from isolate.errors import InputError
from isolate.fsutil import ensure_writable_dir, sha256_file
from isolate.model import tree

_CHUNK = 1 << 20
_ZSTD_FEED = 1024  # compressed bytes per decompress call: bounds one call's output to ~32 MiB
_MAX_META_BYTES = 1 << 20  # pax / GNU long-name headers larger than this are refused
_HEADER_ALLOWANCE = 256 << 20  # decompressed bytes allowed beyond max_total_bytes (headers)
# tarfile's stream reader copies what remains of its buffer on every read (each 512-byte
# header): a small buffer copies less. 16 KiB reads a bundle's 44,000 headers with ~30%
# less CPU than 256 KiB did, and no more than 4 KiB.
_TAR_BUFSIZE = 16 << 10
_UNPACK_HINT = "the archive is not a bundle isolate can unpack safely; rebuild it with `isolate`"


class _Corrupt(Exception):
    """The compressed or tar data cannot be read; turned into ``InputError``. The message
    completes "refusing to unpack <archive>: ..."."""


def _corrupt(exc: BaseException | str) -> _Corrupt:
    detail = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    return _Corrupt(f"it is truncated or corrupt ({detail})")


class _NotStreamable(Exception):
    """An archive ``read_members`` cannot present without unpacking (a hard link)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Member:
    """One entry of a bundle archive, checked as ``unpack`` checks it, not written."""

    top: str  # the top-level directory
    path: str  # below ``top``, POSIX; "" for the top-level directory itself
    kind: str  # dir | file | symlink
    mode: int  # normalised as ``unpack`` writes it
    data: bytes = b""  # a regular file's content
    target: str | None = None  # a symlink's target


class NotStreamable(InputError):
    """The archive is valid for ``unpack`` but ``read_members`` cannot stream it."""


def detect_format(path: Path) -> str:
    """The archive format by magic bytes; ``InputError`` if unknown or the name disagrees."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise InputError(f"cannot read archive {path}: {exc.strerror}",
                         hint="check the path and its permissions") from exc
    fmt = next((v for k, v in MAGIC.items() if head.startswith(k)), None)
    if fmt is None:
        raise InputError(f"{path} is not a zstd or gzip compressed archive",
                         hint=f"isolate archives are {' or '.join('.' + f for f in FORMATS)}")
    suffix, claimed = claimed_format(path.name)
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
    def __init__(self, archive: Path, dest: Path | None, work: Path, limits: _Limits) -> None:
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
        self.link_targets: dict[str, str] = {}  # record mode: path below top -> target
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
            if self.dest is not None and os.path.lexists(self.dest / self.top):
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

    def record(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> Member:
        """Check ``member`` as ``extract`` does and return it, its data read, writing
        nothing; ``_NotStreamable`` for a hard link (its source's data is gone)."""
        parts = self.check(member)
        rel = tuple(parts[1:])
        for i in range(len(rel)):
            self.kinds.setdefault(rel[:i], "dir")
        name = "/".join(rel)
        if member.islnk():
            raise _NotStreamable(f"entry {member.name!r} is a hard link")
        self.explicit.add(rel)
        if member.isdir():
            self.kinds[rel] = "dir"
            return Member(top=parts[0], path=name, kind="dir", mode=tree.DIR_MODE)
        if member.issym():
            self.kinds[rel] = "symlink"
            self.link_targets[name] = member.linkname
            return Member(top=parts[0], path=name, kind="symlink", mode=tree.LINK_MODE,
                          target=member.linkname)
        src = tf.extractfile(member)
        if src is None:  # pragma: no cover - regular members always have a file object
            raise self.refuse(member.name, "has no data")
        data = _read_member(src, member.size)
        if len(data) != member.size:
            raise _corrupt(f"entry {member.name!r} is cut short")
        self.kinds[rel] = "file"
        self.sizes[rel] = member.size
        return Member(top=parts[0], path=name, kind="file",
                      mode=tree.normal_mode(member.mode), data=data)

    def finish_record(self) -> None:
        """``finish``'s checks for a tree that was only read: no symlink resolves outside."""
        if self.top is None:
            raise InputError(f"refusing to read {self.archive}: the archive is empty",
                             hint=_UNPACK_HINT)
        for name, target in self.link_targets.items():
            if tree.resolve(name, self.link_targets)[1] == tree.OUTSIDE:
                raise self.refuse(f"{self.top}/{name}", f"is a symlink to {target!r} that "
                                                        f"resolves outside {self.top!r}")

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


@contextlib.contextmanager
def _tar_stream(archive: Path, fmt: str, max_total_bytes: int) -> Iterator[tarfile.TarFile]:
    """The archive's tar stream, decompressed; corruption becomes ``_Corrupt``. Leaving
    the block normally reads the compressed stream to its end (its checksum or CRC)."""
    with open(archive, "rb") as raw:
        inner: _Readable = (_ZstdReader(raw) if fmt == "tar.zst"
                            else gzip.GzipFile(fileobj=raw, mode="rb"))
        stream = _LimitedReader(inner, max_total_bytes + _HEADER_ALLOWANCE)
        if stream.first_block_is_blank():
            stream.drain()  # still verify the checksum: corrupt beats empty
            raise InputError(f"refusing to unpack {archive}: the archive is empty",
                             hint=_UNPACK_HINT)
        try:
            tf = tarfile.open(  # noqa: SIM115 - closed by the `with tf` below
                fileobj=cast(IO[bytes], stream), mode="r|", tarinfo=_GuardedTarInfo,
                encoding="utf-8", errors="surrogateescape", bufsize=_TAR_BUFSIZE)
        except (tarfile.TarError, EOFError, ValueError, UnicodeError,
                OverflowError) as exc:
            raise _corrupt(exc) from exc
        with tf:
            yield tf
        stream.drain()  # reach the end: verifies the zstd checksum / gzip CRC


def read_members(archive: Path, *, max_entry_bytes: int = 4 << 30,
                 max_total_bytes: int = 32 << 30) -> Generator[Member, None, None]:
    """Every entry of ``archive`` in order, each checked as ``unpack`` checks it (the same
    refusals, as ``InputError``), with its data, writing nothing. The archive's
    ``.sha256`` is checked first, the compressed stream's checksum after the last entry,
    symlinks that resolve outside at the end: consume the whole iterator before
    trusting what it gave. ``NotStreamable`` when the archive holds a hard link."""
    if not archive.is_file():
        raise InputError(f"archive {archive} does not exist or is not a file",
                         hint="check the path")
    _check_sidecar(archive)
    fmt = detect_format(archive)
    ex = _Extractor(archive, None, Path(), _Limits(max_entry_bytes, max_total_bytes))
    try:
        with _tar_stream(archive, fmt, max_total_bytes) as tf:
            while (member := _next(tf)) is not None:
                yield ex.record(tf, member)
    except _Corrupt as exc:
        raise InputError(f"refusing to unpack {archive}: {exc}",
                         hint="fetch or build the archive again") from exc
    except _NotStreamable as exc:
        raise NotStreamable(f"{archive} cannot be read as a stream: {exc}",
                            hint="unpack it to verify it") from exc
    ex.finish_record()


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
        try:
            with _tar_stream(archive, fmt, max_total_bytes) as tf:
                while (member := _next(tf)) is not None:
                    try:
                        ex.extract(tf, member)
                    except OSError as exc:
                        raise ex.refuse(member.name, f"cannot be written: {exc.strerror}",
                                        hint="check free space and the unpack directory"
                                        ) from exc
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


__all__ = ["Member", "NotStreamable", "detect_format", "read_members", "unpack"]
