"""`isolate unpack ARCHIVE DEST` end to end: the real CLI on real and hostile archives.

The ``built`` bundle's archives unpack to exactly what the manifest lists; every hostile
archive of ``test_archive`` (the ones that need no custom size limit) and every bad archive
file is refused with exit 2, an ``error:`` and a ``hint:`` line, nothing written outside
DEST and nothing left in it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import pytest
from conftest import Result, bundle_dir, invoke
from test_archive import FORMAT_CASES, hostile_archive, hostile_cases, snapshot

from isolate.bundle.archive import write_archive
from isolate.bundle.archive_format import FORMATS
from isolate.model.manifest import MANIFEST_NAME, Manifest

CLI_CASES = [c.id for c in hostile_cases(Path("/x")) if not c.limits]


def unpack_cli(tmp_path: Path, archive: Path) -> tuple[Result, Path, list[tuple[str, str, int]]]:
    """Run the CLI into ``tmp_path/box/dest``; (result, dest, what changed outside it)."""
    dest = tmp_path / "box" / "dest"
    dest.parent.mkdir(exist_ok=True)
    before = snapshot(tmp_path, skip=dest)
    result = invoke(["unpack", archive, dest])
    after = snapshot(tmp_path, skip=dest)
    assert "Traceback" not in result.err, result.err
    return result, dest, sorted(set(after) ^ set(before))


def assert_refused(result: Result, dest: Path, changed: list[tuple[str, str, int]],
                   match: str) -> None:
    assert result.code == 2, result.output
    assert changed == []
    assert not dest.exists() or os.listdir(dest) == []  # no partial tree, no temp directory
    assert result.err.startswith("error: ") and "\nhint: " in result.err, result.err
    assert re.search(match, result.err), result.err
    assert result.out == ""


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_built_archives_unpack_to_what_the_manifest_lists(built: Path, tmp_path: Path,
                                                               fmt: str) -> None:
    name = bundle_dir(built).name
    archive = built / f"{name}.{fmt}"
    assert Path(f"{archive}.sha256").is_file()  # checked on the way
    result, dest, changed = unpack_cli(tmp_path, archive)
    assert result.code == 0, result.output
    assert result.out == f"unpacked {archive} into {dest / name}\n"
    assert changed == [] and os.listdir(dest) == [name]
    top = dest / name
    manifest = Manifest.loads((top / MANIFEST_NAME).read_text())
    listed = {e.path for e in manifest.files} | {MANIFEST_NAME}
    found = {str(p.relative_to(top)) for p in top.rglob("*") if not p.is_dir() or p.is_symlink()}
    assert found == listed
    for e in manifest.files:
        p = top / e.path
        if e.kind == "symlink":
            assert os.readlink(p) == e.target
        else:
            assert hashlib.sha256(p.read_bytes()).hexdigest() == e.sha256, e.path
            assert stat.S_IMODE(p.lstat().st_mode) == e.mode, e.path


def small_archive(tmp_path: Path, fmt: str = "tar.zst") -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "f").write_text("hello\n")
    archive = tmp_path / "in" / f"small.{fmt}"
    write_archive(src, archive, fmt=fmt, root_name="small")
    return archive


def test_an_existing_top_directory_is_refused(tmp_path: Path) -> None:
    archive = small_archive(tmp_path)
    dest = tmp_path / "box" / "dest"
    assert invoke(["unpack", archive, dest]).code == 0
    (dest / "small" / "f").write_text("mine\n")
    result = invoke(["unpack", archive, dest])
    assert result.code == 2 and "already exists" in result.err, result.output
    assert (dest / "small" / "f").read_text() == "mine\n"
    assert sorted(os.listdir(dest)) == ["small"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case_id", CLI_CASES)
def test_a_hostile_archive_is_refused(tmp_path: Path, fmt: str, case_id: str) -> None:
    case, archive = hostile_archive(tmp_path, case_id, fmt)
    result, dest, changed = unpack_cli(tmp_path, archive)
    assert_refused(result, dest, changed, case.match)
    if case.entry is not None:
        assert repr(case.entry) in result.err
    assert not (tmp_path / "abs-evil").exists()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case_id", list(FORMAT_CASES))
def test_a_bad_archive_file_is_refused(tmp_path: Path, fmt: str, case_id: str) -> None:
    archive, match = FORMAT_CASES[case_id](tmp_path, fmt)
    result, dest, changed = unpack_cli(tmp_path, archive)
    assert_refused(result, dest, changed, match)


def test_a_missing_archive_is_refused(tmp_path: Path) -> None:
    result, dest, changed = unpack_cli(tmp_path, tmp_path / "nothing.tar.zst")
    assert_refused(result, dest, changed, "does not exist")


def test_usage_errors(tmp_path: Path) -> None:
    result = invoke(["unpack", tmp_path / "a.tar.zst"])
    assert result.code == 2 and "required: dest" in result.err
