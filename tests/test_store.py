"""The store of installed wheels: warm builds place files from it, and nothing done to it
changes what a build publishes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from isolate.bundle.store import INDEX, TREE
from isolate.model.manifest import MANIFEST_NAME, Manifest
from tests.conftest import Result, bundle_dir, index


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

    # The published tree shares no inode with the store, and its manifest's hashes are
    # the files' (the hashes taken from the store as well as the ones computed again).
    d = bundle_dir(tmp_path / "warm")
    store_inodes = {os.stat(os.path.join(dp, f)).st_ino
                    for dp, _dn, fn in os.walk(cache / "store") for f in fn}
    manifest = Manifest.loads((d / MANIFEST_NAME).read_text())
    for f in manifest.files:
        p = d / f.path
        if f.kind == "file":
            assert os.stat(p).st_ino not in store_inodes, f.path
            assert hashlib.sha256(p.read_bytes()).hexdigest() == f.sha256, f.path
    r = run_isolate("verify", d)
    assert r.code == 0, r.output


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
    target = entry / TREE / rel
    evil = b"raise SystemExit('tampered store')\n"
    if how == "content":
        target.write_bytes(evil)
    elif how == "content-and-index":
        # A consistent edit: the index agrees with the new content, the wheel's RECORD not.
        target.write_bytes(evil)
        files[i] = [rel, hashlib.sha256(evil).hexdigest(), len(evil), files[i][3]]
        (entry / INDEX).write_text(json.dumps(doc))
    elif how == "missing-file":
        target.unlink()
    elif how == "content-and-another-entry-gone":
        # one entry damaged and another missing: made again and made anew in one build
        target.write_bytes(evil)
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
    assert target.read_bytes() != evil
