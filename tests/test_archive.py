"""Bundle archives: byte-reproducible writing, atomic output (isolate.bundle.archive), and
safe unpacking (isolate.bundle.unpack).

Hostile archives are built here with ``tarfile``; every one must be refused with
``InputError`` without writing anything outside the destination, nor leaving anything in it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import random
import re
import socket
import stat
import string
import sys
import tarfile
import tempfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isolate.bundle import archive as arc
from isolate.bundle import unpack as unpack_mod
from isolate.bundle.archive import write_archive
from isolate.bundle.archive_format import DEFAULT_MTIME, FORMATS, archive_name, default_mtime
from isolate.bundle.unpack import detect_format, read_members, unpack
from isolate.errors import InputError
from isolate.fsutil import sha256_file

# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def make_tree(root: Path, *, variant: int) -> Path:
    """One logical tree, made two ways: other creation order, umask, mtimes, owner, and a
    hard link where the other variant has a copy."""
    payload = bytes(range(256)) * 1200 + b"tail"
    files: list[tuple[str, bytes, bool]] = [
        ("python/bin/python3.12", b"\x7fELF fake interpreter\n" * 50, True),
        ("python/lib/python3.12/os.py", b"import sys\n" * 300, False),
        ("python/lib/python3.12/data.bin", payload, False),
        ("python/lib/python3.12/copy-of-data.bin", payload, False),
        ("lib/libz.so.1", b"\x7fELF libz\n", True),
        ("bin/app", b"#!/bin/sh\nexec python \"$@\"\n", True),
        ("isolate-manifest.json", b'{"schema": "isolate.manifest/1"}\n', False),
        ("d" * 60 + "/" + "e" * 70 + "/long-name-over-one-hundred-bytes.txt", b"long\n", False),
        ("unicodé/ファイル.txt", "ü\n".encode(), False),
        ("empty", b"", False),
        ("a-b", b"after a/ in the archive: directories are walked one at a time\n", False),
        ("a/b", b"inside a\n", False),
    ]
    links = [("bin/python", "../python/bin/python3.12"),
             ("python/lib/" + "l" * 110, "python3.12/" + "../python3.12/" * 8 + "os.py")]
    order = -1 if variant else 1
    mask = 0o077 if variant else 0o022
    with umask(mask):
        root.mkdir(parents=True)
        (root / "empty-dir").mkdir()
        for rel, data, exe in files[::order]:
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if variant and rel.endswith("copy-of-data.bin"):
                continue  # a hard link, made below
            p.write_bytes(data)
            if exe:
                p.chmod(0o777 & ~mask)
        if variant:
            os.link(root / "python/lib/python3.12/data.bin",
                    root / "python/lib/python3.12/copy-of-data.bin")
        for rel, target in links[::order]:
            (root / rel).symlink_to(target)
    stamp = 1_000_000_000 + variant * 123_456
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            os.utime(p, (stamp, stamp), follow_symlinks=False)
            if variant and os.geteuid() == 0:
                os.lchown(p, 1234, 4321)
    return root


def snapshot(root: Path, skip: Path | None = None) -> list[tuple[str, str, int]]:
    """Every path below ``root`` (except below ``skip``) with its kind and size."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st_ = p.lstat()
            kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
            out.append((str(p.relative_to(root)), kind, st_.st_size if kind == "f" else 0))
    return sorted(out)


def tree_facts(root: Path) -> dict[str, tuple[str, int, bytes]]:
    facts = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            mode = stat.S_IMODE(p.lstat().st_mode)
            if p.is_symlink():
                facts[rel] = ("link", 0, str(p.readlink()).encode())
            elif p.is_dir():
                facts[rel] = ("dir", mode, b"")
            else:
                facts[rel] = ("file", mode, p.read_bytes())
    return facts


def unzstd(data: bytes) -> bytes:
    """Every frame of ``data`` decompressed (``decompress`` alone stops after the first)."""
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data),
                                                      read_across_frames=True).read()


def compress(raw: bytes, fmt: str) -> bytes:
    if fmt == "tar.zst":
        return zstandard.ZstdCompressor(write_checksum=True).compress(raw)
    return gzip.compress(raw, mtime=0)


# ----------------------------------------------------------------------------- writing


