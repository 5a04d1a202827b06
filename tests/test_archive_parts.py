"""Archives of many zstd frames, and reading them in parts (issue 12, verify ARCHIVE).

The writer cuts a tar.zst archive into independent frames that each start where a tar
header starts; ``isolate verify`` reads the frames in parts, one per worker process
(``isolate.bundle.unpack.archive_parts``, ``PartReader``, ``join_parts``;
``isolate.verify.scan.PartScan``). The property that matters: reading in parts never
accepts what reading the archive whole refuses, and what it accepts, it describes as the
whole reading does. Checked on real trees, on every hostile layout of ``test_archive``
cut into frames at every entry, on cuts that fall inside entries, on clashes that only
show across parts, and on fuzzed archives cut at random.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isolate.bundle import archive as arc
from isolate.bundle import unpack as unpack_mod
from isolate.bundle.archive import write_archive
from isolate.bundle.archive_format import archive_name
from isolate.bundle.unpack import archive_parts, read_members, unpack_in_parts
from isolate.errors import InputError
from isolate.fsutil import remove_tree
from isolate.model.manifest import MANIFEST_NAME
from isolate.proc import process_pool
from isolate.verify.scan import PartScan, Tree, scan_members
from tests.conftest import bundle_dir
from tests.test_archive import (
    HOSTILE_IDS,
    D,
    F,
    L,
    big_tree,
    hostile_cases,
    make_tree,
    member,
    random_members,
    tar_bytes,
    tree_facts,
)

NEEDLES = ["needle-x1", "/opt/host-python"]
LIMITS = {"max_entry_bytes": 1 << 20, "max_total_bytes": 8 << 20}


# ----------------------------------------------------------------------------- helpers


def split(data: bytes) -> list[bytes]:
    """The zstd frames of ``data`` as they are, split by zstandard itself."""
    out = []
    while data:
        obj = zstandard.ZstdDecompressor().decompressobj()
        obj.decompress(data)
        assert obj.eof
        rest = obj.unused_data
        out.append(data[:len(data) - len(rest)])
        data = rest
    return out


def frames_of(data: bytes) -> list[bytes]:
    """The content of each zstd frame of ``data``."""
    return [zstandard.ZstdDecompressor().decompressobj().decompress(f) for f in split(data)]


def written(src: Path, out: Path, monkeypatch: pytest.MonkeyPatch, frame: int) -> Path:
    """``src`` archived by ``write_archive`` into ``out`` in frames of ``frame`` bytes."""
    monkeypatch.setattr(arc, "_FRAME", frame)
    write_archive(src, out, fmt="tar.zst", root_name="b")
    return out


def header_offsets(tar: bytes) -> list[int]:
    """Where each entry's first header block (long-name records included) starts."""
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as tf:
        return [m.offset for m in tf.getmembers()]


def framed(tar: bytes, cuts: Sequence[int]) -> bytes:
    """``tar`` compressed as one zstd frame per piece between ``cuts`` (and the ends)."""
    edges = [0, *sorted({c for c in cuts if 0 < c < len(tar)}), len(tar)]
    cctx = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True)
    return b"".join(cctx.compress(tar[a:b]) for a, b in itertools.pairwise(edges))


@pytest.fixture
def threads() -> Iterator[Executor]:
    """PartScan's workers as threads: the same functions, in this process."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def whole(archive: Path, limits: dict[str, int] | None = None
          ) -> tuple[Tree, dict[str, bytes]] | str:
    """What reading ``archive`` whole gives: its tree, or its refusal's words."""
    try:
        members = read_members(archive, **(limits or LIMITS))
        with contextlib.closing(members):
            return scan_members(Path("/r"), members, NEEDLES, skip=["isolate-manifest.json"])
    except InputError as exc:
        return f"{exc.message} ({exc.hint})"


def in_parts(archive: Path, pool: Executor, count: int = 3,
             limits: dict[str, int] | None = None) -> tuple[Tree, dict[str, bytes]] | None:
    """What reading ``archive`` in parts gives: its tree, or None (read it whole)."""
    parts = archive_parts(archive, count)
    if parts is None:
        return None
    limits = limits or LIMITS
    scan = PartScan(Path("/r"), archive, parts, NEEDLES, pool, skip=["isolate-manifest.json"],
                    max_entry_bytes=limits["max_entry_bytes"],
                    max_total_bytes=limits["max_total_bytes"])
    scan._pool = None  # the fixture's pool outlives this scan
    return scan.result()


def agree(archive: Path, pool: Executor, count: int = 3) -> bool:
    """Reading in parts accepts only what the whole reading accepts, and gives what it
    gives; returns whether it was read in parts."""
    parts = in_parts(archive, pool, count)
    full = whole(archive)
    if parts is not None:
        assert not isinstance(full, str), f"read in parts, refused whole: {full}"
        tree, kept = full
        assert parts == (tree, {p: hashlib.sha256(d).digest() for p, d in kept.items()})
    return parts is not None


# ------------------------------------------------------------------------------ writer


