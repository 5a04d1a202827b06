"""Unpack bundle archives safely (``unpack``), whoever wrote them.

Every entry is checked before anything is written and the tree is written by this
module. The tar stream is read by ``isolate.bundle.tar_stream`` (not ``tarfile``, which
spent half the CPU of reading a bundle in header parsing); ``read_members`` gives the
same checked entries without writing (verify's stream; a large archive is read, checked
and all, by a child process while the caller consumes the entries; one of independent
frames that start at entries, as ``isolate bundle`` writes, can be read in parts, one
per worker process: ``archive_parts``, ``PartReader``, ``join_parts``). Refused with
``InputError``: absolute names, ``..`` components, entries below a symlink or a file,
symlinks with absolute targets or targets that leave the top-level directory (checked
lexically per entry, then with ``realpath`` over the finished tree), hard links except
to a regular file extracted earlier from the same top-level directory (those are written
as copies, counted in the size limits; isolate never writes hard links, other tools do),
device nodes, FIFOs, unknown or sparse entry types, setuid/setgid/sticky bits, duplicate
entries, more than one top-level directory or a top-level entry that is not a directory,
oversize entries or totals, oversize metadata headers, truncated or corrupt data (a tar
header's checksum, the zstd checksum and the gzip CRC are checked, the last two by
reading to the end), and a name whose suffix disagrees with the content. Owners are not
restored; modes are normalised as on writing; mtimes are restored where possible.

The tree is extracted into a temporary directory inside ``dest`` and its top-level
directory is renamed to ``dest/<top>`` only when everything passed. An archive of
independent frames is written there in parts, one per worker process
(``unpack_in_parts``), with the same checks: each part's within it, ``join_parts``'
across them, and symlinks made only once the parts joined, so that no write can follow
one; anything irregular, and it is unpacked whole instead, which says why if it refuses.

Writing is ``isolate.bundle.archive``; the names and formats both sides agree on are
``isolate.bundle.archive_format``; the tree's modes and inside-root rules are
``isolate.model.tree``.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import gzip
import itertools
import mmap
import os
import pickle
import signal
import stat
import struct
import tempfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, cast

import zstandard

from isolate import proc
from isolate.bundle import tar_stream
from isolate.bundle.archive_format import FORMATS, MAGIC, claimed_format
from isolate.bundle.tar_stream import Entry, Readable, TarError, TarReader, TooLarge
from isolate.errors import InputError
from isolate.fsutil import ensure_writable_dir, remove_tree, sha256_file
from isolate.model import tree

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

_CHUNK = 1 << 20
# compressed bytes per decompress call: bounds one call's output to ~128 MiB (a zstd block
# of 128 KiB can be a few bytes); the Nova runtime's archive averages 5.4 bytes out per
# byte in, so a call gives about 22 KiB
_ZSTD_FEED = 4096
_MAX_META_BYTES = 1 << 20  # pax / GNU long-name headers larger than this are refused
_HEADER_ALLOWANCE = 256 << 20  # decompressed bytes allowed beyond max_total_bytes (headers)
_UNPACK_HINT = "the archive is not a bundle isolate can unpack safely; rebuild it with `isolate`"
_FILE_TYPES, _DIR, _SYMLINK, _HARDLINK = (tar_stream.FILE_TYPES, tar_stream.DIR,
                                          tar_stream.SYMLINK, tar_stream.HARDLINK)
_CHR, _BLK, _FIFO = tar_stream.CHR, tar_stream.BLK, tar_stream.FIFO


class _Corrupt(Exception):
    """The compressed or tar data cannot be read; turned into ``InputError``. The message
    completes "refusing to unpack <archive>: ..."."""


def _corrupt(exc: BaseException | str) -> _Corrupt:
    detail = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    return _Corrupt(f"it is truncated or corrupt ({detail})")


class _NotStreamable(Exception):
    """An archive ``read_members`` cannot present without unpacking (a hard link)."""


class Member(NamedTuple):
    """One entry of a bundle archive, checked as ``unpack`` checks it, not written. (A
    named tuple: made for every entry, in a quarter of a frozen dataclass's time.)"""

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

    Compressed input is fed 4 KiB at a time and only while the caller wants more, so a
    decompression bomb never holds more than ~128 MiB beyond the request in memory.
    (``ZstdDecompressor.stream_reader`` would not notice a truncated frame.) ``read(n)``
    gives whole decompressed pieces up to ``n`` bytes (fewer than ``n`` before the end,
    at least one), so that they are copied once.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj: zstandard.ZstdDecompressionObj | None = None
        self._pending = memoryview(b"")
        self._pieces: list[bytes] = []
        self._have = 0  # bytes in _pieces
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
        out = self._obj.decompress(piece)
        if out:
            self._pieces.append(out)
            self._have += len(out)
        if self._obj.eof:  # a frame ended: what follows is another frame
            rest = self._obj.unused_data
            self._obj = None
            if rest:
                self._pending = memoryview(rest + self._pending.tobytes())

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or self._have < size):
            self._more()
        pieces = self._pieces
        if size < 0 or self._have <= size:
            taken, self._pieces = pieces, []
        else:
            n = total = 0
            while total + len(pieces[n]) <= size:
                total += len(pieces[n])
                n += 1
            if n == 0:  # one piece larger than asked for: cut it
                first = pieces[0]
                pieces[0] = first[size:]
                self._have -= size
                return first[:size]
            taken, self._pieces = pieces[:n], pieces[n:]
        self._have -= sum(map(len, taken))
        return taken[0] if len(taken) == 1 else b"".join(taken)