def test_archive_name() -> None:
    assert FORMATS == ("tar.zst", "tar.gz")
    assert archive_name("nova-1", "tar.zst") == "nova-1.tar.zst"
    with pytest.raises(InputError):
        archive_name("nova-1", "zip")


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_tree_gives_identical_bytes(tmp_path: Path, fmt: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a = make_tree(tmp_path / "one" / "src", variant=0)
    b = make_tree(tmp_path / "two" / "src", variant=1)
    assert (b / "python/lib/python3.12/data.bin").stat().st_nlink == 2
    out_a = tmp_path / "one" / archive_name("bundle", fmt)
    out_b = tmp_path / "two" / archive_name("bundle", fmt)
    with umask(0o022):
        digest_a = write_archive(a, out_a, fmt=fmt, root_name="bundle")
    with umask(0o077):
        digest_b = write_archive(b, out_b, fmt=fmt, root_name="bundle")
    assert out_a.read_bytes() == out_b.read_bytes()
    assert digest_a == digest_b == sha256_file(out_a) == hashlib.sha256(out_a.read_bytes()).hexdigest()
    sidecar = out_a.with_name(out_a.name + ".sha256").read_text()
    assert sidecar == f"{digest_a}  {out_a.name}\n"
    assert detect_format(out_a) == fmt
    # a different root name or content changes the bytes
    other = tmp_path / "other" / archive_name("bundle", fmt)
    assert write_archive(a, other, fmt=fmt, root_name="bundle2") != digest_a


@pytest.mark.parametrize("fmt", FORMATS)
def test_archive_layout(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    src = make_tree(tmp_path / "src", variant=1)
    out = tmp_path / archive_name("b", fmt)
    write_archive(src, out, fmt=fmt, root_name="b")
    raw = out.read_bytes()
    if fmt == "tar.gz":
        assert raw[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0
        tar = gzip.decompress(raw)
    else:
        params = zstandard.get_frame_parameters(raw)
        assert params.has_checksum
        tar = unzstd(raw)
        assert params.content_size == len(tar)  # a small tree: one frame
    assert len(tar) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names[0] == "b"
    assert names[:4] == ["b", "b/a", "b/a/b", "b/a-b"]  # sorted per directory, by bytes
    assert all(n == "b" or n.startswith("b/") for n in names)
    assert len(names) == len(set(names))
    by_name = {m.name: m for m in members}
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.mtime == DEFAULT_MTIME
        assert not m.pax_headers
        assert m.isdir() or m.isreg() or m.issym()
        if m.isdir():
            assert m.mode == 0o755
        elif m.issym():
            assert m.mode == 0o777
        else:
            assert m.mode in (0o644, 0o755)
    assert by_name["b/bin/app"].mode == 0o755
    assert by_name["b/isolate-manifest.json"].mode == 0o644
    assert by_name["b/bin/python"].linkname == "../python/bin/python3.12"
    assert by_name["b/python/lib/python3.12/copy-of-data.bin"].isreg()  # hard link stored whole
    assert by_name["b/empty-dir"].isdir()


def test_tar_bytes_are_stable(tmp_path: Path) -> None:
    """The uncompressed tar stream of a fixed tree: guards against header changes in
    ``tarfile`` across Python versions (identical from 3.9 to 3.13 when written)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "run").write_bytes(b"#!/bin/sh\n")
    (src / "sub" / "run").chmod(0o750)
    (src / ("n" * 120)).write_bytes(b"long name\n")
    (src / "link").symlink_to("sub/" + "./" * 60 + "run")
    out = tmp_path / "x.tar.gz"
    write_archive(src, out, fmt="tar.gz", root_name="root", mtime=1234567890)
    tar = gzip.decompress(out.read_bytes())
    assert hashlib.sha256(tar).hexdigest() == GOLDEN_TAR_SHA256


# Changed once on purpose: a symlink's target is stored as the link says (GNU long-link
# record for this 124-byte one), as the manifest records it; it used to be normalised.
GOLDEN_TAR_SHA256 = "fb3624e6032b08d306d2d167a3e007a8a9c9746a931d8d98718ebf44f317400d"


def test_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")

    def mtimes(out: Path) -> set[float]:
        with tarfile.open(out) as tf:
            return {m.mtime for m in tf.getmembers()}

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert default_mtime() == 1700000000
    write_archive(src, tmp_path / "a.tar.gz", fmt="tar.gz", root_name="r")
    assert mtimes(tmp_path / "a.tar.gz") == {1700000000}
    write_archive(src, tmp_path / "b.tar.gz", fmt="tar.gz", root_name="r", mtime=42)
    assert mtimes(tmp_path / "b.tar.gz") == {42}
    for bad in ("", "abc", "-5", "1.5", "٣", "99999999999999999999"):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", bad)
        assert default_mtime() == DEFAULT_MTIME == 315532800
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert default_mtime() == DEFAULT_MTIME


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    src = make_tree(tmp_path / "src", variant=0)
    (src / "bin" / "libdir").symlink_to("../lib")
    out = tmp_path / "dist" / archive_name("nova", fmt)
    calls: list[tuple[int, int]] = []
    write_archive(src, out, fmt=fmt, root_name="nova", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1]
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    dest = tmp_path / "unpacked"
    top = unpack(out, dest)
    assert top == dest / "nova"
    assert sorted(os.listdir(dest)) == ["nova"]
    got, want = tree_facts(top), tree_facts(src)
    assert got.keys() == want.keys()
    for rel, (kind, mode, data) in want.items():
        gkind, gmode, gdata = got[rel]
        assert (gkind, gdata) == (kind, data), rel
        if kind == "dir":
            assert gmode == 0o755, rel
        elif kind == "file":
            assert gmode == (0o755 if mode & 0o111 else 0o644), rel
    assert (top / "bin" / "python").readlink() == Path("../python/bin/python3.12")
    assert (top / "bin" / "python").resolve() == (top / "python/bin/python3.12").resolve()
    assert os.access(top / "bin" / "app", os.X_OK)
    assert (top / "bin" / "app").stat().st_mtime == DEFAULT_MTIME
    # unpacking again over the existing tree is refused, and leaves it alone
    with pytest.raises(InputError, match="already exists"):
        unpack(out, dest)
    assert sorted(os.listdir(dest)) == ["nova"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_write_leaves_nothing(tmp_path: Path, fmt: str,
                                          exc: type[BaseException]) -> None:
    src = make_tree(tmp_path / "src", variant=0)
    out_dir = tmp_path / "dist"

    def boom(done: int, total: int) -> None:
        if done > 100_000:
            raise exc("stop")

    with pytest.raises(exc):
        write_archive(src, out_dir / archive_name("b", fmt), fmt=fmt, root_name="b",
                      progress=boom)
    assert os.listdir(out_dir) == []
    # an earlier archive and its checksum survive a failed rewrite untouched
    out = out_dir / archive_name("b", fmt)
    digest = write_archive(src, out, fmt=fmt, root_name="b")
    before = snapshot(out_dir)
    (src / "new-file").write_bytes(b"changes the archive\n")
    with pytest.raises(exc):
        write_archive(src, out, fmt=fmt, root_name="b", progress=boom)
    assert snapshot(out_dir) == before
    assert sha256_file(out) == digest
    assert out.with_name(out.name + ".sha256").read_text().split()[0] == digest


def test_write_refuses_special_files_and_bad_links(tmp_path: Path) -> None:
    def fresh(name: str) -> Path:
        src = tmp_path / name
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "ok").write_text("ok")
        return src

    src = fresh("fifo")
    os.mkfifo(src / "sub" / "pipe")
    with pytest.raises(InputError, match=r"sub/pipe.*FIFO"):
        write_archive(src, tmp_path / "o1.tar.gz", fmt="tar.gz", root_name="r")

    src = fresh("sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(src / "sock"))
        with pytest.raises(InputError, match="socket"):
            write_archive(src, tmp_path / "o2.tar.zst", fmt="tar.zst", root_name="r")

    for i, target in enumerate(["/etc/passwd", "../../outside", "ok/../../.."]):
        src = fresh(f"link{i}")
        (src / "sub" / "bad").symlink_to(target)
        with pytest.raises(InputError, match="points outside"):
            write_archive(src, tmp_path / f"l{i}.tar.gz", fmt="tar.gz", root_name="r")

    src = fresh("plain")
    for kwargs, match in [({"fmt": "zip", "root_name": "r"}, "format"),
                          ({"fmt": "tar.gz", "root_name": "a/b"}, "root name"),
                          ({"fmt": "tar.gz", "root_name": ".."}, "root name"),
                          ({"fmt": "tar.gz", "root_name": "r", "mtime": -1}, "mtime"),
                          ({"fmt": "tar.zst", "root_name": "r"}, "name says .tar.gz")]:
        with pytest.raises(InputError, match=match):
            write_archive(src, tmp_path / "x.tar.gz", **kwargs)
    with pytest.raises(InputError, match="inside the tree"):
        write_archive(src, src / "sub" / "self.tar.gz", fmt="tar.gz", root_name="r")
    with pytest.raises(InputError, match="not a directory"):
        write_archive(src / "sub" / "ok", tmp_path / "y.tar.gz", fmt="tar.gz", root_name="r")
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


@pytest.mark.slow
def test_zstd_output_does_not_depend_on_thread_count(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Large enough for several zstd jobs (a few MiB each at level 3, 32 MiB at 10)."""
    src = tmp_path / "src"
    src.mkdir()
    block = hashlib.sha256(b"seed").digest() * 2048
    for i in range(4):
        (src / f"f{i}").write_bytes(b"".join(
            hashlib.sha256(block[:64] + bytes([i, j % 251])).digest() * 64 + block[: j % 4096]
            for j in range(6000)))
    digests = set()
    for threads in (1, 2, 4):
        monkeypatch.setattr(arc, "ZSTD_THREADS", threads)
        digests.add(write_archive(src, tmp_path / f"t{threads}.tar.zst", fmt="tar.zst",
                                  root_name="r"))
    assert len(digests) == 1


def test_zstd_level_is_the_callers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(0)  # text of words: each level compresses it better than the last
    words = ["".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(2, 9)))
             for _ in range(2000)]
    (src / "data").write_bytes(" ".join(rnd.choices(words, k=600_000)).encode())
    sizes = {}
    for level in (1, 3, 19):
        out = tmp_path / f"l{level}.tar.zst"
        write_archive(src, out, fmt="tar.zst", root_name="r", zstd_level=level)
        sizes[level] = out.stat().st_size
        with zstandard.ZstdDecompressor().stream_reader(out.open("rb"),
                                                        read_across_frames=True) as r, \
                tarfile.open(fileobj=r, mode="r|") as tf:
            assert [m.name for m in tf] == ["r", "r/data"]  # tarfile strips the slash
    assert sizes[19] < min(sizes[1], sizes[3])
    with pytest.raises(InputError, match="zstd level 0 is out of range"):
        write_archive(src, tmp_path / "bad.tar.zst", fmt="tar.zst", root_name="r", zstd_level=0)
    assert not (tmp_path / "bad.tar.zst").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_bytes_do_not_depend_on_how_the_stream_is_cut(tmp_path: Path, fmt: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads read the tar stream in segments that go to the compressor in order; the
    segment size (small ones cut headers, long-name records and files anywhere) changes
    no byte."""
    src = make_tree(tmp_path / "src", variant=0)
    digests = set()
    for size in (arc._SEGMENT, 4096, 1000, 513):
        monkeypatch.setattr(arc, "_SEGMENT", size)
        digests.add(write_archive(src, tmp_path / str(size) / archive_name("b", fmt), fmt=fmt,
                                  root_name="b"))
    assert len(digests) == 1


@pytest.mark.parametrize("segment", [4096, 1 << 22])
def test_a_file_that_shrinks_while_it_is_archived_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, segment: int) -> None:
    src = make_tree(tmp_path / "src", variant=0)
    collect = arc._collect

    def collect_then_shrink(top: Path, root_name: str, mtime: int) -> list[arc._Entry]:
        entries = collect(top, root_name, mtime)
        (top / "python/lib/python3.12/data.bin").write_bytes(b"short")
        return entries

    monkeypatch.setattr(arc, "_collect", collect_then_shrink)
    monkeypatch.setattr(arc, "_SEGMENT", segment)
    out = tmp_path / "dist" / "b.tar.zst"
    with pytest.raises(InputError, match=r"data\.bin shrank while it was being archived"):
        write_archive(src, out, fmt="tar.zst", root_name="b")
    assert os.listdir(out.parent) == []


_names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/"),
                min_size=1, max_size=60)


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(_names, min_size=1, max_size=4),
       kind=st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE]),
       mode=st.sampled_from([0o644, 0o755, 0o777, 0o7777]),
       mtime=st.one_of(st.integers(0, 8**11 - 1), st.just(8**11), st.just(2**40)),
       size=st.one_of(st.integers(0, 2**20), st.just(8**11 - 1), st.just(8**11)),
       link=st.one_of(st.just(""), _names, st.text(min_size=101, max_size=140)))
def test_fast_headers_are_tarfiles(parts: list[str], kind: bytes, mode: int, mtime: int,
                                   size: int, link: str) -> None:
    """The writer's own header encoder gives tarfile's bytes, long names and numbers too:
    tarfile's ustar header for a name over 100 bytes that ustar can hold (numbers within
    its octal fields, a link target within 100 bytes), else tarfile's GNU blocks."""
    name = "/".join(parts)
    if kind != tarfile.REGTYPE:
        size = 0
    if kind != tarfile.SYMTYPE:
        link = ""
    info = arc._info(name + ("/" if kind == tarfile.DIRTYPE else ""), kind, mode, mtime, size,
                     link)
    want = arc._header(info)
    if len(info.name.encode("utf-8", "surrogateescape")) > tarfile.LENGTH_NAME:
        with contextlib.suppress(ValueError):  # ustar cannot hold it
            want = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    assert arc._fast_header(name, kind, mode, mtime, size, link) == want


def test_long_names_take_one_ustar_block() -> None:
    name = "top/" + "d" * 60 + "/" + "e" * 70 + "/file.txt"
    block = arc._fast_header(name, tarfile.REGTYPE, 0o644, 0, 3)
    assert len(block) == 512 and block[257:265] == tarfile.POSIX_MAGIC
    assert block[345:500].rstrip(b"\0") == b"top/" + b"d" * 60
    too_long = "x" * 101  # no "/" to cut at: a GNU long-name record, then the header
    assert len(arc._fast_header(too_long, tarfile.REGTYPE, 0o644, 0, 3)) == 3 * 512


# ----------------------------------------------------------------------------- unpacking


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int | None = None,
           linkname: str = "", pax: dict[str, str] | None = None) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    ti.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    ti.linkname = linkname
    ti.mtime = DEFAULT_MTIME
    if pax:
        ti.pax_headers = pax
    return ti, data


