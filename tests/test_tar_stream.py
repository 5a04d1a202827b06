"""The tar stream reader (isolate.bundle.tar_stream) against tarfile, which wrote the input.

Every entry tarfile writes in the ustar, GNU and pax formats (long names and targets,
the ustar prefix, base-256 numbers, pax sizes and times) reads back as tarfile reads it;
where the reader is stricter than tarfile (a bad checksum after the first header, a
stream that ends inside an entry), it says so.
"""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isolate.bundle.tar_stream import BLOCK, Entry, TarError, TarReader, TooLarge


class Chunked:
    """A stream that returns at most ``step`` bytes per read, as a decompressor may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def read(self, size: int = -1, /) -> bytes:
        n = self._step if size < 0 else min(size, self._step)
        out = self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out


def read_all(data: bytes, step: int = 1 << 20, max_meta: int = 1 << 20
             ) -> list[tuple[Entry, bytes]]:
    reader = TarReader(Chunked(data, step), max_meta=max_meta)
    out = []
    while (entry := reader.next()) is not None:
        # every other regular entry is left unread: next() must skip its data
        keep = entry.isreg() and len(out) % 2 == 0
        out.append((entry, reader.read(entry) if keep else b""))
    return out


def tar_of(infos: list[tuple[tarfile.TarInfo, bytes]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8",
                      errors="surrogateescape") as tf:
        for ti, data in infos:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


_NAME_PART = st.text(st.sampled_from("abcé_-.0xyz"), min_size=1, max_size=60).filter(
    lambda p: p not in (".", ".."))


@st.composite
def entries(draw: st.DrawFn) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        parts = draw(st.lists(_NAME_PART, min_size=1, max_size=5))
        ti = tarfile.TarInfo(f"top{i}/" + "/".join(parts))
        ti.type = draw(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                                        tarfile.LNKTYPE, tarfile.FIFOTYPE]))
        ti.mode = draw(st.sampled_from([0o644, 0o755, 0o4755, 0o777, 0o600]))
        ti.mtime = draw(st.sampled_from([0, 315532800, 1_700_000_000, 8**11 + 5]))
        data = b""
        if ti.type == tarfile.REGTYPE:
            data = draw(st.binary(max_size=3000))
            ti.size = len(data)
        if ti.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            ti.linkname = "/".join(draw(st.lists(_NAME_PART, min_size=1, max_size=4)))
        out.append((ti, data))
    return out


@settings(max_examples=150, deadline=None)
@given(infos=entries(), fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT,
                                             tarfile.USTAR_FORMAT]),
       step=st.sampled_from([1, 7, 512, 1000, 1 << 20]))
def test_reads_what_tarfile_wrote_as_tarfile_reads_it(
        infos: list[tuple[tarfile.TarInfo, bytes]], fmt: int, step: int) -> None:
    try:
        raw = tar_of(infos, fmt)
    except ValueError:  # ustar cannot hold this name or number
        return
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:", encoding="utf-8",
                      errors="surrogateescape") as tf:
        want = [(m, tf.extractfile(m).read() if m.isreg() else b"")  # type: ignore[union-attr]
                for m in tf.getmembers()]
    got = read_all(raw, step)
    assert len(got) == len(want)
    for i, ((entry, data), (m, mdata)) in enumerate(zip(got, want, strict=True)):
        assert (entry.name, entry.type, entry.mode, entry.size, entry.linkname) == (
            m.name, m.type, m.mode, m.size, m.linkname)
        assert entry.mtime == m.mtime
        assert not entry.issparse()
        if entry.isreg() and i % 2 == 0:
            assert data == mdata


def _header(raw: bytearray, at: int, field: slice, value: bytes) -> None:
    """Set a header field and fix the header's checksum."""
    raw[at + field.start:at + field.stop] = value.ljust(field.stop - field.start, b"\0")
    block = raw[at:at + BLOCK]
    block[148:156] = b" " * 8
    raw[at + 148:at + 156] = b"%06o\0 " % sum(block)


