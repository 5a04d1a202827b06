"""The store of installed wheels: warm builds place files from it, and nothing done to it
changes what a build publishes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from isolate.bundle.bytecode import bytecode_tag
from isolate.bundle.store import FILES, INDEX, Layout, WheelStore
from isolate.errors import InputError
from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.proc import Runner
from tests.conftest import Result, build_wheel, bundle_dir, index


def _build(run_isolate: Callable[..., Result], app_ws: Path, app_wheels: Path,
           out: Path) -> tuple[Path, str]:
    r = run_isolate("--root", app_ws, "bundle", "app", "-o", out, "--format", "dir,tar.zst",
                    *index(app_wheels))
    assert r.code == 0, r.output
    (archive,) = [p for p in out.glob("*.tar.zst") if ".tests." not in p.name]
    return archive, " ".join(r.output.split())  # as one line: the terminal view wraps


def _entries(cache: Path) -> list[tuple[Path, dict[str, object]]]:
    return [(d, json.loads((d / INDEX).read_text()))
            for d in sorted((cache / "store").glob("??/*")) if (d / INDEX).is_file()]


def _python_file(cache: Path) -> tuple[Path, dict[str, object], int]:
    """An entry and the index of one of its site-packages .py files (a file of the wheel)."""
    for d, doc in _entries(cache):
        files = doc["files"]
        assert isinstance(files, list)
        for i, (path, _sha, _size, _mode) in enumerate(files):
            if path.startswith("python/") and "site-packages/" in path \
                    and path.endswith(".py") and "__pycache__" not in path:
                return d, doc, i
    raise AssertionError("no .py file in the store")


def _replace(entry: Path, files: list[list[object]], i: int, data: bytes) -> None:
    """Put ``data`` in place of the bytes of the ``i``-th file of the entry's ``files``
    (the files after it move: their sizes in the index no longer fit)."""
    blob = (entry / FILES).read_bytes()
    start = sum(int(f[2]) for f in files[:i])  # type: ignore[call-overload]
    end = start + int(files[i][2])  # type: ignore[call-overload]
    (entry / FILES).write_bytes(blob[:start] + data + blob[end:])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv("ISOLATE_CACHE_DIR", str(c))
    return c


def test_warm_build_places_from_the_store_and_publishes_the_same_bytes(
        cache: Path, app_ws: Path, app_wheels: Path, tmp_path: Path,
        run_isolate: Callable[..., Result]) -> None:
    cold, log = _build(run_isolate, app_ws, app_wheels, tmp_path / "cold")
    assert "runtime: 3 wheels, 0 placed from the store, 3 installed into it" in log, log
    assert "tests overlay: 2 wheels, 0 placed from the store, 2 installed into it" in log, log
    assert len(_entries(cache)) == 5
    warm, log = _build(run_isolate, app_ws, app_wheels, tmp_path / "warm")
    assert "runtime: 3 wheels, 3 placed from the store, 0 installed into it" in log, log
    assert "tests overlay: 2 wheels, 2 placed from the store, 0 installed into it" in log, log
    assert warm.read_bytes() == cold.read_bytes()

    # Neither published tree (the cold one got the staged files, the warm one copies
    # of the store's) shares an inode with the cache (the store, the byte-code cache),
    # and their manifests' hashes are the files' (the hashes taken from the store as
    # well as the ones computed again).
    cache_inodes = {os.stat(os.path.join(dp, f)).st_ino
                    for dp, _dn, fn in os.walk(cache) for f in fn}
    for out in ("cold", "warm"):
        d = bundle_dir(tmp_path / out)
        manifest = Manifest.loads((d / MANIFEST_NAME).read_text())
        for f in manifest.files:
            p = d / f.path
            if f.kind == "file":
                assert os.stat(p).st_ino not in cache_inodes, f.path
                assert hashlib.sha256(p.read_bytes()).hexdigest() == f.sha256, f.path
        r = run_isolate("verify", d)
        assert r.code == 0, r.output
    assert not list((cache / "store").glob(".staging-*"))


@pytest.mark.slow  # three builds per case
@pytest.mark.parametrize("how", ["content", "content-and-index", "missing-file",
                                 "unreadable-index", "content-and-another-entry-gone"])
def test_a_tampered_store_does_not_change_the_bundle(
        how: str, cache: Path, app_ws: Path, app_wheels: Path, tmp_path: Path,
        run_isolate: Callable[..., Result]) -> None:
    clean, _log = _build(run_isolate, app_ws, app_wheels, tmp_path / "clean")
    entry, doc, i = _python_file(cache)
    files = doc["files"]
    assert isinstance(files, list)
    rel = files[i][0]
    evil = b"raise SystemExit('tampered store')\n"
    if how == "content":
        _replace(entry, files, i, evil)
    elif how == "content-and-index":
        # A consistent edit: the index agrees with the new content, the wheel's RECORD not.
        _replace(entry, files, i, evil)
        files[i] = [rel, hashlib.sha256(evil).hexdigest(), len(evil), files[i][3]]
        (entry / INDEX).write_text(json.dumps(doc))
    elif how == "missing-file":
        _replace(entry, files, i, b"")
    elif how == "content-and-another-entry-gone":
        # one entry damaged and another missing: made again and made anew in one build
        _replace(entry, files, i, evil)
        other = next(d for d, doc in _entries(cache) if d != entry
                     and str(doc["files"][0][0]).startswith("python/"))  # type: ignore[index]
        shutil.rmtree(other)
    else:
        (entry / INDEX).write_text("{not json")
    again, log = _build(run_isolate, app_ws, app_wheels, tmp_path / "again")
    assert again.read_bytes() == clean.read_bytes()
    published = bundle_dir(tmp_path / "again") / rel
    assert evil not in published.read_bytes()
    if how == "content-and-another-entry-gone":
        assert ("runtime: 3 wheels, 1 placed from the store, 1 installed into it, 1 store "
                "entries failed their check and were made again") in log, log
    elif how == "unreadable-index":  # an unreadable entry is no entry
        assert "runtime: 3 wheels, 2 placed from the store, 1 installed into it" in log, log
    else:
        assert ("runtime: 3 wheels, 2 placed from the store, 0 installed into it, 1 store "
                "entries failed their check and were made again") in log, log
    # The entry was made again from the wheel: the next build takes it as it is.
    _again, log = _build(run_isolate, app_ws, app_wheels, tmp_path / "third")
    assert "runtime: 3 wheels, 3 placed from the store, 0 installed into it" in log, log
    assert evil not in (entry / FILES).read_bytes()


def _store(cache: Path) -> WheelStore:
    tag = bytecode_tag(Path(sys.executable), Runner())
    layout = Layout(python_home="python", site_packages="python/lib/site-packages",
                    compile_dir="python/lib", python_name="python3", magic=tag[0],
                    cache_tag=tag[1])
    return WheelStore(cache, layout, python=Path(sys.executable), runner=Runner(), jobs=2)


def _wheels(d: Path, n: int) -> list[tuple[Path, str]]:
    d.mkdir()
    out = []
    for i in range(n):
        w = build_wheel(d, f"pipe{i}", "1.0", extra={
            f"pipe{i}/mod{j}.py": f"X = {j}\n" for j in range(30)})
        out.append((w, hashlib.sha256(w.read_bytes()).hexdigest()))
    return out


def test_wheels_go_on_as_their_downloads_end_and_each_is_placed_with_its_byte_code(
        cache: Path, tmp_path: Path) -> None:
    wheels = _wheels(tmp_path / "wheels", 6)
    futures: list[Future[tuple[Path, str]]] = [Future() for _ in wheels]
    placed: list[int] = []
    root = tmp_path / "root"
    root.mkdir()

    def arrive() -> None:  # the "downloads" end in another order than the lock's
        for i in (3, 0, 5, 1, 4, 2):
            time.sleep(0.05)
            futures[i].set_result(wheels[i])

    t = threading.Thread(target=arrive)
    t.start()
    result = _store(cache).place(futures, root, on_placed=lambda: placed.append(1))
    t.join()
    assert [i.name for i in result.installed] == [f"pipe{i}" for i in range(6)]
    assert (result.added, result.reused, len(placed)) == (6, 0, 6)
    assert result.compile is not None and result.compile.compiled == 6 * 31
    site = root / "python" / "lib" / "site-packages"
    for i in range(6):
        assert (site / f"pipe{i}" / "__pycache__").is_dir()
        assert len(list((site / f"pipe{i}" / "__pycache__").glob("*.pyc"))) == 31
    for rel, (sha, size) in result.placed.items():
        data = (root / rel).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (sha, size)
    assert not list((cache / "store").glob(".staging-*"))
    # all from the store the second time, the same files
    again = tmp_path / "again"
    again.mkdir()
    second = _store(cache).place(wheels, again)
    assert (second.added, second.reused) == (0, 6) and second.placed == result.placed


@pytest.mark.parametrize("failing", ["download", "corrupt wheel"])
def test_a_failing_download_or_install_stops_the_rest_and_leaves_no_staging(
        failing: str, cache: Path, tmp_path: Path) -> None:
    wheels = _wheels(tmp_path / "wheels", 5)
    futures: list[Future[tuple[Path, str]]] = [Future() for _ in wheels]
    for i in (0, 1):
        futures[i].set_result(wheels[i])
    if failing == "download":
        futures[2].set_exception(InputError("hash mismatch for pipe2==1.0"))
    else:
        bad = tmp_path / "wheels" / "pipe2-1.0-py3-none-any.whl"
        bad.write_bytes(b"not a zip file")
        futures[2].set_result((bad, hashlib.sha256(bad.read_bytes()).hexdigest()))
    root = tmp_path / "root"
    root.mkdir()
    store = _store(cache)
    with pytest.raises(InputError, match="pipe2"):
        store.place(futures, root)  # futures 3 and 4 never end: the failure does not wait
    assert not list((cache / "store").glob(".staging-*"))
    assert not list((cache / "store").glob("??/.*.tmp"))
    for _wheel, sha in wheels[:2]:  # what was committed is whole, or absent
        entry = store.lookup(sha)
        if entry is not None:
            assert (entry.directory / FILES).stat().st_size == sum(f.size for f in entry.files)


def _tree_of(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and every directory (None) below ``root``."""
    out: dict[str, bytes | None] = {}
    for dp, dn, fn in os.walk(root):
        for d in dn:
            out[os.path.relpath(os.path.join(dp, d), root)] = None
        for f in fn:
            out[os.path.relpath(os.path.join(dp, f), root)] = Path(dp, f).read_bytes()
    return out