def D(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.DIRTYPE, mode=mode)


def F(name: str, data: bytes = b"x\n", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.REGTYPE, data, mode)


def L(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.size else None)
    return buf.getvalue()


@dataclass
class Hostile:
    id: str
    members: list[tuple[tarfile.TarInfo, bytes]]
    match: str  # regex the message must match
    entry: str | None = None  # the entry the message must name
    limits: dict[str, int] = field(default_factory=dict)
    tar_format: int = tarfile.GNU_FORMAT
    patch: tuple[bytes, bytes] | None = None  # a byte replacement tarfile will not write


def hostile_cases(outside: Path) -> list[Hostile]:
    ok = [D("top"), F("top/a")]
    return [
        Hostile("traversal", [*ok, F("top/../../../../evil")], r"climbs out", "top/../../../../evil"),
        Hostile("traversal-first", [F("../evil")], r"climbs out", "../evil"),
        Hostile("absolute", [*ok, F(str(outside / "abs-evil"))], r"absolute path"),
        Hostile("absolute-dir", [D(str(outside))], r"absolute path"),
        Hostile("dot-component", [*ok, F("top/./x")], r"'\.' path component", "top/./x"),
        Hostile("symlink-up", [*ok, L("top/l", "../../etc")], r"symlink.*outside", "top/l"),
        Hostile("symlink-absolute", [*ok, L("top/l", "/etc/passwd")], r"absolute", "top/l"),
        Hostile("symlink-empty", [*ok, L("top/l", "")], r"empty target", "top/l"),
        Hostile("symlink-deep-up", [*ok, D("top/d"), L("top/d/l", "../x/../../y")],
                r"outside", "top/d/l"),
        Hostile("symlink-chain", [*ok, D("top/d"), D("top/d/e"), L("top/d/e/s", "../.."),
                                  L("top/d/e/x", "s/../y")], r"resolves outside", "top/d/e/x"),
        Hostile("symlink-chain-later", [*ok, D("top/d"), D("top/d/e"), L("top/d/e/x", "s/../y"),
                                        L("top/d/e/s", "../..")], r"resolves outside",
                "top/d/e/x"),
        Hostile("write-through-symlink", [*ok, L("top/l", "."), F("top/l/evil")],
                r"below the symlink", "top/l/evil"),
        Hostile("below-file", [*ok, F("top/a/b")], r"below the file", "top/a/b"),
        Hostile("hardlink-absolute", [*ok, member("top/h", tarfile.LNKTYPE,
                                                  linkname="/etc/passwd")], r"hard link", "top/h"),
        Hostile("hardlink-traversal", [*ok, member("top/h", tarfile.LNKTYPE,
                                                   linkname="top/../../a")], r"hard link", "top/h"),
        Hostile("hardlink-other-top", [*ok, member("top/h", tarfile.LNKTYPE, linkname="x/a")],
                r"hard link", "top/h"),
        Hostile("hardlink-later", [D("top"), member("top/h", tarfile.LNKTYPE, linkname="top/a"),
                                   F("top/a")], r"hard link", "top/h"),
        Hostile("hardlink-to-dir", [*ok, D("top/d"), member("top/h", tarfile.LNKTYPE,
                                                            linkname="top/d")],
                r"hard link", "top/h"),
        Hostile("hardlink-to-symlink", [*ok, L("top/s", "a"),
                                        member("top/h", tarfile.LNKTYPE, linkname="top/s")],
                r"hard link", "top/h"),
        Hostile("hardlink-oversize-total", [D("top"), F("top/a", b"a" * 800),
                                            member("top/h", tarfile.LNKTYPE, linkname="top/a")],
                r"total", "top/h", {"max_total_bytes": 1500}),
        Hostile("chardev", [*ok, member("top/null", tarfile.CHRTYPE)], r"device", "top/null"),
        Hostile("blockdev", [*ok, member("top/sda", tarfile.BLKTYPE)], r"device", "top/sda"),
        Hostile("fifo", [*ok, member("top/p", tarfile.FIFOTYPE)], r"FIFO", "top/p"),
        Hostile("unknown-type", [*ok, member("top/z", b"Z")], r"unsupported type", "top/z"),
        Hostile("setuid", [*ok, F("top/su", mode=0o4755)], r"setuid", "top/su"),
        Hostile("setgid-dir", [*ok, D("top/sg", mode=0o2755)], r"setgid", "top/sg"),
        Hostile("sticky", [*ok, D("top/tmp", mode=0o1777)], r"sticky", "top/tmp"),
        Hostile("duplicate", [*ok, F("top/a", b"again")], r"twice", "top/a"),
        Hostile("duplicate-dir", [*ok, D("top/d"), D("top/d")], r"twice", "top/d"),
        Hostile("file-over-implied-dir", [D("top"), F("top/d/x"), F("top/d")], r"clashes",
                "top/d"),
        Hostile("two-tops", [*ok, D("other"), F("other/b")], r"one top-level", "other"),
        Hostile("two-tops-implicit", [F("top/a"), F("other/b")], r"one top-level", "other/b"),
        Hostile("top-is-file", [F("top")], r"not a directory", "top"),
        Hostile("top-is-symlink", [L("top", ".")], r"not a directory", "top"),
        Hostile("nul-in-name", [*ok, member("top/xZy", pax={"path": "top/xZy"})], r"NUL",
                tar_format=tarfile.PAX_FORMAT, patch=(b"path=top/xZy", b"path=top/x\0y")),
        Hostile("oversize-entry", [*ok, F("top/big", b"b" * 1000)], r"over the limit",
                "top/big", {"max_entry_bytes": 999}),
        Hostile("oversize-total", [*ok, F("top/b1", b"1" * 800), F("top/b2", b"2" * 800)],
                r"total", "top/b2", {"max_total_bytes": 1500}),
        Hostile("huge-pax-header", [*ok, member("top/x", pax={"comment": "c" * (2 << 20)})],
                r"metadata header", None, tar_format=tarfile.PAX_FORMAT),
        Hostile("empty", [], r"empty"),
    ]


