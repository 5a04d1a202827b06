"""ELF facts kept by content (isolate.bundle.elf_cache), on this interpreter's own binary."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from isolate.bundle import elf
from isolate.bundle.elf import read_elf
from isolate.bundle.elf_cache import ElfCache
from isolate.errors import InputError


@pytest.fixture
def binary(tmp_path: Path) -> tuple[Path, str]:
    """A copy of a real ELF executable and its sha256."""
    source = Path(sys.executable).resolve()
    if source.read_bytes()[:4] != elf.ELF_MAGIC:
        pytest.skip("this interpreter is not an ELF file")
    copy = tmp_path / "python"
    shutil.copyfile(source, copy)
    return copy, hashlib.sha256(copy.read_bytes()).hexdigest()


def _entry(cache_dir: Path, sha256: str) -> Path:
    (entry,) = cache_dir.glob(f"*/{sha256}.json")
    return entry


def test_facts_are_parsed_once_then_read_from_the_cache(tmp_path: Path,
                                                        binary: tuple[Path, str]) -> None:
    path, sha = binary
    with ElfCache(tmp_path / "elf") as first:
        parsed = first.read(path, sha)
    assert (first.counts.cached, first.counts.parsed) == (0, 1)
    entry = _entry(tmp_path / "elf", sha)
    assert entry.stat().st_mode & 0o777 == 0o600
    assert entry.parent.stat().st_mode & 0o777 == 0o700
    with ElfCache(tmp_path / "elf") as second:
        cached = second.read(tmp_path / "elsewhere", sha)
    assert (second.counts.cached, second.counts.parsed) == (1, 0)
    assert parsed == read_elf(path)
    assert cached == dataclasses.replace(parsed, path=tmp_path / "elsewhere")


def _forge(entry: Path, **facts: object) -> None:
    data = json.loads(entry.read_text())
    data["facts"].update(facts)
    entry.write_text(json.dumps(data))


def test_an_entry_others_can_write_is_ignored_and_the_file_parsed(
        tmp_path: Path, binary: tuple[Path, str]) -> None:
    path, sha = binary
    with ElfCache(tmp_path / "elf") as cache:
        real = cache.read(path, sha)
    entry = _entry(tmp_path / "elf", sha)
    _forge(entry, needed=[], rpath=["/anywhere"])
    entry.chmod(0o666)
    with ElfCache(tmp_path / "elf") as cache:
        assert cache.read(path, sha) == real
    assert cache.counts.parsed == 1 and cache.counts.cached == 0
    assert "written by others" in (cache.counts.ignored or "")


def test_an_entry_whose_facts_do_not_match_its_checksum_is_ignored_and_written_again(
        tmp_path: Path, binary: tuple[Path, str]) -> None:
    """Damaged, or edited by its owner without the checksum: the modes are right."""
    path, sha = binary
    with ElfCache(tmp_path / "elf") as cache:
        real = cache.read(path, sha)
    entry = _entry(tmp_path / "elf", sha)
    _forge(entry, needed=["libforged.so.1"])
    assert entry.stat().st_mode & 0o777 == 0o600
    with ElfCache(tmp_path / "elf") as cache:
        assert cache.read(path, sha) == real
    assert (cache.counts.cached, cache.counts.parsed) == (0, 1)
    assert "does not match its checksum" in (cache.counts.ignored or "")
    entry.write_text(entry.read_text()[:-20])  # cut short
    with ElfCache(tmp_path / "elf") as cache:
        assert cache.read(path, sha) == real
    assert cache.counts.parsed == 1 and cache.counts.ignored
    with ElfCache(tmp_path / "elf") as cache:  # written again, whole
        assert cache.read(path, sha) == real
    assert (cache.counts.cached, cache.counts.parsed, cache.counts.ignored) == (1, 0, None)


def test_a_directory_others_can_write_is_not_used(tmp_path: Path,
                                                  binary: tuple[Path, str]) -> None:
    path, sha = binary
    with ElfCache(tmp_path / "elf") as cache:
        real = cache.read(path, sha)
    entry = _entry(tmp_path / "elf", sha)
    _forge(entry, needed=[])
    entry.parent.chmod(0o777)
    with ElfCache(tmp_path / "elf") as cache:
        assert cache.read(path, sha) == real
    assert "written by others" in (cache.counts.ignored or "")


def test_a_symlinked_entry_is_not_followed(tmp_path: Path, binary: tuple[Path, str]) -> None:
    path, sha = binary
    with ElfCache(tmp_path / "elf") as cache:
        real = cache.read(path, sha)
    entry = _entry(tmp_path / "elf", sha)
    forged = tmp_path / "forged.json"
    forged.write_text(entry.read_text())
    forged.chmod(0o600)
    _forge(forged, needed=[])
    entry.unlink()
    entry.symlink_to(forged)
    with ElfCache(tmp_path / "elf") as cache:
        assert cache.read(path, sha) == real
    assert cache.counts.ignored is not None and cache.counts.cached == 0


def test_an_entry_of_other_content_is_not_used(tmp_path: Path,
                                               binary: tuple[Path, str]) -> None:
    path, sha = binary
    other = "0" * 64
    with ElfCache(tmp_path / "elf") as cache:
        real = cache.read(path, sha)
    entry = _entry(tmp_path / "elf", sha)
    os.rename(entry, entry.with_name(f"{other}.json"))  # names another file's content
    with ElfCache(tmp_path / "elf") as cache:
        cache.read(path, other)
    assert "not the facts of that content" in (cache.counts.ignored or "")
    assert cache.counts.parsed == 1
    with ElfCache(tmp_path / "elf") as cache:
        assert cache.read(path, sha) == real


def test_another_parser_version_starts_afresh(tmp_path: Path, binary: tuple[Path, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path, sha = binary
    with ElfCache(tmp_path / "elf") as cache:
        cache.read(path, sha)
    monkeypatch.setattr(elf, "FACTS_VERSION", elf.FACTS_VERSION + 1)
    with ElfCache(tmp_path / "elf") as cache:
        cache.read(path, sha)
    assert cache.counts.parsed == 1 and cache.counts.cached == 0
    assert len(list((tmp_path / "elf").iterdir())) == 2


def test_a_file_that_cannot_be_parsed_is_never_stored(tmp_path: Path) -> None:
    bad = tmp_path / "bad.so"
    bad.write_bytes(elf.ELF_MAGIC + b"\x02\x01\x01" + b"\0" * 20)
    sha = hashlib.sha256(bad.read_bytes()).hexdigest()
    for _ in range(2):
        with ElfCache(tmp_path / "elf") as cache, pytest.raises(InputError):
            cache.read(bad, sha)
        assert cache.counts.parsed == 0
    assert not list((tmp_path / "elf").glob("*/*.json"))


def test_a_cache_that_cannot_be_written_parses_every_file(tmp_path: Path,
                                                          binary: tuple[Path, str]) -> None:
    path, sha = binary
    blocker = tmp_path / "elf"
    blocker.write_text("a file where the cache directory would be")
    with ElfCache(blocker) as cache:
        assert cache.read(path, sha) == read_elf(path)
    assert cache.counts.parsed == 1 and "cannot be used" in (cache.counts.ignored or "")