def test_a_large_tree_becomes_frames_that_each_start_at_a_header(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = big_tree(tmp_path / "src")
    out = written(src, tmp_path / "a.tar.zst", monkeypatch, 64 << 10)
    data = out.read_bytes()
    frames = frames_of(data)
    tar = b"".join(frames)
    gz = tmp_path / "a.tar.gz"
    write_archive(src, gz, fmt="tar.gz", root_name="b")
    assert tar == gzip.decompress(gz.read_bytes())  # the same tar stream, only framed
    assert len(frames) > 20
    starts = set(header_offsets(tar))
    offset = 0
    for frame in frames[:-1]:
        assert offset in starts  # every frame starts with a header
        assert len(frame) >= 64 << 10  # and holds whole entries up to the frame size
        offset += len(frame)
    assert offset in starts or not frames[-1].strip(b"\0")  # the last: maybe the end blocks
    for raw in split(data):  # each states its size and has a checksum
        params = zstandard.get_frame_parameters(raw)
        assert params.has_checksum
        assert params.content_size == len(zstandard.ZstdDecompressor().decompress(raw))


def test_large_entries_get_frames_of_their_own(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arc, "_FRAME", 8 << 10)
    monkeypatch.setattr(arc, "_LARGE", 16 << 10)
    monkeypatch.setattr(arc, "_SEGMENT", 4 << 10)  # several segments per large frame
    src = tmp_path / "src"
    src.mkdir()
    for i, size in enumerate([100, 20_000, 300, 50_000, 16 << 10, 10]):
        (src / f"f{i}").write_bytes(os.urandom(size))
    out = tmp_path / "a.tar.zst"
    write_archive(src, out, fmt="tar.zst", root_name="b")
    frames = frames_of(out.read_bytes())
    tar = b"".join(frames)
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as tf:
        members = {m.name: m for m in tf.getmembers()}
    offset = 0
    alone = set()
    for frame in frames:
        names = [n for n, m in members.items() if offset <= m.offset < offset + len(frame)]
        if len(names) == 1 and members[names[0]].size >= 16 << 10:
            alone.add(names[0])
        offset += len(frame)
    assert alone == {"b/f1", "b/f3", "b/f4"}


def test_the_frames_do_not_depend_on_threads_or_segments(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arc, "_FRAME", 32 << 10)
    monkeypatch.setattr(arc, "_LARGE", 30 << 10)
    src = big_tree(tmp_path / "src", files=80)
    digests = set()
    for readers, segment, ahead in ((1, 4 << 20, 48 << 20), (4, 4096, 1), (7, 1000, 100_000)):
        monkeypatch.setattr(arc, "_READERS", readers)
        monkeypatch.setattr(arc, "_SEGMENT", segment)
        monkeypatch.setattr(arc, "_AHEAD_BYTES", ahead)
        digests.add(write_archive(src, tmp_path / f"{readers}" / "a.tar.zst", fmt="tar.zst",
                                  root_name="b"))
    assert len(digests) == 1


@pytest.mark.skipif(not (shutil.which("zstd") and shutil.which("tar")),
                    reason="needs the zstd and tar commands")
def test_zstd_and_gnu_tar_read_every_frame(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    src = big_tree(tmp_path / "src", files=60)
    out = written(src, tmp_path / "a.tar.zst", monkeypatch, 32 << 10)
    assert len(frames_of(out.read_bytes())) > 10
    subprocess.run(["zstd", "-q", "-t", str(out)], check=True)
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(out), "-C", str(dest)], check=True)
    assert tree_facts(dest / "b") == tree_facts(src)


def test_unpack_reads_every_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_tree(tmp_path / "src", variant=0)
    out = written(src, tmp_path / "a.tar.zst", monkeypatch, 16 << 10)
    assert len(frames_of(out.read_bytes())) > 3
    dest = tmp_path / "dest"
    dest.mkdir()
    top = unpack_mod.unpack(out, dest)
    assert tree_facts(top) == tree_facts(src)


# ------------------------------------------------------------------------ frame walking