def refused(tmp_path: Path, archive: Path, match: str, entry: str | None = None,
            **limits: int) -> InputError:
    dest = tmp_path / "box" / "out"
    dest.mkdir(parents=True, exist_ok=True)
    before = snapshot(tmp_path, skip=dest)
    with pytest.raises(InputError) as info:
        unpack(archive, dest, **limits)
    err = info.value
    assert snapshot(tmp_path, skip=dest) == before
    assert os.listdir(dest) == []  # no partial tree, no temporary directory
    assert str(archive) in err.message
    assert err.hint
    assert re.search(match, err.message), err.message
    if entry is not None:
        assert repr(entry) in err.message, err.message
    return err


HOSTILE_IDS = [c.id for c in hostile_cases(Path("/x"))]


def hostile_archive(tmp_path: Path, case_id: str, fmt: str) -> tuple[Hostile, Path]:
    """The hostile case ``case_id`` and its archive, written to ``tmp_path/in``."""
    case = next(c for c in hostile_cases(tmp_path) if c.id == case_id)
    raw = tar_bytes(case.members, case.tar_format)
    if case.patch:
        assert case.patch[0] in raw
        raw = raw.replace(*case.patch)
    archive = tmp_path / "in" / f"hostile.{fmt}"
    archive.parent.mkdir()
    archive.write_bytes(compress(raw, fmt))
    return case, archive


