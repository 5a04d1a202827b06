"""isolate.verify.scan: worker processes read a tree as threads do; what they do not
return is read again in threads; a file tampered with is reported whoever read it.

A synthetic tree (``make_tree``) holds every kind of entry the scan tells apart, more
files than ``MIN_FILES_FOR_PROCESSES``, a real ELF file and a file larger than the read
buffer with a needle across the end of its first piece. The tampering test works on a
copy of the session's real bundle (conftest ``built``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import bundle_dir

from isolate.bundle import elf
from isolate.bundle.elf_cache import Counts, ElfCache
from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.proc import FORK, FORKSERVER
from isolate.verify import checks, scan
from isolate.verify.scan import (
    CHUNK,
    MIN_FILES_FOR_PROCESSES,
    Needles,
    Row,
    Tree,
    _Buffer,
    _scan_file,
    scan_data,
    start_scan,
)

NEEDLE = "/build-dir/.isolate-build-x1"
PREFIX = "/opt/host-python"
NEEDLES = [NEEDLE, PREFIX]
STRADDLE = CHUNK - 10  # where the needle starts in the large file: across the first piece


def make_tree(root: Path) -> Path:
    """A tree with every kind of entry; returns its ELF file."""
    for d in range(12):
        sub = root / "lib" / f"pkg{d}"
        sub.mkdir(parents=True)
        for i in range(MIN_FILES_FOR_PROCESSES // 10):
            (sub / f"m{i}.py").write_text(f"# module {d}.{i}\n" + "x = 1\n" * (i % 50))
    (root / "lib" / "pkg0" / "m3.py").write_text(f"HOME = '{PREFIX}/lib/python3'\n")
    (root / "bin").mkdir()
    script = root / "bin" / "tool"
    script.write_text(f"#!{NEEDLE}/bin/python\nprint('hi')\n")
    script.chmod(0o755)
    (root / "bin" / "plain-script").write_text("#!/bin/sh\necho hi\n")
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("lib/pkg0/m0.py")
    (root / "dangling").symlink_to("nowhere")
    os.mkfifo(root / "fifo")
    big = bytearray(CHUNK + 4096)
    big[STRADDLE:STRADDLE + len(NEEDLE)] = NEEDLE.encode()
    big[100:100 + len(PREFIX)] = PREFIX.encode()
    (root / "big.bin").write_bytes(bytes(big))
    source = Path(sys.executable).resolve()
    if source.read_bytes()[:4] != elf.ELF_MAGIC:
        pytest.skip("this interpreter is not an ELF file")
    binary = root / "bin" / "python"
    shutil.copyfile(source, binary)
    return binary


@pytest.fixture(scope="module")
def tree_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    make_tree(root)
    return root


def scanned(root: Path, cache: Path, *, processes: bool, method: str | None = None
            ) -> tuple[Tree, Counts, int]:
    """The tree, how its ELF facts were found, and how many work items were read in
    threads."""
    with ElfCache(cache) as facts, start_scan(root, NEEDLES, elf_cache=facts,
                                               processes=processes, method=method) as running:
        tree = running.result()
        return tree, facts.counts, running.items_in_threads


@pytest.fixture(scope="module")
def in_threads(tree_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Tree:
    tree, _counts, _items = scanned(tree_root, tmp_path_factory.mktemp("elf"), processes=False)
    return tree


def test_the_threads_see_every_kind_of_entry(in_threads: Tree) -> None:
    files = in_threads.files
    assert len(files) > MIN_FILES_FOR_PROCESSES
    assert files["link"].kind == "symlink" and files["dangling"].target == "nowhere"
    assert files["fifo"].kind == "special" and files["fifo"].special == "FIFO"
    assert files["empty"].size == 0 and files["empty"].sha256 == hashlib.sha256().hexdigest()
    assert files["bin/python"].is_elf and files["bin/python"].elf is not None
    assert files["bin/tool"].shebang_end > 0 and files["bin/plain-script"].shebang_end > 0
    assert [h.needle for h in files["bin/tool"].hits] == [NEEDLE]
    assert [h.needle for h in files["lib/pkg0/m3.py"].hits] == [PREFIX]
    big = {h.needle: h for h in files["big.bin"].hits}
    assert big[NEEDLE].offsets == (STRADDLE,) and big[PREFIX].offsets == (100,)
    assert files["big.bin"].sha256 == hashlib.sha256(
        (in_threads.root / "big.bin").read_bytes()).hexdigest()


@pytest.mark.parametrize("method", [FORK, FORKSERVER])
def test_worker_processes_read_the_tree_as_threads_do(tree_root: Path, in_threads: Tree,
                                                      tmp_path: Path, method: str) -> None:
    tree, counts, items = scanned(tree_root, tmp_path / "elf", processes=True, method=method)
    assert items == 0  # every work item came back from a process
    assert tree == in_threads
    assert (counts.parsed, counts.cached) == (1, 0)  # counted in the worker, added here
    again, counts, _items = scanned(tree_root, tmp_path / "elf", processes=True,
                                    method=method)
    assert again == in_threads and (counts.parsed, counts.cached) == (0, 1)


def _dying_batch(root: str, batch: Sequence[tuple[str, bool]], needles: Sequence[str],
                 elf_dir: str | None) -> tuple[list[Row], Counts | None]:
    """A work item that kills its process when it holds ``big.bin``."""
    if any(rel == "big.bin" for rel, _link in batch):
        os._exit(3)
    return _real_batch(root, batch, needles, elf_dir)


_real_batch = scan._scan_batch


def test_what_a_dead_worker_did_not_return_is_read_in_threads(
        tree_root: Path, in_threads: Tree, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "_scan_batch", _dying_batch)
    tree, counts, items = scanned(tree_root, tmp_path / "elf", processes=True, method=FORK)
    assert items > 0
    assert tree == in_threads
    assert counts.parsed + counts.cached == 1  # the ELF file counted once, wherever read


def test_a_pool_that_cannot_start_leaves_the_work_to_threads(
        tree_root: Path, in_threads: Tree, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pool(*args: object, **kwargs: object) -> None:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(scan, "process_pool", no_pool)
    tree, _counts, items = scanned(tree_root, tmp_path / "elf", processes=True)
    assert items > 0 and tree == in_threads


@pytest.mark.parametrize("size", [7, 16, 64, 100, 4096])
def test_a_file_read_in_pieces_is_described_as_one_read_whole(tmp_path: Path,
                                                             size: int) -> None:
    """The needles (one of them a prefix of the other) at the start, across pieces and
    at the end, their first occurrence's sample and their offsets; a buffer of 7 or 16
    bytes is smaller than the longest needle, one of 4096 holds the file."""
    data = (b"#!/opt/host-python/bin/python3 -I\n" + b"ab/opt/host-pythonX " * 37
            + NEEDLE.encode() + b"\0" * 33 + b"/opt/host-python")
    path = tmp_path / "f"
    path.write_bytes(data)
    needles = Needles(["/opt/host-python", "/opt/host-pythonX", NEEDLE])
    whole = scan_data("f", data, 0o644, needles, path)
    row = _scan_file("f", os.fspath(path), needles, _Buffer(size), None)
    assert row == whole
    assert {h.needle: h.count for h in whole.hits} == {
        "/opt/host-python": 39, "/opt/host-pythonX": 37, NEEDLE: 1}


def test_what_a_file_before_left_in_the_buffer_is_not_read_as_the_next(tmp_path: Path) -> None:
    """An empty file after an ELF file is no ELF file; one byte after a script no script."""
    source = Path(sys.executable).resolve()
    (tmp_path / "elf").write_bytes(source.read_bytes()[:4096])
    (tmp_path / "script").write_bytes(b"#!/bin/sh\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "hash").write_bytes(b"#")
    for name in ("empty", "hash"):
        (tmp_path / name).chmod(0o644)
    buffer = _Buffer()
    needles = Needles(NEEDLES)
    rows = {name: _scan_file(name, os.fspath(tmp_path / name), needles, buffer, None)
            for name in ("elf", "empty", "script", "hash")}
    assert rows["empty"] == ("empty", 0o644, 0, hashlib.sha256().hexdigest(), -1)
    assert rows["hash"] == ("hash", 0o644, 1, hashlib.sha256(b"#").hexdigest(), -1)
    assert rows["script"][-1] == len(b"#!/bin/sh")


def test_a_tampered_file_read_by_a_worker_process_is_reported(built: Path,
                                                              tmp_path: Path) -> None:
    original = bundle_dir(built)
    copy = tmp_path / original.name
    shutil.copytree(original, copy, symlinks=True)
    manifest = Manifest.loads((copy / MANIFEST_NAME).read_bytes())
    victim = f"{manifest.interpreter.stdlib}/this.py"
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / victim).write_bytes(bytes(data))
    needles = [n.text for n in checks.needles_of(manifest, "unused")]
    found = {}
    for processes in (True, False):
        with start_scan(copy, needles, skip=[MANIFEST_NAME], processes=processes) as running:
            tree = running.result()
            assert running.in_processes == processes
            assert (running.items_in_threads == 0) == processes
        found[processes] = checks.integrity(tree, manifest)
    assert found[True] == found[False]
    assert [(f.check, f.path) for f in found[True]] == [("integrity", victim)]
    assert "sha256" in found[True][0].message


_VERIFY_CHILD = """
import sys
from isolate.proc import forks
from isolate.verify import scan
seen = []
real = scan.process_pool
def spy(*args, **kwargs):
    seen.append(forks())
    return real(*args, **kwargs)