def test_frames_are_walked_as_zstandard_splits_them(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_tree(tmp_path / "src", variant=0)
    out = written(src, tmp_path / "a.tar.zst", monkeypatch, 16 << 10)
    data = out.read_bytes()
    walked = unpack_mod._frames(data)
    assert walked is not None
    assert [data[o:o + n] for o, n, _ in walked] == split(data)
    assert [size for *_, size in walked] == [len(f) for f in frames_of(data)]
    parts = archive_parts(out, 3)
    assert parts is not None and 1 < len(parts) <= 3
    assert parts[0].start == 0 and parts[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert [p.last for p in parts] == [False] * (len(parts) - 1) + [True]


@pytest.mark.parametrize("damage", ["one-frame", "gzip", "truncated", "trailing-garbage",
                                    "reserved-bit", "bad-block-type", "empty", "not-zstd"])
def test_archives_that_are_not_cleanly_framed_are_read_whole(
        tmp_path: Path, damage: str) -> None:
    tar = tar_bytes([D("top"), *(F(f"top/f{i}", os.urandom(2000)) for i in range(8))])
    cuts = header_offsets(tar)
    data = framed(tar, cuts)
    if damage == "one-frame":
        data = framed(tar, [])
    elif damage == "gzip":
        data = gzip.compress(tar)
    elif damage == "truncated":
        data = data[:-3]
    elif damage == "trailing-garbage":
        data += b"garbage!"
    elif damage == "reserved-bit":
        data = data[:4] + bytes([data[4] | 0x08]) + data[5:]
    elif damage == "bad-block-type":
        d = data[4]
        single = d >> 5 & 1
        at = 5 + (not single) + (0, 1, 2, 4)[d & 3] + (single, 2, 4, 8)[d >> 6]
        data = data[:at] + bytes([data[at] | 0x06]) + data[at + 1:]  # block type 3
    elif damage == "empty":
        data = b""
    else:
        data = b"PK\x03\x04" + data
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(data)
    assert archive_parts(archive, 2) is None


def raw_frame(payload: bytes, *, stated: int, window: int = 0x50) -> bytes:
    """A zstd frame (4-byte content size, not single-segment, no checksum) that states
    the content size ``stated`` and holds ``payload`` in raw blocks, written by hand."""
    out = (0xFD2FB528).to_bytes(4, "little") + bytes([0x80, window]) + \
        stated.to_bytes(4, "little")
    pieces = [payload[i:i + (128 << 10)] for i in range(0, len(payload), 128 << 10)]
    for i, piece in enumerate(pieces):
        out += ((len(piece) << 3) | (i == len(pieces) - 1)).to_bytes(3, "little") + piece
    return out


def three_frames(middle: Callable[[bytes], bytes]) -> bytes:
    """A tar of four entries in three frames, the middle one (the third entry) made by
    ``middle``."""
    tar = tar_bytes([D("top"), F("top/a", b"hello\n" * 100),
                     F("top/mid", bytes(range(256)) * 1200), F("top/b", b"world\n" * 100)])
    offsets = header_offsets(tar)
    cctx = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True)
    return (cctx.compress(tar[:offsets[2]]) + middle(tar[offsets[2]:offsets[3]])
            + cctx.compress(tar[offsets[3]:]))


def test_a_frame_stating_no_content_is_still_decoded(tmp_path: Path,
                                                     threads: Executor) -> None:
    """python-zstandard's one-call decompress returns nothing, unread, for a frame that
    states a size of 0: such a frame goes to the stream decoder, which refuses it."""
    data = three_frames(lambda payload: raw_frame(payload, stated=0))
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(data)
    assert archive_parts(archive, 3) is not None
    assert in_parts(archive, threads, 3) is None
    assert isinstance(whole(archive), str)


def test_a_frame_asking_for_a_window_over_the_limit_is_read_whole(
        tmp_path: Path, threads: Executor) -> None:
    """The one-call decoder does not check the window the stream decoder refuses."""
    data = three_frames(lambda payload: raw_frame(payload, stated=len(payload),
                                                        window=20 << 3))  # 1 GiB
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(data)
    assert archive_parts(archive, 3) is None
    refused = whole(archive)
    assert isinstance(refused, str) and "too much memory" in refused


def test_frames_without_a_content_size_go_through_the_stream_decoder(
        tmp_path: Path, threads: Executor) -> None:
    cctx = zstandard.ZstdCompressor(write_checksum=True, write_content_size=False)
    data = three_frames(lambda payload: cctx.compress(payload))
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(data)
    assert agree(archive, threads, 3)


def test_a_name_that_disagrees_with_the_content_is_read_whole(tmp_path: Path) -> None:
    tar = tar_bytes([D("top"), *(F(f"top/f{i}", os.urandom(2000)) for i in range(4))])
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(framed(tar, header_offsets(tar)))
    assert archive_parts(archive, 2) is None
    assert archive_parts(archive.rename(tmp_path / "a.tar.zst"), 2) is not None


def test_skippable_frames_are_walked_over(tmp_path: Path, threads: Executor) -> None:
    tar = tar_bytes([D("top"), *(F(f"top/f{i}", os.urandom(2000)) for i in range(8))])
    cuts = header_offsets(tar)
    data = framed(tar[:cuts[4]], cuts[:4]) + b"\x50\x2a\x4d\x18" + (5).to_bytes(4, "little") + b"skip!" \
        + framed(tar[cuts[4]:], [c - cuts[4] for c in cuts[5:]])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(data)
    assert archive_parts(archive, 2) is not None
    assert agree(archive, threads)


# --------------------------------------------------------------------- reading in parts


def test_a_real_tree_read_in_parts_is_the_tree_read_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: Executor) -> None:
    src = make_tree(tmp_path / "src", variant=0)
    big_tree(src / "more", files=120)
    (src / "more" / "needle.txt").write_bytes(b"x /opt/host-python/lib y needle-x1\n")
    out = written(src, tmp_path / archive_name("b", "tar.zst"), monkeypatch, 16 << 10)
    for count in (2, 3, 8):
        assert agree(out, threads, count), count
    tree, kept = in_parts(out, threads)  # type: ignore[misc]
    assert kept == {"isolate-manifest.json":
                    hashlib.sha256(b'{"schema": "isolate.manifest/1"}\n').digest()}
    assert tree.files["more/needle.txt"].hits
    assert {"empty-dir", "python/lib/python3.12", "more/d3"} <= tree.dirs