def _two_files() -> bytearray:
    a, b = tarfile.TarInfo("top/a"), tarfile.TarInfo("top/b")
    a.size = b.size = 3
    return bytearray(tar_of([(a, b"aaa"), (b, b"bbb")], tarfile.GNU_FORMAT))


def test_a_bad_checksum_after_the_first_header_is_an_error() -> None:
    raw = _two_files()
    raw[2 * BLOCK] ^= 1  # the second header's name; its checksum is not fixed
    with pytest.raises(TarError, match="checksum"):
        read_all(bytes(raw))
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tf:
        assert len(tf.getmembers()) == 1  # what tarfile does instead: the archive "ends"


def test_a_stream_that_ends_inside_an_entry_is_an_error() -> None:
    raw = bytes(_two_files())
    with pytest.raises(TarError, match=r"cut short|ends inside"):
        read_all(raw[:BLOCK + 2])  # inside the first file's data
    with pytest.raises(TarError, match="ends inside"):
        read_all(raw[:2 * BLOCK + 100])  # inside the second header
    assert [e.name for e, _ in read_all(raw[:4 * BLOCK])] == ["top/a", "top/b"]  # no end


def test_base256_numbers_and_the_ustar_prefix() -> None:
    raw = _two_files()
    _header(raw, 0, slice(136, 148), b"\x80" + (2**40).to_bytes(11, "big"))  # mtime
    _header(raw, 0, slice(345, 500), b"some/prefix")
    (first, _), _ = read_all(bytes(raw))
    assert first.mtime == 2**40
    assert first.name == "some/prefix/top/a"
    _header(raw, 0, slice(124, 136), b"\xff" + b"\xff" * 11)  # size -1
    with pytest.raises(TarError, match="negative"):
        read_all(bytes(raw))
    _header(raw, 0, slice(124, 136), b"0000000009")
    with pytest.raises(TarError, match="number"):
        read_all(bytes(raw))


def test_pax_records_and_global_headers() -> None:
    a = tarfile.TarInfo("top/a")
    a.size = 3
    a.pax_headers = {"path": "top/" + "long" * 40, "mtime": "12.5", "comment": "x"}
    g = tarfile.TarInfo("global")
    g.type = tarfile.XGLTYPE
    g.pax_headers = {"linkpath": "everyone"}
    link = tarfile.TarInfo("top/l")
    link.type = tarfile.SYMTYPE
    link.linkname = "own"
    raw = tar_of([(a, b"aaa"), (g, b""), (link, b"")], tarfile.PAX_FORMAT)
    (first, data), (second, _) = read_all(raw)
    assert first.name == "top/" + "long" * 40 and first.mtime == 12.5 and data == b"aaa"
    assert second.name == "top/l" and second.linkname == "everyone"  # POSIX: global applies


def test_sparse_entries_and_oversize_metadata() -> None:
    a = tarfile.TarInfo("top/a")
    a.size = 3
    a.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    (entry, _), = read_all(tar_of([(a, b"aaa")], tarfile.PAX_FORMAT))
    assert entry.issparse()
    raw = _two_files()
    _header(raw, 0, slice(156, 157), b"S")
    assert read_all(bytes(raw))[0][0].issparse()
    big = tarfile.TarInfo("top/" + "n" * 3000)
    with pytest.raises(TooLarge, match="metadata header of"):
        read_all(tar_of([(big, b"")], tarfile.GNU_FORMAT), max_meta=1000)


def test_an_old_style_directory_and_unknown_types_are_reported_as_they_are() -> None:
    d, b = tarfile.TarInfo("top/d/"), tarfile.TarInfo("top/b")
    b.size = 3
    raw = bytearray(tar_of([(d, b""), (b, b"bbb")], tarfile.GNU_FORMAT))
    _header(raw, 0, slice(156, 157), b"\0")
    _header(raw, BLOCK, slice(156, 157), b"Z")
    (first, _), (second, _) = read_all(bytes(raw))
    assert first.isdir() and first.name == "top/d"
    assert second.type == b"Z" and not (second.isreg() or second.isdir())