scan.process_pool = spy
from isolate.cli import main
code = main(["verify", sys.argv[1], "--no-cache", "-q"])
print("pools", seen, "code", code)
"""


def test_verify_forks_its_scan_before_starting_the_probes(built: Path) -> None:
    """The probes run in threads: the scan's processes start first, forked. Run in a fresh
    interpreter, which has one thread (this test process may run others: pytest-xdist's)."""
    from isolate.proc import Runner

    done = Runner().run([sys.executable, "-c", _VERIFY_CHILD, str(bundle_dir(built))],
                        check=False, timeout=600)
    assert done.ok, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "pools [True] code 0", done.stdout


@pytest.mark.parametrize("manifest", [
    # JSON that names a build marker, but no manifest (the schema is wrong): the scan
    # started on the JSON's needles is read again on the default marker's
    '{"schema": "other", "build_marker": "/custom-marker", "source_prefixes": ["/opt/p"]}',
    "not JSON",  # nothing to guess from: the default marker from the start
])
def test_an_unreadable_manifest_is_searched_for_the_default_marker_only(
        tmp_path: Path, manifest: str) -> None:
    from isolate.proc import Runner
    from isolate.verify import verify
    from isolate.verify.report import RELOCATION

    root = tmp_path / "bundle"
    (root / "lib").mkdir(parents=True)
    (root / MANIFEST_NAME).write_text(manifest)
    (root / "lib" / "custom.txt").write_text("/custom-marker/lib and /opt/p/lib\n")
    (root / "lib" / "default.txt").write_text("/tmp/x.isolate-build-1/lib\n")
    for i in range(20):
        (root / "lib" / f"m{i}.py").write_text("x = 1\n")
    report = verify(root, host=None, runner=Runner(), cache=None, elf_cache=None)
    assert {f.path for f in report.findings if f.check == RELOCATION} == {"lib/default.txt"}
    assert any(f.check == "manifest" and "cannot be read" in f.message
               for f in report.findings)


def test_a_row_becomes_the_file_the_dataclass_makes() -> None:
    """``_file_of`` sets a ``ScannedFile``'s slots itself (faster): it makes the object
    the dataclass makes, field for field, hash and all."""
    for shebang_end in (-1, 17):
        made = scan._file_of(("a/b.py", 0o755, 123, "ab" * 32, shebang_end))
        expected = scan.ScannedFile(path="a/b.py", kind="file", mode=0o755, size=123,
                                    sha256="ab" * 32, shebang_end=shebang_end)
        assert made == expected and hash(made) == hash(expected)
        assert repr(made) == repr(expected)
    whole = scan.ScannedFile(path="x", kind="file", mode=0o644, size=1, sha256="0" * 64)
    assert scan._file_of(whole) is whole


def _written(marker: str, prefixes: list[str]) -> bytes:
    """A manifest's bytes as ``Manifest.dumps`` writes them, with 3,000 files."""
    from test_document import MANIFEST

    doc = {**MANIFEST, "build_marker": marker, "source_prefixes": prefixes,
           "files": [{"path": f"f{i}", "sha256": "d" * 64, "mode": "0644", "size": i}
                     for i in range(3000)]}
    return Manifest.from_dict(doc).dumps().encode()


@pytest.mark.parametrize("prefixes", [[], ["/opt/py"], ["/opt/py", "/usr/local/π"]])
def test_the_needles_peeked_from_a_manifest_s_start_are_its_own(prefixes: list[str]) -> None:
    """An archive's parts are read on the needles peeked from the manifest's first lines,
    before its JSON is read: for a manifest isolate wrote, they are the manifest's own."""
    from isolate.model.manifest import load_json
    from isolate.verify.core import _needles_guess, _needles_peek

    data = _written(".isolate-build-", prefixes)
    peeked = _needles_peek(data)
    assert peeked is not None
    assert peeked == _needles_guess(load_json(data))
    assert peeked == checks.needles_of(Manifest.loads(data.decode()), ".isolate-build-")


@pytest.mark.parametrize("data", [
    b'{"schema": "x", "build_marker": "m", "source_prefixes": []}',  # not indented
    b'{\n  "build_marker": "m",\n  "source_prefixes": []\n}',  # not at the top level
    b'{\n "build_marker": "m",\n "other": 1\n}',  # only one of the two
    b'{\n "build_marker": "m",\n "source_prefixes": [\n  "/p"\n',  # cut short
])
def test_a_manifest_not_written_as_isolate_writes_it_gives_no_peek(data: bytes) -> None:
    """Then the needles come from the whole JSON (``_needles_guess``), as before."""
    from isolate.verify.core import _needles_peek

    assert _needles_peek(data) is None


def test_the_archive_s_hash_comes_from_its_worker_else_from_this_process(
        tmp_path: Path) -> None:
    """verify checks an archive read in parts against its ``.sha256`` with the hash a part
    worker computed; when that worker failed, or its work was cancelled, it hashes here."""
    from concurrent.futures import Future

    from isolate.fsutil import sha256_file
    from isolate.verify.core import _hashed

    f = tmp_path / "a.tar.zst"
    f.write_bytes(b"archive bytes")
    here = sha256_file(f)
    given: Future[str] = Future()
    given.set_result("ab" * 32)
    failed: Future[str] = Future()
    failed.set_exception(RuntimeError("the worker died"))
    cancelled: Future[str] = Future()
    cancelled.cancel()
    assert _hashed(given)(f) == "ab" * 32
    assert _hashed(failed)(f) == here
    assert _hashed(cancelled)(f) == here
    assert _hashed(None)(f) == here