def test_worker_processes_read_the_parts(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through real worker processes (from a fork server, as under xdist):
    parts, members, states and the digest of the entry skipped travel back pickled."""
    src = big_tree(tmp_path / "src", files=150)
    (src / "isolate-manifest.json").write_bytes(b'{"schema": "isolate.manifest/1"}\n')
    out = written(src, tmp_path / "a.tar.zst", monkeypatch, 16 << 10)
    parts = archive_parts(out, 2)
    assert parts is not None
    pool = process_pool(2, method="forkserver", preload=["isolate.verify.scan"])
    try:
        with PartScan(Path("/r"), out, parts, NEEDLES, pool, skip=["isolate-manifest.json"],
                      max_total_bytes=LIMITS["max_total_bytes"]) as scan:
            got = scan.result()
    finally:
        pool.shutdown(wait=True)  # (once the scan gave a tree, the pool is the caller's)
    assert got is not None, scan.why
    full = whole(out)
    assert not isinstance(full, str), full
    tree, kept = full
    assert got == (tree, {p: hashlib.sha256(d).digest() for p, d in kept.items()})
    assert kept == {"isolate-manifest.json": b'{"schema": "isolate.manifest/1"}\n'}


def hostile_framed(tmp_path: Path, case_id: str, outside: Path
                   ) -> tuple[Path, int, dict[str, int]]:
    """The hostile case ``case_id`` (its absolute paths below ``outside``) as an archive
    of one frame per entry in ``tmp_path``, how many frames, and the case's limits."""
    case = next(c for c in hostile_cases(outside) if c.id == case_id)
    tar = tar_bytes(case.members, case.tar_format)
    if case.patch:
        tar = tar.replace(*case.patch)
    try:
        cuts = header_offsets(tar)
    except tarfile.TarError:  # a header tarfile cannot read: cut into blocks instead
        cuts = list(range(512, len(tar), 512))
    archive = tmp_path / "hostile.tar.zst"
    archive.write_bytes(framed(tar, cuts))
    return archive, len(cuts) + 1, {**LIMITS, **case.limits}


@pytest.mark.parametrize("case_id", HOSTILE_IDS)
def test_hostile_archives_cut_at_every_entry_are_never_accepted_in_parts(
        tmp_path: Path, case_id: str, threads: Executor) -> None:
    archive, frames, limits = hostile_framed(tmp_path, case_id, tmp_path)
    assert isinstance(whole(archive, limits), str)  # refused whole...
    assert in_parts(archive, threads, frames, limits) is None  # ...never in parts


CLASHES = {  # each part is sound alone; together they are refused
    "same-file-twice": ([D("top"), F("top/a")], [F("top/a")]),
    "same-dir-twice": ([D("top"), D("top/d")], [D("top/d")]),
    "below-a-file": ([D("top"), F("top/a")], [F("top/a/b")]),
    "below-a-symlink": ([D("top"), L("top/l", ".")], [F("top/l/x")]),
    "file-over-implied-dir": ([D("top"), F("top/d/x")], [F("top/d")]),
    "symlink-over-implied-dir": ([D("top"), F("top/d/x")], [L("top/d", "x")]),
    "two-tops": ([D("top"), F("top/a")], [D("other"), F("other/b")]),
    "chain-resolves-outside": ([D("top"), D("top/d"), D("top/d/e"), L("top/d/e/s", "../..")],
                               [L("top/d/e/x", "s/../y")]),
    "hard-link-later": ([D("top"), F("top/a")], [member("top/h", tarfile.LNKTYPE,
                                                        linkname="top/a")]),
    "over-the-total": ([D("top"), F("top/a", b"x" * (5 << 20))],
                       [F("top/b", b"y" * (4 << 20))]),
}


@pytest.mark.parametrize("clash", list(CLASHES))
def test_clashes_across_parts_are_left_to_the_whole_reading(
        tmp_path: Path, clash: str, threads: Executor) -> None:
    first, second = CLASHES[clash]
    tar = tar_bytes([*first, *second])
    cut = header_offsets(tar)[len(first)]
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, [cut]))
    assert archive_parts(archive, 2) is not None
    assert in_parts(archive, threads, count=2) is None
    full = whole(archive)
    if clash in ("hard-link-later",):
        assert isinstance(full, str) and "hard link" in full
    else:
        assert isinstance(full, str), full


def test_sound_neighbours_across_parts_are_accepted(tmp_path: Path,
                                                   threads: Executor) -> None:
    tar = tar_bytes([D("top"), D("top/d"), F("top/d/a"), L("top/l", "d/a"),
                     F("top/d/b"), D("top/d/e"), F("top/d/e/c"), L("top/d/e/up", "../a")])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, header_offsets(tar)))
    assert agree(archive, threads, count=8)


@pytest.mark.parametrize("where", ["inside-data", "inside-header", "after-long-name"])
def test_a_cut_inside_an_entry_is_read_whole(tmp_path: Path, where: str,
                                             threads: Executor) -> None:
    tar = tar_bytes([D("top"), F("top/a", os.urandom(3000)), F("top/" + "n" * 120, b"x"),
                     F("top/b", b"y" * 600)])
    offsets = header_offsets(tar)
    cut = {"inside-data": offsets[1] + 512 + 1000, "inside-header": offsets[3] + 100,
           "after-long-name": offsets[2] + 1024}[where]
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, [cut]))
    assert archive_parts(archive, 2) is not None
    assert in_parts(archive, threads, count=2) is None
    assert not isinstance(whole(archive), str)  # the whole reading accepts it