class _LimitedReader:
    """The decompressed tar stream: decoder errors become ``_Corrupt``; the size is capped."""

    def __init__(self, inner: Readable, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
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


@dataclass
class _Limits:
    entry: int
    total: int


class _Extractor:
    def __init__(self, archive: Path, dest: Path | None, work: Path, limits: _Limits, *,
                 shared: bool = False) -> None:
        self.archive = archive
        self.dest = dest
        self.work = os.fspath(work)
        self.limits = limits
        self.top: str | None = None
        self.kinds: dict[tuple[str, ...], str] = {}  # parts below top -> dir | file | symlink
        self.explicit: set[tuple[str, ...]] = set()
        self.sizes: dict[tuple[str, ...], int] = {}  # regular files written so far
        self.links: list[tuple[str, str]] = []
        self.dir_times: list[tuple[str, float]] = []
        self.link_targets: dict[str, str] = {}  # record, shared: path below top -> target
        self.sound: set[tuple[str, ...]] = set()  # parents no entry may lie below (checked)
        self.filled: set[tuple[str, ...]] = set()  # record mode: parents made directories
        self.total = 0
        # Shared: another process writes other parts of the archive below ``work`` at the
        # same time (``PartReader.write``). A directory may then exist already (theirs
        # too); symlinks are not made but noted in ``later`` (name, path, target, mtime),
        # for the caller to make once every part is written and the parts joined: until
        # then no path below ``work`` is a symlink, so nothing written can leave it.
        self.shared = shared
        self.later: list[tuple[str, str, str, float]] = []

    def refuse(self, name: str, why: str, hint: str = _UNPACK_HINT) -> InputError:
        return InputError(f"refusing to unpack {self.archive}: entry {name!r} {why}", hint=hint)

    def parts_of(self, member: Entry) -> list[str]:
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
        if "" in parts or "." in parts:
            raise self.refuse(name, "has an empty or '.' path component")
        return parts

    def checked(self, member: Entry) -> tuple[list[str], tuple[str, ...]]:
        """The entry's name as its components, and those below the top, if it passes
        every check an entry gets on its own and against the entries before it; else the
        refusal (``InputError``)."""
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
        kind = member.type
        is_reg = kind in _FILE_TYPES
        is_dir = is_sym = is_lnk = False
        if not is_reg:  # (the common case first: fewer tests for a regular file)
            is_dir, is_sym, is_lnk = kind == _DIR, kind == _SYMLINK, kind == _HARDLINK
            if is_lnk:
                self.hardlink_source(member)  # refuses every hard link but the harmless kind
            if kind in (_CHR, _BLK):
                raise self.refuse(name, "is a device node")
            if kind == _FIFO:
                raise self.refuse(name, "is a FIFO")
        if member.sparse:
            raise self.refuse(name, "is a sparse file")
        if not (is_reg or is_dir or is_sym or is_lnk):
            raise self.refuse(name, f"has an unsupported type {member.type.decode('latin-1')!r}")
        bits = member.mode & 0o7000
        if bits:
            what = [w for b, w in ((0o4000, "setuid"), (0o2000, "setgid"), (0o1000, "sticky"))
                    if bits & b]
            raise self.refuse(name, f"has the {'/'.join(what)} bit set")
        if len(parts) == 1 and not is_dir:
            raise self.refuse(name, "is the top-level entry but not a directory")
        rel = tuple(parts[1:])
        if rel in self.explicit:
            raise self.refuse(name, "appears twice")
        kinds = self.kinds
        if rel in kinds and not (is_dir and kinds[rel] == "dir"):
            raise self.refuse(name, "clashes with a directory earlier entries imply")
        parent = rel[:-1]
        if parent not in self.sound:
            for i in range(len(rel)):
                above = kinds.get(rel[:i])
                if above == "symlink" or above == "file":
                    below = "/".join((parts[0], *rel[:i]))
                    raise self.refuse(name, f"lies below the {above} {below!r}")
            # the caller makes each of them a directory if it is not one yet, and a later
            # entry that would make one something else is refused above: no need to look
            # again for this parent's other entries
            self.sound.add(parent)
        if is_reg or is_lnk:
            size = self.sizes[self.hardlink_source(member)] if is_lnk else member.size
            if size > self.limits.entry:
                raise self.refuse(name, f"is {size} bytes, over the limit of "
                                        f"{self.limits.entry}",
                                  hint="raise the entry size limit if the archive is trusted")
            self.total += size
            if self.total > self.limits.total:
                raise self.refuse(name, f"brings the total to over {self.limits.total} bytes",
                                  hint="raise the total size limit if the archive is trusted")
        if is_sym:
            target = member.linkname
            if not target or target.startswith("/") or "\0" in target:
                raise self.refuse(name, f"is a symlink with an absolute or empty target "
                                        f"{target!r}")
            if tree.link_escapes(rel[:-1], target):
                raise self.refuse(name, f"is a symlink to {target!r}, outside {self.top!r}")
        return parts, rel

    def ensure_dirs(self, parts: Sequence[str]) -> None:
        rel = tuple(parts[1:])
        kinds = self.kinds
        if () not in kinds:
            self.mkdir(os.path.join(self.work, parts[0]))
            kinds[()] = "dir"
        for i in range(1, len(rel)):
            if rel[:i] not in kinds:
                sub = os.path.join(self.work, *parts[:i + 1])
                self.mkdir(sub)
                os.chmod(sub, tree.DIR_MODE)
                kinds[rel[:i]] = "dir"

    def mkdir(self, path: str) -> None:
        """Make the directory ``path``; when shared, one another part made is taken
        (anything else there raises ``FileExistsError``)."""
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not (self.shared and stat.S_ISDIR(os.lstat(path).st_mode)):
                raise

    def extract(self, reader: TarReader, member: Entry) -> None:
        parts, rel = self.checked(member)
        self.ensure_dirs(parts)
        path = os.path.join(self.work, *parts)
        if member.isdir():
            if rel not in self.kinds:
                self.mkdir(path)
                self.kinds[rel] = "dir"
            os.chmod(path, tree.DIR_MODE)
            self.dir_times.append((path, member.mtime))
        elif member.issym() and self.shared:
            self.kinds[rel] = "symlink"
            self.link_targets["/".join(rel)] = member.linkname
            self.later.append((member.name, path, member.linkname, member.mtime))
        elif member.issym():
            os.symlink(member.linkname, path)
            self.kinds[rel] = "symlink"
            self.links.append((member.name, path))
            self.set_mtime(path, member.mtime)
        elif member.islnk():
            if self.shared:  # (its source may be another part's)
                raise _NotStreamable(f"entry {member.name!r} is a hard link")
            source = self.hardlink_source(member)
            fd = os.open(os.path.join(self.work, self.top or "", *source),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as src:
                self.write_file(member, iter(lambda: src.read(_CHUNK), b""),
                                self.sizes[source], path)
            self.kinds[rel] = "file"
            self.sizes[rel] = self.sizes[source]
            self.set_mtime(path, member.mtime)
        else:
            self.write_file(member, reader.chunks(member), member.size, path)
            self.kinds[rel] = "file"
            self.sizes[rel] = member.size
            self.set_mtime(path, member.mtime)
        self.explicit.add(rel)

    def record(self, member: Entry, read: Callable[[Entry], bytes]) -> Member:
        """Check ``member`` as ``extract`` does and return it with its data (``read`` of
        it, after the checks), writing nothing; ``_NotStreamable`` for a hard link (its
        source's data is gone). (Run for every entry of an archive verify reads: the
        common case, a regular file below a directory seen before, comes first.)"""
        parts, rel = self.checked(member)
        kinds = self.kinds
        parent = rel[:-1]
        if parent not in self.filled:
            for i in range(len(rel)):
                kinds.setdefault(rel[:i], "dir")
            self.filled.add(parent)
        kind = member.type
        if kind in _FILE_TYPES:
            self.explicit.add(rel)
            kinds[rel] = "file"
            self.sizes[rel] = member.size
            return Member(parts[0], "/".join(rel), "file", tree.normal_mode(member.mode),
                          read(member))
        if kind == _HARDLINK:
            raise _NotStreamable(f"entry {member.name!r} is a hard link")
        self.explicit.add(rel)
        name = "/".join(rel)
        if kind == _DIR:
            kinds[rel] = "dir"
            return Member(parts[0], name, "dir", tree.DIR_MODE)
        # a symlink: ``checked`` refused every other type
        kinds[rel] = "symlink"
        self.link_targets[name] = member.linkname
        return Member(parts[0], name, "symlink", tree.LINK_MODE, target=member.linkname)

    def finish_record(self) -> None:
        """``finish``'s checks for a tree that was only read: no symlink resolves outside."""
        if self.top is None:
            raise _empty(self.archive)
        for name, target in self.link_targets.items():
            if tree.resolve(name, self.link_targets)[1] == tree.OUTSIDE:
                raise self.refuse(f"{self.top}/{name}", f"is a symlink to {target!r} that "
                                                        f"resolves outside {self.top!r}")

    def hardlink_source(self, member: Entry) -> tuple[str, ...]:
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

    def write_file(self, member: Entry, chunks: Iterable[bytes], size: int, path: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            written = 0
            for chunk in chunks:
                written += len(chunk)
                if written > size:  # a hard link's source that grew since: not ours
                    raise _corrupt(f"entry {member.name!r} changed while it was copied")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            if written != size:
                raise _corrupt(f"entry {member.name!r} is cut short")
            os.fchmod(fd, tree.normal_mode(member.mode))
        finally:
            os.close(fd)

    @staticmethod
    def set_mtime(path: str, mtime: float) -> None:
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(path, (mtime, mtime), follow_symlinks=False)

    def finish(self) -> str:
        if self.top is None:
            raise _empty(self.archive)
        root = os.path.realpath(os.path.join(self.work, self.top))
        for name, link in self.links:
            resolved = os.path.realpath(link)
            if not tree.within(resolved, root):
                target = os.readlink(link)
                raise self.refuse(name, f"is a symlink to {target!r} that resolves outside "
                                        f"{self.top!r}")
        for path, mtime in reversed(self.dir_times):
            self.set_mtime(path, mtime)
        return self.top


def _next(reader: TarReader) -> Entry | None:
    try:
        return reader.next()
    except TooLarge as exc:
        raise _Corrupt(str(exc)) from exc
    except TarError as exc:
        raise _corrupt(exc) from exc


def _refusal(archive: Path, exc: _Corrupt | TarError) -> InputError:
    reason = exc if isinstance(exc, _Corrupt) else _corrupt(exc)
    return InputError(f"refusing to unpack {archive}: {reason}",
                      hint="fetch or build the archive again")


def sidecar_of(archive: Path) -> Path:
    """Where ``isolate bundle`` writes the archive's sha256 (``sha256sum``'s format)."""
    return archive.with_name(archive.name + ".sha256")


def sidecar_sha256(archive: Path) -> str | None:
    """The sha256 the ``.sha256`` beside ``archive`` states; None when there is none;
    ``InputError`` when it cannot be read or is not a ``sha256sum`` file."""
    sidecar = sidecar_of(archive)
    if not sidecar.is_file():
        return None
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
    return expected


def check_sidecar(archive: Path, *, sha256: Callable[[Path], str] = sha256_file) -> None:
    """``InputError`` when the ``.sha256`` beside ``archive`` does not match it;
    ``sha256`` gives the archive's (another process may have hashed it)."""
    expected = sidecar_sha256(archive)
    if expected is None:
        return
    actual = sha256(archive)
    if actual != expected:
        raise InputError(
            f"{archive} has sha256 {actual} but {sidecar_of(archive).name} says {expected}",
            hint="the archive is corrupt or was replaced; fetch it again")


@contextlib.contextmanager
def _tar(archive: Path, fmt: str, max_total_bytes: int
         ) -> Iterator[tuple[TarReader, _LimitedReader]]:
    """The reader of the archive's tar stream, decompressed, and the stream under it (to
    ``drain`` after the last entry: that reads the compressed stream to its end and so
    checks its checksum or CRC)."""
    with open(archive, "rb") as raw:
        inner: Readable = (_ZstdReader(raw) if fmt == "tar.zst"
                           else gzip.GzipFile(fileobj=raw, mode="rb"))
        stream = _LimitedReader(inner, max_total_bytes + _HEADER_ALLOWANCE)
        yield TarReader(stream, max_meta=_MAX_META_BYTES), stream


def _empty(archive: Path) -> InputError:
    return InputError(f"refusing to unpack {archive}: the archive is empty", hint=_UNPACK_HINT)


def _members_here(archive: Path, fmt: str, limits: _Limits
                  ) -> Generator[Member, None, None]:
    """``read_members``'s members, read in this process (the archive's format and
    sidecar are checked already)."""
    ex = _Extractor(archive, None, Path(), limits)
    try:
        with _tar(archive, fmt, limits.total) as (reader, stream):
            read = reader.read
            while (entry := _next(reader)) is not None:
                yield ex.record(entry, read)
            stream.drain()  # corrupt beats empty
    except (_Corrupt, TarError) as exc:  # TarError: an entry's data is cut short
        raise _refusal(archive, exc) from exc
    except _NotStreamable as exc:
        raise NotStreamable(f"{archive} cannot be read as a stream: {exc}",
                            hint="unpack it to verify it") from exc
    ex.finish_record()


# A large archive is read as a stream by a child process (the producer) while this one
# consumes the members (verify hashes and scans them), so that the work spreads over two
# cores. The child runs ``_members_here``, every check included, and writes batches into
# a pipe: the length of the batch's list, the list (pickled: each member's fields and the
# length of its data; last, how the reading ended), then the members' data, raw. The
# pipe holds about a batch, so the child runs at most that far ahead.
_CHILD_MIN_BYTES = 8 << 20  # smaller archives are read in this process: no start-up cost
_BATCH_BYTES = 1 << 20
_BATCH_ENTRIES = 256
_PIPE_BYTES = 1 << 20  # the pipe's buffer, where the system allows it (Linux: 64 KiB)
_LENGTH = struct.Struct("<Q")
_IOV_MAX = 1024  # buffers per writev (POSIX's minimum of IOV_MAX is 16; Linux has 1024)
# A member is sent as (top, path, kind, mode, target, length of its data); the end as
# ``None`` (every member was read and passed) or as the refusal: (whether it is
# ``NotStreamable``, message, hint).


def _widen(fd: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # F_SETPIPE_SZ: Linux 2.6.35+
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _send_members(conn: Connection, archive: str, fmt: str, max_entry: int,
                  max_total: int, batch_bytes: int, batch_entries: int) -> None:
    """In the child: ``_members_here``'s members and how the reading ended, written to
    ``conn``'s pipe in batches of ``batch_entries`` members or ``batch_bytes`` of data
    (see above)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops us
    fd = conn.fileno()
    _widen(fd)
    batch: list[object] = []
    blobs: list[bytes] = []
    held = 0

    def send() -> None:
        meta = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        _write_all(fd, [_LENGTH.pack(len(meta)), meta, *blobs])

    try:
        try:
            for m in _members_here(Path(archive), fmt, _Limits(max_entry, max_total)):
                batch.append((m.top, m.path, m.kind, m.mode, m.target, len(m.data)))
                if m.data:
                    blobs.append(m.data)
                    held += len(m.data)
                if held >= batch_bytes or len(batch) >= batch_entries:
                    send()
                    batch, blobs, held = [], [], 0
            batch.append(None)
        except InputError as exc:
            batch.append((isinstance(exc, NotStreamable), exc.message, exc.hint))
        send()
    except Exception:  # the parent stopped reading (a broken pipe), or something went
        pass  # wrong here: then the parent reads on itself and meets it
    finally:
        conn.close()


def _write_all(fd: int, buffers: list[bytes]) -> None:
    """Write ``buffers`` to ``fd`` in order, without copying them into one (``writev``)."""
    views = [memoryview(b) for b in buffers if b]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while views and written >= len(views[0]):
            written -= len(views[0])
            del views[0]
        if written:
            views[0] = views[0][written:]


def _start_child(archive: Path, fmt: str, limits: _Limits
                 ) -> tuple[BaseProcess, Connection] | None:
    """The child process that reads ``archive`` (``_send_members``); None when it
    cannot be started (then this process reads it)."""
    try:
        return proc.child_process(_send_members, os.fspath(archive), fmt, limits.entry,
                                  limits.total, _BATCH_BYTES, _BATCH_ENTRIES,
                                  preload=[__name__])
    except (OSError, ValueError, RuntimeError):  # e.g. no process slots, no /dev/shm
        return None


def _members_from_child(archive: Path, fmt: str, limits: _Limits,
                        started: tuple[BaseProcess, Connection] | None
                        ) -> Generator[Member, None, None]:
    """``_members_here``'s members, as the child ``started`` sends them. If there is no
    child, or it dies, this process reads on from where the child stopped."""
    given = 0
    if started is not None:
        child, conn = started
        inp = open(conn.fileno(), "rb", buffering=_PIPE_BYTES, closefd=False)  # noqa: SIM115
        try:
            while True:
                head = inp.read(_LENGTH.size)
                if len(head) < _LENGTH.size:
                    break  # the child died before the end: read on here
                (n,) = _LENGTH.unpack(head)
                meta = inp.read(n)
                if len(meta) < n:
                    break
                for item in pickle.loads(meta):
                    if item is None:
                        return
                    if len(item) == 3:
                        streamable, message, hint = item
                        raise (NotStreamable if streamable else InputError)(message, hint=hint)
                    top, path, kind, mode, target, length = item
                    data = inp.read(length) if length else b""
                    if len(data) < length:
                        break
                    given += 1
                    yield Member(top=top, path=path, kind=kind, mode=mode, data=data,
                                 target=target)
                else:
                    continue
                break
        finally:
            inp.close()
            proc.stop_child(child, conn)
    yield from itertools.islice(_members_here(archive, fmt, limits), given, None)


def read_members(archive: Path, *, max_entry_bytes: int = 4 << 30,
                 max_total_bytes: int = 32 << 30,
                 sha256: Callable[[Path], str] = sha256_file
                 ) -> Generator[Member, None, None]:
    """Every entry of ``archive`` in order, each checked as ``unpack`` checks it (the same
    refusals, as ``InputError``), with its data, writing nothing. The archive's
    ``.sha256`` is checked first (against ``sha256`` of it), the compressed stream's
    checksum after the last entry, symlinks that resolve outside at the end: consume the
    whole iterator before trusting what it gave. ``NotStreamable`` when the archive
    holds a hard link.

    An archive of ``_CHILD_MIN_BYTES`` or more is read, checked and all, by a child
    process while the caller consumes its members."""
    if not archive.is_file():
        raise InputError(f"archive {archive} does not exist or is not a file",
                         hint="check the path")
    fmt = detect_format(archive)
    limits = _Limits(max_entry_bytes, max_total_bytes)
    if archive.stat().st_size < _CHILD_MIN_BYTES:
        check_sidecar(archive, sha256=sha256)
        members = _members_here(archive, fmt, limits)
    else:
        started = _start_child(archive, fmt, limits)  # it reads while the sidecar is checked
        try:
            check_sidecar(archive, sha256=sha256)
        except BaseException:
            if started is not None:
                proc.stop_child(*started)
            raise
        members = _members_from_child(archive, fmt, limits, started)
    with contextlib.closing(members):
        yield from members


# -- a multi-frame zstd archive, read in parts on several cores -------------------------
# ``isolate bundle`` writes tar.zst archives as independent zstd frames that each start
# where a tar header starts (see ``isolate.bundle.archive``). ``archive_parts`` walks the
# frames (their block headers, without decompressing) and groups them into runs of about
# equal content; ``PartReader`` reads one run on its own, with ``read_members``' checks
# within it; ``join_parts`` makes the checks that span runs. A run that cannot be read on
# its own is ``Irregular``: it does not end where an entry ends (so the next one may not
# start where one starts: then nothing proves it did), the archive's end comes in a run
# before the last, a global pax header (it would apply to the runs after), a hard link,
# or any refusal. The caller then reads the archive whole, as one stream, and that reading
# refuses or accepts it with its own words: a part's reading never words a refusal.

_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE_MASK, _SKIPPABLE = 0xFFFFFFF0, 0x184D2A50
_BLOCK_MAX = 128 << 10  # a zstd block's largest size
_UNKNOWN_RATIO = 4  # a frame without its content size weighs this many times its bytes
# A frame that states a content size up to this is decompressed with one call (isolate's
# small frames are 8 to 24 MiB): faster than a stream, and it holds no more than it says
_WHOLE_FRAME_MAX = 64 << 20

Frame = tuple[int, int, int]  # offset, length, the content size it states (-1: none, skippable)
_WINDOW_MAX = 1 << 27  # libzstd's default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT)


def _window_size(descriptor: int) -> int:
    """The window size a frame header's Window_Descriptor byte asks for (RFC 8878)."""
    base = 1 << (10 + (descriptor >> 3))
    return base + (base >> 3) * (descriptor & 7)


@dataclass(frozen=True, slots=True)
class Part:
    """A run of whole zstd frames of an archive: compressed bytes ``start`` to ``end``."""

    start: int
    end: int
    last: bool  # the archive's last run: it holds the tar stream's end
    frames: tuple[Frame, ...] = ()


def _frames(data: bytes | mmap.mmap) -> list[Frame] | None:
    """(offset, length, content size or -1) of each frame of the zstd stream ``data``
    (-1: it states none, or it is a skippable frame); None when it is not a sequence of
    well-formed frame headers and block headers (RFC 8878, section 3.1) that ends where
    ``data`` ends."""
    out: list[tuple[int, int, int]] = []
    pos, size = 0, len(data)
    while pos < size:
        if pos + 8 > size:
            return None
        magic = int.from_bytes(data[pos:pos + 4], "little")
        if magic & _SKIPPABLE_MASK == _SKIPPABLE:
            end = pos + 8 + int.from_bytes(data[pos + 4:pos + 8], "little")
            if end > size:
                return None
            out.append((pos, end - pos, -1))
            pos = end
            continue
        if magic != _ZSTD_MAGIC:
            return None
        flags = data[pos + 4]
        if flags & 0x08:  # the reserved bit
            return None
        single = flags >> 5 & 1
        if not single and _window_size(data[pos + 5]) > _WINDOW_MAX:
            return None  # the stream decoder refuses it; one call would not check
        fcs_size = (single, 2, 4, 8)[flags >> 6]
        head = pos + 5 + (not single) + (0, 1, 2, 4)[flags & 3]
        if head + fcs_size > size:
            return None
        weight = int.from_bytes(data[head:head + fcs_size], "little") + (
            256 if fcs_size == 2 else 0) if fcs_size else -1
        at = head + fcs_size
        while True:
            if at + 3 > size:
                return None
            block = int.from_bytes(data[at:at + 3], "little")
            kind, length = block >> 1 & 3, block >> 3
            if kind == 3 or length > _BLOCK_MAX:
                return None
            at += 3 + (1 if kind == 1 else length)  # an RLE block: one byte, repeated
            if block & 1:
                break
        end = at + 4 * (flags >> 2 & 1)  # the content checksum
        if end > size:
            return None
        out.append((pos, end - pos, weight))
        pos = end
    return out


def archive_parts(archive: Path, count: int) -> list[Part] | None:
    """``archive``'s frames grouped into at most ``count`` runs of about equal content,
    in order; None when it is not a tar.zst archive of at least two frames whose headers
    are well formed (it is then read as one stream, which says what is wrong, if
    anything)."""
    try:
        if detect_format(archive) != "tar.zst":  # (the name agrees with the content)
            return None
        with open(archive, "rb") as f, \
                mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as data:
            frames = _frames(data)
    except (OSError, ValueError, InputError):  # ValueError: an empty file cannot be mapped;
        return None  # InputError: the name and the content disagree, or no magic
    if frames is None or len(frames) < 2 or count < 2:
        return None
    # each part starts at the frame boundary nearest to its share of the content
    ends = list(itertools.accumulate(size if size >= 0 else _UNKNOWN_RATIO * length
                                     for _, length, size in frames))
    firsts = [0]  # the first frame of each part
    for k in range(1, count):
        target = ends[-1] * k / count
        i = bisect.bisect_left(ends, target)
        candidates = [j for j in (i, i + 1) if firsts[-1] < j < len(frames)]
        if candidates:
            firsts.append(min(candidates, key=lambda j: abs(ends[j - 1] - target)))
    if len(firsts) < 2:
        return None
    bounds = [*firsts, len(frames)]
    return [_part(frames[a:b], last=b == len(frames)) for a, b in itertools.pairwise(bounds)]


def _part(frames: Sequence[Frame], *, last: bool) -> Part:
    return Part(frames[0][0], frames[-1][0] + frames[-1][1], last, tuple(frames))


class Irregular(Exception):
    """A part of an archive cannot be read on its own (see above); read it whole."""


@dataclass(frozen=True, slots=True)
class PartState:
    """What ``join_parts`` needs of a part read whole: its top-level directory (None when
    it holds no entry), every path it names or implies (below the top, "/"-joined) with
    its kind: "d" a directory it implies, "D" "F" "S" a directory, file or symlink it has
    an entry for; its symlinks' targets, its files' total size and how much it
    decompressed. (Plain strings: it goes back from a worker process, and the tuples of
    names the checks keep are slow to pickle and unpickle.)"""

    top: str | None
    paths: dict[str, str]
    link_targets: dict[str, str]
    total: int
    decompressed: int  # bytes of tar stream (with headers and padding) it decompressed


_CODES = {"dir": "d", "file": "f", "symlink": "s"}


class _Window:
    """The bytes ``start`` to ``end`` of an open file, read as a stream."""

    def __init__(self, raw: BinaryIO, start: int, end: int) -> None:
        raw.seek(start)
        self._raw = raw
        self._left = end - start

    def read(self, size: int = -1, /) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._raw.read(want) if want else b""
        self._left -= len(data)
        return data


class _FrameReader:
    """The decompressed content of a run of zstd frames, a whole frame per ``read``
    where it states a content size from 1 byte to ``_WHOLE_FRAME_MAX`` (the size is
    checked, and the checksum), else through ``_ZstdReader``. (``_frames`` has refused
    a window over the stream decoder's limit, which the one-call decoder does not
    check.)"""

    def __init__(self, raw: BinaryIO, frames: Sequence[Frame]) -> None:
        self._raw = raw
        self._frames = iter(frames)
        self._dctx = zstandard.ZstdDecompressor()
        self._stream: _ZstdReader | None = None

    def read(self, size: int = -1, /) -> bytes:
        while True:
            if self._stream is not None:
                data = self._stream.read(size)
                if data:
                    return data
                self._stream = None
            frame = next(self._frames, None)
            if frame is None:
                return b""
            offset, length, content = frame
            # (a stated size of 0: python-zstandard's decompress returns b"" unread)
            if not 0 < content <= _WHOLE_FRAME_MAX:
                self._stream = _ZstdReader(cast(BinaryIO, _Window(self._raw, offset,
                                                                  offset + length)))
                continue
            self._raw.seek(offset)
            compressed = self._raw.read(length)
            if len(compressed) != length:
                raise _corrupt("the zstd stream ends inside a frame")
            data = self._dctx.decompress(compressed, max_output_size=content)
            if len(data) != content:
                raise _corrupt("a zstd frame holds more or less than it states")
            if data:
                return data


class PartReader:
    """The members of one ``Part`` of ``archive``, checked as ``read_members`` checks
    them, within the part; ``state()`` after the last, for ``join_parts``. Anything
    that is not plainly right raises ``Irregular``."""

    def __init__(self, archive: Path, part: Part, *, max_entry_bytes: int,
                 max_total_bytes: int) -> None:
        self.archive = archive
        self.part = part
        self._limits = _Limits(max_entry_bytes, max_total_bytes)
        self._ex: _Extractor | None = None
        self._decompressed = 0

    def members(self) -> Iterator[Member]:
        ex = self._ex = _Extractor(self.archive, None, Path(), self._limits)
        try:
            with self._tar() as (reader, stream):
                read = reader.read
                while (entry := reader.next()) is not None:  # (TarError: Irregular)
                    if reader.had_global:
                        raise Irregular("a global pax header")
                    yield ex.record(entry, read)
                self._end(reader, stream)
        except (_Corrupt, TarError, _NotStreamable, InputError) as exc:
            raise Irregular(str(exc)) from exc

    def write(self, work: Path, dest: Path | None = None
              ) -> tuple[list[tuple[str, str, str, float]], list[tuple[str, float]]]:
        """The part's entries written below ``work`` as ``unpack`` writes them, while
        other processes write the other parts there; but its symlinks are not made:
        returned as (name, path, target, mtime), with its directories' (path, mtime), for
        the caller to make and set once the parts joined (see ``_Extractor``). What it
        wrote stays when it raises ``Irregular``. ``dest``: where the tree goes then (its
        top-level directory there must not exist yet)."""
        ex = self._ex = _Extractor(self.archive, dest, work, self._limits, shared=True)
        try:
            with self._tar() as (reader, stream):
                while (entry := reader.next()) is not None:
                    if reader.had_global:
                        raise Irregular("a global pax header")
                    ex.extract(reader, entry)
                self._end(reader, stream)
        except (_Corrupt, TarError, _NotStreamable, InputError, OSError) as exc:
            raise Irregular(str(exc)) from exc
        return ex.later, ex.dir_times

    @contextlib.contextmanager
    def _tar(self) -> Iterator[tuple[TarReader, _LimitedReader]]:
        part = self.part
        limit = self._limits.total + _HEADER_ALLOWANCE
        stated = [size for _offset, _length, size in part.frames]
        if stated and min(stated) > 0:  # no more than its frames say they hold (a frame
            limit = min(limit, sum(stated))  # decoded as a stream says so at its end only)
        with open(self.archive, "rb") as raw:
            inner: Readable = _FrameReader(raw, part.frames) if part.frames else \
                _ZstdReader(cast(BinaryIO, _Window(raw, part.start, part.end)))
            stream = _LimitedReader(inner, limit)
            yield TarReader(stream, max_meta=_MAX_META_BYTES), stream

    def _end(self, reader: TarReader, stream: _LimitedReader) -> None:
        """The checks after the part's last entry."""
        if reader.had_global:
            raise Irregular("a global pax header")
        if self.part.last:
            stream.drain()
        elif reader.marked:
            raise Irregular("the archive ends before its last part")
        self._decompressed = stream.count

    def state(self) -> PartState:
        ex = self._ex
        assert ex is not None, "members() first"
        explicit = ex.explicit
        paths = {"/".join(rel): _CODES[kind].upper() if rel in explicit else _CODES[kind]
                 for rel, kind in ex.kinds.items()}
        return PartState(top=ex.top, paths=paths, link_targets=ex.link_targets,
                         total=ex.total, decompressed=self._decompressed)


def join_parts(states: Sequence[PartState], *, max_total_bytes: int) -> bool:
    """Whether the parts read one by one, in order, are one archive ``read_members``
    would accept: one top-level directory, no path twice, no path that one part makes a
    file or symlink and another a directory or lays something below, the size limits
    (of the files, and of the whole stream), and no symlink that resolves outside.
    False: read it whole (that says why)."""
    tops = {s.top for s in states if s.top is not None}
    if len(tops) != 1 or sum(s.total for s in states) > max_total_bytes or \
            sum(s.decompressed for s in states) > max_total_bytes + _HEADER_ALLOWANCE:
        return False
    paths: dict[str, str] = {}
    links: dict[str, str] = {}
    for s in states:
        # An ancestor of every path a part names is among its paths, so a path two parts
        # share is a directory in both (and an entry in one at most), or they clash: a
        # path twice, a file where a directory is implied, something below a symlink.
        both: dict[str, str] = {}
        for path in paths.keys() & s.paths.keys():
            a, b = paths[path], s.paths[path]
            if a not in "dD" or b not in "dD" or a == b == "D":
                return False
            both[path] = "D" if "D" in (a, b) else "d"
        paths.update(s.paths)
        paths.update(both)
        links.update(s.link_targets)
    return not any(tree.resolve(name, links)[1] == tree.OUTSIDE for name in links)


def leading_members(archive: Path, *, max_entry_bytes: int = 4 << 30,
                    max_total_bytes: int = 32 << 30) -> Generator[Member, None, None]:
    """``read_members``' members, read in this process and without the check of the
    ``.sha256`` beside the archive: to look at its first entries and stop (the caller
    checks the ``.sha256`` itself, ``check_sidecar``)."""
    if not archive.is_file():
        raise InputError(f"archive {archive} does not exist or is not a file",
                         hint="check the path")
    members = _members_here(archive, detect_format(archive),
                            _Limits(max_entry_bytes, max_total_bytes))
    with contextlib.closing(members):
        yield from members


def unpack(archive: Path, dest: Path, *, max_entry_bytes: int = 4 << 30,
           max_total_bytes: int = 32 << 30) -> Path:
    """Unpack ``archive`` into ``dest``; return ``dest/<top-level directory>``. An
    archive of independent frames (as ``isolate bundle`` writes them) is written in
    parts, one per CPU, by worker processes (see ``_in_parts_here``, ``unpack_in_parts``);
    else, or when its parts cannot be written apart, as one stream."""
    if not archive.is_file():
        raise InputError(f"archive {archive} does not exist or is not a file",
                         hint="check the path")
    check_sidecar(archive)
    fmt = detect_format(archive)
    ensure_writable_dir(dest, what="unpack directory")
    limits = _Limits(max_entry_bytes, max_total_bytes)
    works: list[Path] = []  # removed at the end, with what the parts wrote if anything
    try:
        works.append(Path(tempfile.mkdtemp(dir=dest, prefix=".isolate-unpack-")))
        top = _in_parts_here(archive, fmt, dest, works[-1], limits)
        if top is None:
            works.append(Path(tempfile.mkdtemp(dir=dest, prefix=".isolate-unpack-")))
            top = _unpack_whole(archive, fmt, dest, works[-1], limits)
        final = dest / top
        if os.path.lexists(final):
            raise InputError(f"cannot unpack {archive}: {final} already exists",
                             hint="remove it or unpack into another directory")
        (works[-1] / top).chmod(tree.DIR_MODE)
        (works[-1] / top).rename(final)
        return final
    finally:
        for work in works:
            remove_tree(work)


def _unpack_whole(archive: Path, fmt: str, dest: Path, work: Path, limits: _Limits) -> str:
    """The archive written below ``work`` as one stream; its top-level directory."""
    ex = _Extractor(archive, dest, work, limits)
    try:
        with _tar(archive, fmt, limits.total) as (reader, stream):
            while (entry := _next(reader)) is not None:
                try:
                    ex.extract(reader, entry)
                except OSError as exc:
                    raise ex.refuse(entry.name, f"cannot be written: {exc.strerror}",
                                    hint="check free space and the unpack directory"
                                    ) from exc
            stream.drain()  # corrupt beats empty
    except (_Corrupt, TarError) as exc:  # TarError: an entry's data is cut short
        raise _refusal(archive, exc) from exc
    return ex.finish()


# A multi-frame archive this large is read (verify) or written (unpack) in parts by
# worker processes; below that, the processes cost more than they save
PARTS_MIN_BYTES = 8 << 20
_SERVED_MIN_BYTES = 32 << 20  # and from this size when the workers need a fork server


def _in_parts_here(archive: Path, fmt: str, dest: Path, work: Path, limits: _Limits
                   ) -> str | None:
    """``unpack_in_parts`` by worker processes, one part per CPU; None when it did not
    write the archive. The workers are forked from this process when it runs no other
    thread, else from a fork server (``proc.process_pool``: 0.2 s more, so only for an
    archive of ``_SERVED_MIN_BYTES`` or more)."""
    if fmt != "tar.zst":
        return None
    size = archive.stat().st_size
    if size < PARTS_MIN_BYTES or (size < _SERVED_MIN_BYTES and not proc.forks()):
        return None
    parts = archive_parts(archive, proc.cpus())
    if parts is None:
        return None
    try:
        pool = proc.process_pool(len(parts), preload=[__name__])
    except Exception:  # no processes here (no /dev/shm, a limit)
        return None
    try:
        return unpack_in_parts(archive, parts, work, pool, dest=dest,
                               max_entry_bytes=limits.entry, max_total_bytes=limits.total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _write_part(archive: str, part: Part, work: str, dest: str | None, max_entry_bytes: int,
                max_total_bytes: int
                ) -> tuple[PartState, list[tuple[str, str, str, float]], list[tuple[str, float]]]:
    """A worker's share of ``unpack_in_parts``."""
    reader = PartReader(Path(archive), part, max_entry_bytes=max_entry_bytes,
                        max_total_bytes=max_total_bytes)
    links, dir_times = reader.write(Path(work), Path(dest) if dest is not None else None)
    return reader.state(), links, dir_times


def unpack_in_parts(archive: Path, parts: Sequence[Part], work: Path, pool: Executor, *,
                    dest: Path | None = None, max_entry_bytes: int,
                    max_total_bytes: int) -> str | None:
    """``archive`` (its ``parts``, from ``archive_parts``) written below ``work``, each
    part by a worker of ``pool`` with ``unpack``'s checks within it (``PartReader.write``);
    its top-level directory. None when a part cannot be read on its own, the parts do
    not join (``join_parts``), or a worker failed: then unpack the archive whole,
    elsewhere (what the parts wrote stays below ``work``), which refuses it in its own
    words if it must be refused.

    While the parts are written, no symlink is made: so no path below ``work`` is one,
    and nothing written can land outside it, whatever the parts hold. Once they joined
    (no path twice, none below a symlink or a file, no symlink that resolves outside),
    this process makes the symlinks, checks each with ``realpath`` as ``unpack`` does,
    and sets the directories' times.

    Every frame must state its size, and those add up to the limit of the files' total
    size at most (tar's headers included): each part stops where its frames' sizes end,
    so the parts cannot write more than the whole reading would before it refused (each
    part alone checks only its own total, and a frame decoded as a stream says it holds
    too much only at its end). ``dest``: where the tree goes then; each part refuses at
    its first entry when the top-level directory is there already. Paths go to the
    workers made absolute (a fork server's working directory is not this process's)."""
    sizes = [size for part in parts for _offset, _length, size in part.frames]
    if not sizes or min(sizes) <= 0 or sum(sizes) > max_total_bytes:
        return None
    where = os.path.abspath(work)
    futures: list[Future[tuple[PartState, list[tuple[str, str, str, float]],
                               list[tuple[str, float]]]]] = []
    try:
        for part in parts:
            futures.append(pool.submit(
                _write_part, os.path.abspath(archive), part, where,
                os.path.abspath(dest) if dest is not None else None, max_entry_bytes,
                max_total_bytes))
        done = [future.result() for future in futures]
    except Exception:  # Irregular, a worker died, the pool broke
        from concurrent.futures import wait

        for future in futures:  # the others still write below ``work``: let them end
            future.cancel()
        wait(futures)
        return None
    states = [state for state, _links, _times in done]
    if not join_parts(states, max_total_bytes=max_total_bytes):
        return None
    top = next(state.top for state in states if state.top is not None)
    links = [link for _state, part_links, _times in done for link in part_links]
    try:
        for _name, path, target, mtime in links:
            os.symlink(target, path)
            _Extractor.set_mtime(path, mtime)
        root = os.path.realpath(os.path.join(where, top))
        if not all(tree.within(os.path.realpath(path), root) for _n, path, _t, _m in links):
            return None
    except OSError:
        return None
    for path, mtime in reversed([t for _state, _links, times in done for t in times]):
        _Extractor.set_mtime(path, mtime)
    return top


__all__ = ["PARTS_MIN_BYTES", "Irregular", "Member", "NotStreamable", "Part", "PartReader",
           "PartState",
           "archive_parts", "check_sidecar", "detect_format", "join_parts", "leading_members",
           "read_members", "sidecar_of", "sidecar_sha256", "unpack", "unpack_in_parts"]