def test_wheels_sharing_a_namespace_merge_the_same_cold_and_warm(
        cache: Path, tmp_path: Path) -> None:
    d = tmp_path / "wheels"
    d.mkdir()
    wheels = []
    for name in ("nsa", "nsb"):
        w = build_wheel(d, name, "1.0", extra={f"ns/{name}/__init__.py": f"N = '{name}'\n",
                                               f"ns/{name}/data.txt": "data\n"})
        wheels.append((w, hashlib.sha256(w.read_bytes()).hexdigest()))
    cold, warm = tmp_path / "cold", tmp_path / "warm"
    for root in (cold, warm):
        root.mkdir()
        (root / "python" / "lib").mkdir(parents=True)  # as the interpreter's tree is there
    first = _store(cache).place(wheels, cold)
    second = _store(cache).place(wheels, warm)
    assert (first.added, second.reused) == (2, 2)
    assert _tree_of(cold) == _tree_of(warm)
    assert first.placed == second.placed
    site = cold / "python" / "lib" / "site-packages" / "ns"
    assert sorted(p.name for p in site.iterdir()) == ["nsa", "nsb"]


@pytest.mark.parametrize("warm", [False, True])
def test_two_wheels_with_one_file_is_an_error_that_names_it(
        warm: bool, cache: Path, tmp_path: Path) -> None:
    d = tmp_path / "wheels"
    d.mkdir()
    wheels = []
    for name in ("one", "two"):
        w = build_wheel(d, name, "1.0", extra={"shared/same.py": f"BY = '{name}'\n"})
        wheels.append((w, hashlib.sha256(w.read_bytes()).hexdigest()))
    if warm:
        for i, pair in enumerate(wheels):  # both entries made apart first
            apart = tmp_path / f"apart{i}"
            apart.mkdir()
            _store(cache).place([pair], apart)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(InputError, match=r"cannot install (one|two)-1\.0-py3-none-any\.whl: "
                                         r"python/lib/site-packages/shared/"
                                         r"(__pycache__/)?same\.(py|cpython-\d+\.pyc) is "
                                         r"installed by another distribution of the lock too"):
        _store(cache).place(wheels, root)
    assert not list((cache / "store").glob(".staging-*"))