def test_an_end_of_archive_in_an_early_part_is_read_whole(tmp_path: Path,
                                                        threads: Executor) -> None:
    """tar ends at the first zero block: what follows is ignored by a whole reading, so
    a part after it must not add entries."""
    head = tar_bytes([D("top"), F("top/a")])  # ends with zero blocks
    tail = tar_bytes([F("top/b")])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(head + tail, [len(head)]))
    assert in_parts(archive, threads, count=2) is None
    full = whole(archive)
    assert not isinstance(full, str) and set(full[0].files) == {"a"}


def test_a_global_pax_header_is_read_whole(tmp_path: Path, threads: Executor) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "global"}) as tf:
        for name in ("top", "top/a", "top/b"):
            ti = tarfile.TarInfo(name)
            if name == "top":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = 3
                tf.addfile(ti, io.BytesIO(b"abc"))
    tar = buf.getvalue()
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, header_offsets(tar)[1:]))
    assert in_parts(archive, threads, count=3) is None
    assert not isinstance(whole(archive), str)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tar=random_members(), data=st.data())
def test_fuzzed_archives_cut_anywhere_agree(tar: bytes, data: st.DataObject) -> None:
    """Random, often hostile, members, cut into frames at entries or anywhere."""
    try:
        offsets = header_offsets(tar)
    except tarfile.TarError:
        offsets = []
    anywhere = st.integers(1, max(1, len(tar) - 1))
    cuts = data.draw(st.lists(st.one_of(st.sampled_from(offsets) if offsets else anywhere,
                                        anywhere), max_size=6))
    with tempfile.TemporaryDirectory() as d, \
            ThreadPoolExecutor(max_workers=3) as pool:
        archive = Path(d) / "fuzz.tar.zst"
        archive.write_bytes(framed(tar, cuts))
        agree(archive, pool, count=data.draw(st.integers(2, 4)))


# ----------------------------------------------------------------------------- verify


_TWICE = """\
import sys, threading
from pathlib import Path
from isolate.proc import Runner, forks
from isolate.verify import verify
from isolate.verify.probe_cache import ProbeCache
for _ in range(2):
    report = verify(Path(sys.argv[1]), host=None, runner=Runner(), cache=ProbeCache())
    scan = next(c for c in report.checks if c.name == "scan")
    print(threading.active_count(), forks(), "in 2 parts" in scan.detail)
"""


_UNPACK_SPY = """\
import sys
from pathlib import Path
from isolate.bundle import unpack as u
seen = []
real = u.unpack_in_parts
def spy(*args, **kwargs):
    seen.append(real(*args, **kwargs))
    return seen[-1]
u.unpack_in_parts = spy
if sys.argv[3] == "whole":
    u.PARTS_MIN_BYTES = 1 << 62
u.unpack(Path(sys.argv[1]), Path(sys.argv[2]))
print(len(seen), *(s is not None for s in seen))
"""