@dataclass
class StreamReader:
    """Where ``read_members`` reads the tar stream: ``here`` (this process) or ``child``
    (a child process; ``started`` holds what ``_start_child`` gave, ``fallbacks`` an
    entry for each time this process read on itself after the child stopped short)."""

    where: str
    started: list[object] = field(default_factory=list)
    fallbacks: list[int] = field(default_factory=list)

    def assert_child_did_it(self) -> None:
        assert self.started and all(s is not None for s in self.started), self.started
        assert self.fallbacks == []


@pytest.fixture(params=["here", "child"])
def stream_reader(request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> StreamReader:
    if request.param == "here":
        monkeypatch.setattr(unpack_mod, "_CHILD_MIN_BYTES", 1 << 62)
        return StreamReader("here")
    return child_reader(monkeypatch)


def child_reader(monkeypatch: pytest.MonkeyPatch) -> StreamReader:
    """Every archive read by ``read_members`` from now on is read by a child, watched."""
    reader = StreamReader("child")
    monkeypatch.setattr(unpack_mod, "_CHILD_MIN_BYTES", 0)
    monkeypatch.setattr(unpack_mod, "_BATCH_ENTRIES", 2)  # several batches, even here
    start, here = unpack_mod._start_child, unpack_mod._members_here

    def spy_start(*args: object) -> object:
        started = start(*args)  # type: ignore[arg-type]
        reader.started.append(started)
        return started

    def spy_here(archive: Path, fmt: str, limits: object) -> object:
        reader.fallbacks.append(os.getpid())  # the child runs it too (forked: this spy)
        return here(archive, fmt, limits)  # type: ignore[arg-type]

    monkeypatch.setattr(unpack_mod, "_start_child", spy_start)
    monkeypatch.setattr(unpack_mod, "_members_here", spy_here)
    return reader


def stream_outcome(archive: Path, **limits: int) -> list[unpack_mod.Member] | str:
    """What ``read_members`` gives for ``archive``: its members, or its error's text."""
    try:
        return list(read_members(archive, **limits))
    except InputError as exc:
        return f"{type(exc).__name__}: {exc.message} ({exc.hint})"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case_id", HOSTILE_IDS)
def test_hostile_archive_refused_when_read_as_a_stream(tmp_path: Path, fmt: str,
                                                       case_id: str,
                                                       stream_reader: StreamReader) -> None:
    """``read_members`` (verify's stream) refuses what ``unpack`` refuses, writing nothing,
    whether this process or a child reads the stream."""
    case, archive = hostile_archive(tmp_path, case_id, fmt)
    with pytest.raises(InputError) as info:
        list(read_members(archive, **case.limits))
    assert re.search(case.match, info.value.message), info.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    if stream_reader.where == "child" and stream_reader.started:
        stream_reader.assert_child_did_it()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case_id", HOSTILE_IDS)
def test_hostile_archive_refused(tmp_path: Path, fmt: str, case_id: str) -> None:
    case, archive = hostile_archive(tmp_path, case_id, fmt)
    refused(tmp_path, archive, case.match, case.entry, **case.limits)
    assert not (tmp_path / "abs-evil").exists()


def good_archive(tmp_path: Path, fmt: str) -> Path:
    src = tmp_path / "good-src"
    if not src.exists():
        src.mkdir()
        (src / "f").write_bytes(os.urandom(50_000))
        (src / "g").write_text("hello\n")
    out = tmp_path / "in" / archive_name("good", fmt)
    write_archive(src, out, fmt=fmt, root_name="good")
    out.with_name(out.name + ".sha256").unlink()
    return out


FormatCase = Callable[[Path, str], tuple[Path, str]]


def _truncated_half(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    a = good_archive(tmp_path, fmt)
    a.write_bytes(a.read_bytes()[: a.stat().st_size // 2])
    return a, "truncated or corrupt"


def _truncated_last_byte(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    a = good_archive(tmp_path, fmt)  # cuts into the zstd checksum / the gzip size field
    a.write_bytes(a.read_bytes()[:-1])
    return a, "truncated or corrupt"


def _flipped(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    a = good_archive(tmp_path, fmt)
    data = bytearray(a.read_bytes())
    data[len(data) // 2] ^= 0x55
    a.write_bytes(bytes(data))
    return a, "truncated or corrupt"


def _trailing_garbage(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    a = good_archive(tmp_path, fmt)
    a.write_bytes(a.read_bytes() + b"garbage after the end")
    return a, "truncated or corrupt"


def _garbage(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    a = tmp_path / "in" / f"noise.{fmt}"
    a.parent.mkdir(exist_ok=True)
    a.write_bytes(bytes(range(7, 255)) * 40)
    return a, "not a zstd or gzip"


def _magic_then_garbage(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    a = tmp_path / "in" / f"noise.{fmt}"
    a.parent.mkdir(exist_ok=True)
    magic = b"\x28\xb5\x2f\xfd" if fmt == "tar.zst" else b"\x1f\x8b"
    a.write_bytes(magic + bytes(range(7, 255)) * 40)
    return a, "truncated or corrupt"


def _not_a_tar(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    a = tmp_path / "in" / f"text.{fmt}"
    a.parent.mkdir(exist_ok=True)
    a.write_bytes(compress(b"just some text, not a tar archive\n" * 100, fmt))
    return a, "truncated or corrupt"


def _wrong_suffix(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    other = "tar.gz" if fmt == "tar.zst" else "tar.zst"
    a = good_archive(tmp_path, other)
    b = a.with_name(f"renamed.{fmt}")
    a.rename(b)
    return b, f"name says .{fmt}"


def _sidecar_mismatch(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    a = good_archive(tmp_path, fmt)
    a.with_name(a.name + ".sha256").write_text("0" * 64 + f"  {a.name}\n")
    return a, f"{sha256_file(a)}.*{'0' * 64}"


def _sidecar_malformed(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    a = good_archive(tmp_path, fmt)
    a.with_name(a.name + ".sha256").write_text("not a checksum\n")
    return a, "not a sha256sum"


FORMAT_CASES: dict[str, FormatCase] = {
    "truncated-half": _truncated_half, "truncated-last-byte": _truncated_last_byte,
    "flipped-byte": _flipped, "trailing-garbage": _trailing_garbage, "garbage": _garbage,
    "magic-then-garbage": _magic_then_garbage, "not-a-tar": _not_a_tar,
    "wrong-suffix": _wrong_suffix, "sidecar-mismatch": _sidecar_mismatch,
    "sidecar-malformed": _sidecar_malformed,
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case_id", list(FORMAT_CASES))
def test_bad_archive_file_refused(tmp_path: Path, fmt: str, case_id: str) -> None:
    archive, match = FORMAT_CASES[case_id](tmp_path, fmt)
    refused(tmp_path, archive, match)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case_id", list(FORMAT_CASES))
def test_bad_archive_file_refused_when_read_as_a_stream(tmp_path: Path, fmt: str, case_id: str,
                                                        stream_reader: StreamReader) -> None:
    archive, match = FORMAT_CASES[case_id](tmp_path, fmt)
    with pytest.raises(InputError) as info:
        list(read_members(archive))
    assert str(archive) in info.value.message
    assert re.search(match, info.value.message), info.value.message
    if stream_reader.where == "child" and stream_reader.started:
        stream_reader.assert_child_did_it()


def big_tree(root: Path, files: int = 300) -> Path:
    """A tree of ``files`` files of 1-40 KB, incompressible, in 10 directories."""
    rng = random.Random(7)
    for i in range(files):
        p = root / f"d{i % 10}" / f"file-{i:04d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randint(1_000, 40_000)))
    (root / "d0" / "link").symlink_to("file-0000.bin")
    return root


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_child_reads_the_stream_as_this_process_does(
        tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same members, in the same order, from an archive of many batches."""
    out = tmp_path / archive_name("big", fmt)
    write_archive(big_tree(tmp_path / "src"), out, fmt=fmt, root_name="big")
    monkeypatch.setattr(unpack_mod, "_CHILD_MIN_BYTES", 1 << 62)
    here = list(read_members(out))
    monkeypatch.setattr(unpack_mod, "_CHILD_MIN_BYTES", 0)
    started: list[object] = []
    start = unpack_mod._start_child

    def spy(*args: object) -> object:
        started.append(start(*args))  # type: ignore[arg-type]
        return started[-1]

    monkeypatch.setattr(unpack_mod, "_start_child", spy)
    assert list(read_members(out)) == here
    assert len(here) == 300 + 12 and started[0] is not None


_READ_IN_A_FRESH_PROCESS = """
import hashlib, sys
from pathlib import Path
from isolate import proc
from isolate.bundle import unpack

forked = []
real = proc.child_process


def spy(*args, **kwargs):
    forked.append(proc.forks())
    return real(*args, **kwargs)


proc.child_process = spy


def digest():
    h = hashlib.sha256()
    for m in unpack.read_members(Path(sys.argv[1])):
        h.update(repr((m.top, m.path, m.kind, m.mode, m.target, len(m.data))).encode())
        h.update(m.data)
    return h.hexdigest()


by_child = digest()
unpack._CHILD_MIN_BYTES = 1 << 62
print(forked, by_child == digest())
"""


def test_a_large_archive_is_read_by_a_forked_child(tmp_path: Path) -> None:
    """As ``isolate verify`` reads one: in a process of one thread (not this one, which
    pytest-xdist may give threads), with the default threshold: the child is forked and
    gives what this process reads itself."""
    from isolate.proc import Runner

    out = tmp_path / "big.tar.zst"
    write_archive(big_tree(tmp_path / "src", files=500), out, fmt="tar.zst", root_name="big")
    assert out.stat().st_size >= unpack_mod._CHILD_MIN_BYTES
    done = Runner().run([sys.executable, "-c", _READ_IN_A_FRESH_PROCESS, str(out)],
                        check=False, timeout=300)
    assert done.ok, done.stdout + done.stderr
    assert done.stdout.strip() == "[True] True", done.stdout + done.stderr


@dataclass
class ChildReading:
    """An archive larger than the pipe, read by a watched child: the first member given."""

    reader: StreamReader
    archive: Path
    members: Generator[unpack_mod.Member, None, None]
    first: unpack_mod.Member
    child: Any  # multiprocessing's process


def reading_by_a_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ChildReading:
    reader = child_reader(monkeypatch)
    out = tmp_path / "big.tar.zst"
    write_archive(big_tree(tmp_path / "src"), out, fmt="tar.zst", root_name="big")
    members = read_members(out)
    first = next(members)
    return ChildReading(reader, out, members, first, reader.started[0][0])  # type: ignore[index]


def test_this_process_reads_on_when_the_child_dies(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    r = reading_by_a_child(tmp_path, monkeypatch)
    r.child.kill()  # it is blocked on the full pipe: the archive is larger than the pipe
    got = [r.first, *r.members]
    assert r.reader.fallbacks
    r.reader.fallbacks.clear()
    assert got == stream_outcome(r.archive)  # and the second read's child was not killed
    r.reader.assert_child_did_it()


def test_the_child_stops_when_the_reader_does(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    r = reading_by_a_child(tmp_path, monkeypatch)
    assert r.child.is_alive()
    r.members.close()
    assert not r.child.is_alive() and r.child.exitcode is not None
    r.reader.assert_child_did_it()


@pytest.mark.parametrize("fmt", FORMATS)
def test_decompression_bomb_refused(tmp_path: Path, fmt: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries within the limits, followed by far more (highly compressible) padding."""
    monkeypatch.setattr(unpack_mod, "_HEADER_ALLOWANCE", 1 << 20)
    archive = tmp_path / "in" / f"bomb.{fmt}"
    archive.parent.mkdir()
    archive.write_bytes(compress(tar_bytes([D("top"), F("top/a")]) + bytes(8 << 20), fmt))
    refused(tmp_path, archive, "decompresses to more than", max_total_bytes=1 << 20)


def test_good_archive_with_sidecar_unpacks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    out = tmp_path / "in" / "b.tar.zst"
    write_archive(src, out, fmt="tar.zst", root_name="b")
    assert unpack(out, tmp_path / "out") == tmp_path / "out" / "b"


def test_detect_format(tmp_path: Path) -> None:
    gz = tmp_path / "bundle.bin"
    gz.write_bytes(gzip.compress(b"x"))
    assert detect_format(gz) == "tar.gz"  # unknown suffix: the content decides
    zst = tmp_path / "bundle.tzst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(b"x"))
    assert detect_format(zst) == "tar.zst"
    for name in ("b.tar.gz", "b.tgz", "b.tar.xz", "b.tar", "b.zip"):
        wrong = tmp_path / name
        wrong.write_bytes(zst.read_bytes())
        with pytest.raises(InputError, match="name says"):
            detect_format(wrong)
    empty = tmp_path / "e.tar.gz"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="not a zstd or gzip"):
        detect_format(empty)
    with pytest.raises(InputError):
        unpack(tmp_path / "missing.tar.gz", tmp_path / "out")


def test_unpack_accepts_foreign_but_safe_archive(tmp_path: Path) -> None:
    """Archives from other tools: './' prefixes, implied directories, pax headers."""
    raw = tar_bytes([F("./top/sub/f", b"data", 0o600), F("./top/sub/x", b"#!", 0o700),
                     L("./top/l", "sub/f"), D("./top/sub")], tarfile.PAX_FORMAT)
    archive = tmp_path / "foreign.tar.gz"
    archive.write_bytes(compress(raw, "tar.gz"))
    top = unpack(archive, tmp_path / "out")
    assert (top / "sub" / "f").read_bytes() == b"data"
    assert stat.S_IMODE((top / "sub" / "f").stat().st_mode) == 0o644
    assert stat.S_IMODE((top / "sub" / "x").stat().st_mode) == 0o755
    assert (top / "l").read_bytes() == b"data"


def test_internal_hard_links_become_copies(tmp_path: Path) -> None:
    """Other tools (not isolate) write hard links; one to an earlier file is harmless."""
    raw = tar_bytes([D("top"), F("top/a", b"shared", 0o755),
                     member("top/sub/h", tarfile.LNKTYPE, linkname="top/a", mode=0o755),
                     member("top/h2", tarfile.LNKTYPE, linkname="./top/sub/h")])
    archive = tmp_path / "links.tar.zst"
    archive.write_bytes(compress(raw, "tar.zst"))
    top = unpack(archive, tmp_path / "out")
    for rel in ("a", "sub/h", "h2"):
        assert (top / rel).read_bytes() == b"shared"
        assert (top / rel).stat().st_nlink == 1
    assert stat.S_IMODE((top / "sub" / "h").stat().st_mode) == 0o755
    assert stat.S_IMODE((top / "h2").stat().st_mode) == 0o644


# ----------------------------------------------------------------------------- fuzzing


def _fuzz_base() -> dict[str, tuple[bytes, bytes, list[int]]]:
    """Per format: a small valid archive, its uncompressed tar, and the tar's header offsets."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d, "src")
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "f").write_bytes(b"content\n" * 20)
        (src / "x").write_bytes(b"#!/bin/sh\n")
        (src / "x").chmod(0o755)
        (src / "l").symlink_to("sub/f")
        (src / ("n" * 101)).write_bytes(b"long name\n")
        out = {}
        for fmt in FORMATS:
            a = Path(d, archive_name("fz", fmt))
            write_archive(src, a, fmt=fmt, root_name="fz")
            data = a.read_bytes()
            tar = gzip.decompress(data) if fmt == "tar.gz" else unzstd(data)
            with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
                headers = sorted({o for m in tf.getmembers()
                                  for o in (m.offset, m.offset_data - tarfile.BLOCKSIZE)})
            out[fmt] = (data, tar, headers)
    return out


FUZZ_BASE = _fuzz_base()


def fix_checksums(data: bytearray, headers: list[int]) -> None:
    """Recompute the checksum of each (former) header block, so that mutations reach the
    member checks instead of all failing tarfile's checksum test."""
    for o in headers:
        block = data[o:o + tarfile.BLOCKSIZE]
        if len(block) == tarfile.BLOCKSIZE and any(block):
            block[148:156] = b" " * 8
            data[o + 148:o + 156] = b"%06o\0 " % sum(block)


_PARTS = ["fz", "top", "..", ".", "", "a", "b", "l", "n" * 101]


@st.composite
def random_members(draw: st.DrawFn) -> bytes:
    """A tar built from random, often hostile, members."""
    members = []
    for _ in range(draw(st.integers(0, 6))):
        parts = draw(st.lists(st.sampled_from(_PARTS), min_size=0, max_size=3))
        lead = draw(st.sampled_from(["fz/", "fz/", "fz/", "", "/", "./fz/"]))
        name = lead + "/".join(parts) or "fz"
        kind = draw(st.sampled_from([tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE,
                                     tarfile.SYMTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                                     tarfile.CHRTYPE, tarfile.FIFOTYPE, b"Z"]))
        target = draw(st.sampled_from(["", "/"])) + "/".join(
            draw(st.lists(st.sampled_from(_PARTS), min_size=1, max_size=4)))
        mode = draw(st.sampled_from([0o644, 0o755, 0o600, 0o4755, 0o2755, 0o1777]))
        members.append(member(name, kind, draw(st.binary(max_size=40)), mode, target))
    fmt = draw(st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    return tar_bytes(members, fmt)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(FORMATS))
    archive, tar, headers = FUZZ_BASE[fmt]
    layer = draw(st.sampled_from(["compressed", "tar", "tar", "members", "random"]))
    if layer == "random":
        magic = b"\x28\xb5\x2f\xfd" if fmt == "tar.zst" else b"\x1f\x8b"
        return fmt, magic + draw(st.binary(max_size=600))
    if layer == "members":
        return fmt, compress(draw(random_members()), fmt)
    data = bytearray(archive if layer == "compressed" else tar)
    hot = headers[-1] + tarfile.BLOCKSIZE if layer == "tar" else len(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, min(hot, len(data)) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from([0, 0x30, 0x2F, 0x2E, 0x37, 0xFF, ord("1"),
                                            ord("2"), ord("3"), ord("5"), ord("6")]))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=40))
        else:
            del data[i:i + draw(st.integers(1, 600))]
    if layer == "tar":
        if draw(st.booleans()):
            fix_checksums(data, headers)
        return fmt, compress(bytes(data), fmt)
    return fmt, bytes(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzzed_archives_read_the_same_in_a_child(case: tuple[str, bytes]) -> None:
    """Whatever the archive, a child gives what this process gives: the same members or
    the same refusal, word for word."""
    fmt, data = case
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        archive = Path(d) / f"fuzz.{fmt}"
        archive.write_bytes(data)
        limits = {"max_entry_bytes": 1 << 20, "max_total_bytes": 4 << 20}
        mp.setattr(unpack_mod, "_CHILD_MIN_BYTES", 1 << 62)
        here = stream_outcome(archive, **limits)
        mp.setattr(unpack_mod, "_CHILD_MIN_BYTES", 0)
        mp.setattr(unpack_mod, "_BATCH_ENTRIES", 1)
        fallbacks: list[object] = []
        real = unpack_mod._members_here

        def spy(*args: object, **kwargs: object) -> object:
            fallbacks.append(args)
            return real(*args, **kwargs)  # type: ignore[arg-type]

        mp.setattr(unpack_mod, "_members_here", spy)
        assert stream_outcome(archive, **limits) == here
        assert fallbacks == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzzed_archives_unpack_or_input_error(case: tuple[str, bytes]) -> None:
    fmt, data = case
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        archive = root / "in" / f"fuzz.{fmt}"
        archive.parent.mkdir()
        archive.write_bytes(data)
        dest = root / "box" / "out"
        dest.mkdir(parents=True)
        before = snapshot(root, skip=dest)
        try:
            top = unpack(archive, dest, max_entry_bytes=1 << 20, max_total_bytes=4 << 20)
        except InputError:
            assert os.listdir(dest) == []
        else:
            assert top.parent == dest
            assert os.listdir(dest) == [top.name]
            real_top = os.path.realpath(top)
            for p in top.rglob("*"):
                mode = p.lstat().st_mode
                assert stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)
                assert not mode & 0o7000
                if p.is_symlink():
                    resolved = os.path.realpath(p)
                    assert resolved == real_top or resolved.startswith(real_top + "/")
        assert snapshot(root, skip=dest) == before