def test_what_killed_builds_left_in_the_store_is_swept_after_a_day(
        cache: Path, tmp_path: Path) -> None:
    store = _store(cache)
    store.dir.mkdir(parents=True)
    (store.dir / "ab").mkdir()
    old = [store.dir / ".staging-killed", store.dir / "ab" / ".abc.x.tmp",
           store.dir / "ab" / ".abc.1.removed"]
    young = store.dir / ".staging-running"
    for d in [*old, young]:
        d.mkdir()
        (d / "file").write_text("left\n")
    day_ago = time.time() - 25 * 3600
    for d in old:
        os.utime(d, (day_ago, day_ago))
    root = tmp_path / "root"
    root.mkdir()
    store.place(_wheels(tmp_path / "wheels", 1), root)
    assert not any(d.exists() for d in old)
    assert (young / "file").is_file()


def test_a_cache_on_another_file_system_than_the_bundle(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    cache = Path(tempfile.mkdtemp(dir=shm, prefix="isolate-test-cache-"))
    try:
        wheels = _wheels(tmp_path / "wheels", 2)
        for out in ("cold", "warm"):
            root = tmp_path / out / "bundle"
            root.mkdir(parents=True)
            _store(cache).place(wheels, root)
            assert (root / "python" / "lib" / "site-packages" / "pipe1" / "mod3.py").is_file()
        assert _tree_of(tmp_path / "cold") == _tree_of(tmp_path / "warm")
        assert not list((tmp_path / "cold").glob(".staging-*"))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