@pytest.mark.slow
def test_verify_reads_a_framed_bundle_archive_in_parts(built: Path, tmp_path: Path) -> None:
    """``isolate verify`` in a fresh process (where it can fork its workers) on a copy
    of the session's bundle, made larger than ``PARTS_MIN_BYTES`` by a file the
    manifest does not list: read in parts, the findings are those of the directory."""
    src = bundle_dir(built)

    def verify(path: Path) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "isolate", "verify", "--json", str(path)],
                              capture_output=True, text=True, check=False)
        assert done.returncode in (0, 1), done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def findings(report: dict[str, Any]) -> set[tuple[str, str, str]]:
        return {(f["severity"], f["check"], f["path"] or "") for f in report["findings"]}

    copy = tmp_path / src.name
    shutil.copytree(src, copy, symlinks=True)
    shutil.copy(f"{src}.{MANIFEST_NAME}.sha256", tmp_path)  # the manifest's hash
    (copy / "padding.bin").write_bytes(os.urandom(9 << 20))
    archive = tmp_path / "a" / f"{copy.name}.tar.zst"
    write_archive(copy, archive, fmt="tar.zst", root_name=copy.name)
    assert archive.stat().st_size >= 8 << 20
    assert len(archive_parts(archive, 2) or []) == 2
    verify(archive)  # its probes are stored
    report = verify(archive)
    scan = next(c for c in report["checks"] if c["name"] == "scan")
    assert "in 2 parts by as many processes" in scan["detail"], scan
    found = findings(report)
    assert ("error", "integrity", "padding.bin") in found
    assert found == findings(verify(copy))

    # ``isolate unpack`` in a fresh process writes it in parts, the tree it writes whole
    for how in ("parts", "whole"):
        done = subprocess.run([sys.executable, "-c", _UNPACK_SPY, str(archive),
                               str(tmp_path / how), how], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == (["1", "True"] if how == "parts" else ["0"]), done.stdout
    assert tree_facts(tmp_path / "parts" / copy.name) == tree_facts(copy)
    assert tree_facts(tmp_path / "parts") == tree_facts(tmp_path / "whole")
    assert times(tmp_path / "parts") == times(tmp_path / "whole")

    # A wrong .sha256 (its hash now comes from a part worker): the mismatch is said as
    # unpack says it, and nothing else is.
    sidecar = Path(f"{archive}.sha256")
    right = sidecar.read_text()
    sidecar.write_text("0" * 64 + f"  {archive.name}\n")
    done = subprocess.run([sys.executable, "-m", "isolate", "verify", str(archive)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: {archive} has sha256 {right.split()[0]} but {sidecar.name} says " \
           f"{'0' * 64}" in done.stderr, done.stderr
    assert not done.stdout
    sidecar.write_text(right)

    # verify() twice in one process: each leaves no thread behind, so that the next
    # can fork its workers (else it would read the archive whole).
    done = subprocess.run([sys.executable, "-c", _TWICE, str(archive)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True", "True"] * 2, done.stdout

    # A manifest whose first lines name other needles than its JSON does (a key twice:
    # JSON keeps the last): the parts read on the first are not used, it is read whole.
    manifest = copy / MANIFEST_NAME
    manifest.write_bytes(manifest.read_bytes().replace(
        b'{\n', b'{\n "build_marker": "/elsewhere",\n "source_prefixes": [],\n', 1))
    archive.unlink()
    write_archive(copy, archive, fmt="tar.zst", root_name=copy.name)
    verify(archive)  # its probes are stored
    report = verify(archive)
    scan = next(c for c in report["checks"] if c["name"] == "scan")
    assert "whole (the manifest's needles differ from those it was read on)" in \
        scan["detail"], scan
    # (the directory's recorded manifest hash no longer matches; the archive has none)
    assert findings(report) == findings(verify(copy)) - {("error", "manifest", MANIFEST_NAME)}


def test_a_stream_too_long_only_in_sum_is_left_to_the_whole_reading(
        tmp_path: Path, threads: Executor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers count towards the decompressed length the whole reading allows; two parts
    under it each may be over it together."""
    monkeypatch.setattr(unpack_mod, "_HEADER_ALLOWANCE", 10_000)
    tar = tar_bytes([D("top"), *(F(f"top/e{i:02d}", b"") for i in range(30))])
    assert len(tar) > 14_096 > len(tar) // 2 + 1024
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, [header_offsets(tar)[15]]))
    limits = {"max_entry_bytes": 4096, "max_total_bytes": 4096}
    assert in_parts(archive, threads, 2, limits) is None
    refused = whole(archive, limits)
    assert isinstance(refused, str) and "decompresses to more than" in refused


# ------------------------------------------------------------------ unpacking in parts
# ``unpack`` writes an archive of frames in parts, one per worker process
# (``unpack_in_parts``). The same property: it never writes what the whole unpacking
# refuses (and nothing outside its directory meanwhile), and what it writes is the tree
# the whole unpacking writes: paths, kinds, modes, bytes, symlinks and times.


def times(root: Path) -> dict[str, int]:
    """Every entry's modification time below ``root`` (symlinks' own)."""
    return {str(p.relative_to(root)): p.lstat().st_mtime_ns for p in sorted(root.rglob("*"))}


def written_in_parts(archive: Path, pool: Executor, count: int, work: Path,
                     limits: dict[str, int] | None = None) -> str | None:
    """What ``unpack_in_parts`` gives for ``archive`` cut in ``count`` parts: the
    top-level directory it wrote below ``work``, or None (unpack it whole)."""
    work.mkdir(parents=True)
    parts = archive_parts(archive, count)
    if parts is None:
        return None
    limits = limits or LIMITS
    return unpack_in_parts(archive, parts, work, pool, max_entry_bytes=limits["max_entry_bytes"],
                           max_total_bytes=limits["max_total_bytes"])


def unpacked_whole(archive: Path, dest: Path, limits: dict[str, int] | None = None
                   ) -> Path | str:
    """What ``unpack`` gives in this process (small archives: one stream): the tree,
    or the refusal's words."""
    try:
        return unpack_mod.unpack(archive, dest, **(limits or LIMITS))
    except InputError as exc:
        return f"{exc.message} ({exc.hint})"


def test_a_real_tree_written_in_parts_is_the_tree_unpacked_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: Executor) -> None:
    src = make_tree(tmp_path / "src", variant=0)
    big_tree(src / "more", files=120)
    out = written(src, tmp_path / archive_name("b", "tar.zst"), monkeypatch, 16 << 10)
    full = unpacked_whole(out, tmp_path / "whole")
    assert isinstance(full, Path), full
    for count in (2, 3, 8):
        work = tmp_path / f"parts-{count}"
        assert written_in_parts(out, threads, count, work) == "b", count
        assert tree_facts(work / "b") == tree_facts(full), count
        assert times(work / "b") == times(full), count


def test_worker_processes_write_the_parts(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through real worker processes (from a fork server, as ``unpack`` starts
    them where this process runs other threads)."""
    src = make_tree(tmp_path / "src", variant=1)
    big_tree(src / "more", files=150)
    out = written(src, tmp_path / "a.tar.zst", monkeypatch, 16 << 10)
    pool = process_pool(2, method="forkserver", preload=["isolate.bundle.unpack"])
    try:
        assert written_in_parts(out, pool, 2, tmp_path / "work") == "b"
    finally:
        pool.shutdown(wait=True)
    full = unpacked_whole(out, tmp_path / "whole")
    assert isinstance(full, Path), full
    assert tree_facts(tmp_path / "work" / "b") == tree_facts(full)
    assert times(tmp_path / "work" / "b") == times(full)


def test_unpack_writes_a_large_archive_in_parts(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``unpack`` itself, over the size it takes parts from (made small here), from a
    fork server: the archive's tree, with what the parts wrote gone from ``dest``."""
    src = make_tree(tmp_path / "src", variant=0)
    big_tree(src / "more", files=150)
    out = written(src, tmp_path / "a.tar.zst", monkeypatch, 16 << 10)
    monkeypatch.setattr(unpack_mod, "PARTS_MIN_BYTES", 0)
    monkeypatch.setattr(unpack_mod, "_SERVED_MIN_BYTES", 0)
    seen: list[str | None] = []
    real = unpack_mod.unpack_in_parts

    def spy(*args: Any, **kwargs: Any) -> str | None:
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(unpack_mod, "unpack_in_parts", spy)
    top = unpack_mod.unpack(out, tmp_path / "dest")
    assert seen == ["b"]
    assert sorted(os.listdir(tmp_path / "dest")) == ["b"]  # no temporary directory left
    monkeypatch.setattr(unpack_mod, "PARTS_MIN_BYTES", 1 << 40)
    full = unpack_mod.unpack(out, tmp_path / "whole")
    assert tree_facts(top) == tree_facts(full)
    assert times(top) == times(full)


@pytest.mark.parametrize("case_id", HOSTILE_IDS)
def test_hostile_archives_cut_at_every_entry_are_never_written_in_parts(
        tmp_path: Path, case_id: str, threads: Executor) -> None:
    """Refused whole, never written in parts; and while the parts were written, nothing
    landed outside their directory."""
    box = tmp_path / "box"
    box.mkdir()
    archive, frames, limits = hostile_framed(tmp_path, case_id, box / "outside")
    assert isinstance(unpacked_whole(archive, tmp_path / "whole", limits), str)
    work = box / "work"
    assert written_in_parts(archive, threads, frames, work, limits) is None
    assert sorted(os.listdir(box)) == ["work"]
    assert not [p for p in work.rglob("*") if p.is_symlink()]  # none made: not joined


@pytest.mark.parametrize("clash", list(CLASHES))
def test_clashes_across_parts_are_not_written_in_parts(
        tmp_path: Path, clash: str, threads: Executor) -> None:
    first, second = CLASHES[clash]
    tar = tar_bytes([*first, *second])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, [header_offsets(tar)[len(first)]]))
    box = tmp_path / "box"
    assert written_in_parts(archive, threads, 2, box / "work") is None
    assert sorted(os.listdir(box)) == ["work"]
    full = unpacked_whole(archive, tmp_path / "whole")
    if clash == "hard-link-later":  # unpack writes it as a copy: a part cannot (its
        assert isinstance(full, Path), full  # source may be another part's)
        assert (full / "h").read_bytes() == (full / "a").read_bytes()
    else:
        assert isinstance(full, str), full


def test_sound_neighbours_across_parts_are_written(tmp_path: Path, threads: Executor) -> None:
    """Symlinks into other parts, and directories several parts fill, in 8 parts."""
    tar = tar_bytes([D("top"), D("top/d"), F("top/d/a"), L("top/l", "d/a"),
                     F("top/d/b"), D("top/d/e"), F("top/d/e/c"), L("top/d/e/up", "../a"),
                     F("top/d/e/f")])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, header_offsets(tar)))
    work = tmp_path / "work"
    assert written_in_parts(archive, threads, 8, work) == "top"
    full = unpacked_whole(archive, tmp_path / "whole")
    assert isinstance(full, Path), full
    assert tree_facts(work / "top") == tree_facts(full)
    assert times(work / "top") == times(full)
    assert (work / "top" / "d" / "e" / "up").read_bytes() == b"x\n"


def test_parts_whose_frames_state_no_size_are_not_written_in_parts(
        tmp_path: Path, threads: Executor) -> None:
    """Without the sizes, what the parts would write cannot be bounded beforehand."""
    tar = tar_bytes([D("top"), F("top/a"), F("top/b")])
    cut = header_offsets(tar)[2]
    cctx = zstandard.ZstdCompressor(write_checksum=True, write_content_size=False)
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(cctx.compress(tar[:cut]) + cctx.compress(tar[cut:]))
    assert written_in_parts(archive, threads, 2, tmp_path / "work") is None
    assert isinstance(unpacked_whole(archive, tmp_path / "whole"), Path)


def test_a_part_that_fails_to_write_leaves_it_to_the_whole_unpacking(
        tmp_path: Path, threads: Executor) -> None:
    """A file another process made first (or any error writing): not written in parts,
    and that file is left as it was."""
    tar = tar_bytes([D("top"), D("top/d"), F("top/d/a"), F("top/d/b")])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, header_offsets(tar)))
    work = tmp_path / "work"
    (work / "top" / "d").mkdir(parents=True)
    (work / "top" / "d" / "b").write_bytes(b"someone else's")
    parts = archive_parts(archive, 4)
    assert parts is not None
    assert unpack_in_parts(archive, parts, work, threads, max_entry_bytes=1 << 20,
                           max_total_bytes=8 << 20) is None
    assert (work / "top" / "d" / "b").read_bytes() == b"someone else's"


def lying(frame: bytes, stated: int) -> bytes:
    """A zstd frame whose header states ``stated`` bytes of content, whatever it holds."""
    flags = frame[4]
    single = flags >> 5 & 1
    width = (single, 2, 4, 8)[flags >> 6]
    at = 5 + (not single) + (0, 1, 2, 4)[flags & 3]
    value = stated - 256 if width == 2 else stated
    return frame[:at] + value.to_bytes(width, "little") + frame[at + width:]


def test_frames_that_hold_more_than_they_state_stop_their_part_there(
        tmp_path: Path, threads: Executor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame read as a stream (a large one) says it held too much only at its end:
    a part stops at what its frames state, not at the limit of the whole archive, so
    that all parts together write no more than the frames state."""
    monkeypatch.setattr(unpack_mod, "_WHOLE_FRAME_MAX", 1024)  # every frame as a stream
    tar = tar_bytes([D("top"), *(F(f"top/f{i}", bytes(60_000)) for i in range(6))])
    cuts = header_offsets(tar)[1::2]
    edges = [0, *cuts, len(tar)]
    cctx = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True)
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(b"".join(lying(cctx.compress(tar[a:b]), 5000)
                                 for a, b in itertools.pairwise(edges)))
    stated = 5000 * (len(edges) - 1)
    limits = {"max_entry_bytes": 1 << 20, "max_total_bytes": 1 << 20}
    work = tmp_path / "work"
    assert written_in_parts(archive, threads, len(edges) - 1, work, limits) is None
    assert sum(p.stat().st_size for p in work.rglob("*") if p.is_file()) <= stated
    assert isinstance(unpacked_whole(archive, tmp_path / "whole", limits), str)


def test_a_tree_deeper_than_the_recursion_limit_is_unpacked_after_its_parts_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hard link sends it to the whole unpacking; what the parts wrote (1,100
    directories deep: ``shutil.rmtree`` recurses once per level) is removed."""
    monkeypatch.setattr(unpack_mod, "PARTS_MIN_BYTES", 0)
    monkeypatch.setattr(unpack_mod, "_SERVED_MIN_BYTES", 0)
    deep = "top/" + "/".join(["a"] * 1100)
    tar = tar_bytes([D("top"), F("top/src", b"hello\n"), F(f"{deep}/f", b"deep\n"),
                     member("top/h", tarfile.LNKTYPE, linkname="top/src")])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, header_offsets(tar)))
    try:
        top = unpack_mod.unpack(archive, tmp_path / "dest")
        assert (top / "h").read_bytes() == b"hello\n"
        assert (top / deep.removeprefix("top/") / "f").read_bytes() == b"deep\n"
        assert os.listdir(tmp_path / "dest") == ["top"]  # both temporary directories gone
    finally:  # (pytest removes its temporary directories with ``shutil.rmtree``)
        remove_tree(tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_pool_that_broke_leaves_it_to_the_whole_unpacking(tmp_path: Path) -> None:
    tar = tar_bytes([D("top"), F("top/a"), F("top/b")])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, header_offsets(tar)))
    pool = process_pool(2, method="forkserver", preload=["isolate.bundle.unpack"])
    try:
        for process in list(pool._processes.values()):
            process.kill()
            process.join()
        assert written_in_parts(archive, pool, 2, tmp_path / "work") is None
    finally:
        pool.shutdown(wait=True)


def test_relative_paths_reach_a_fork_server_whole(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers of a fork server started elsewhere write where the caller means."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    pool = process_pool(2, method="forkserver", preload=["isolate.bundle.unpack"])
    try:
        tar = tar_bytes([D("top"), F("top/a"), L("top/l", "a"), F("top/b")])
        here = tmp_path / "here"
        here.mkdir()
        (here / "a.tar.zst").write_bytes(framed(tar, header_offsets(tar)))
        monkeypatch.chdir(here)
        assert written_in_parts(Path("a.tar.zst"), pool, 3, Path("work")) == "top"
    finally:
        pool.shutdown(wait=True)
    assert (here / "work" / "top" / "l").read_bytes() == b"x\n"
    assert os.listdir(elsewhere) == []


def test_an_existing_top_directory_is_refused_by_the_parts_at_once(
        tmp_path: Path, threads: Executor) -> None:
    tar = tar_bytes([D("top"), F("top/a"), F("top/b", bytes(100_000))])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, header_offsets(tar)))
    dest = tmp_path / "dest"
    (dest / "top").mkdir(parents=True)
    parts = archive_parts(archive, 3)
    assert parts is not None
    work = tmp_path / "work"
    work.mkdir()
    assert unpack_in_parts(archive, parts, work, threads, dest=dest, max_entry_bytes=1 << 20,
                           max_total_bytes=8 << 20) is None
    assert not (work / "top" / "a").exists()  # the first part refused at its first entry
    refused = unpacked_whole(archive, dest)
    assert isinstance(refused, str) and "already exists" in refused


def test_frames_stating_more_than_the_total_limit_are_not_written_in_parts(
        tmp_path: Path, threads: Executor) -> None:
    """Empty files: their headers make the tar stream longer than the limit of the
    files' total, which the whole unpacking accepts; the parts write nothing."""
    tar = tar_bytes([D("top"), *(F(f"top/e{i:02d}", b"") for i in range(30))])
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(framed(tar, [header_offsets(tar)[15]]))
    limits = {"max_entry_bytes": 4096, "max_total_bytes": 4096}
    work = tmp_path / "work"
    assert written_in_parts(archive, threads, 2, work, limits) is None
    assert os.listdir(work) == []
    assert isinstance(unpacked_whole(archive, tmp_path / "whole", limits), Path)
