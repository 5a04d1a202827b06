"""`isolate verify` names every kind of tampering the issue lists, each on its own copy.

The ``built`` bundle (conftest) is copied per test, with the manifest's own sha256 that
``isolate bundle`` records beside it (``<name>.isolate-manifest.json.sha256``). Each test
tampers one way and asserts the findings that are *new* against the untouched bundle:
content (one byte), mode, an added file, a removed file, a file replaced by a symlink,
and a manifest edited to match a tampered file (its entry rewritten), which only the hash
recorded outside the bundle can reveal.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, bundle_dir, invoke

from isolate.bundle.archive import write_archive
from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.verify.manifest_hash import SIDECAR_SUFFIX

Key = tuple[str, str, str | None, str]


def run_verify(path: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    result = invoke(["verify", path, "--json", *args])
    assert "Traceback" not in result.err, result.err
    return result, json.loads(result.out) if result.out.strip() else {}


def key(f: dict[str, Any]) -> Key:
    return f["severity"], f["check"], f["path"], f["message"]


@pytest.fixture(scope="module")
def original(built: Path) -> Path:
    return bundle_dir(built)


@pytest.fixture(scope="module")
def manifest(original: Path) -> Manifest:
    return Manifest.loads((original / MANIFEST_NAME).read_text())


@pytest.fixture(scope="module")
def baseline(original: Path) -> frozenset[Key]:
    """The findings on the untouched bundle, which has its recorded manifest sha256."""
    assert (original.parent / f"{original.name}{SIDECAR_SUFFIX}").is_file()
    _result, data = run_verify(original)
    assert not [f for f in data["findings"] if f["check"] == "manifest"], data["findings"]
    return frozenset(key(f) for f in data["findings"])


@pytest.fixture
def bundle(original: Path, tmp_path: Path) -> Path:
    """A private copy of the bundle, with its recorded manifest sha256 beside it."""
    copy = tmp_path / original.name
    shutil.copytree(original, copy, symlinks=True)
    shutil.copy(original.parent / f"{original.name}{SIDECAR_SUFFIX}", tmp_path)
    return copy


def new_findings(baseline: frozenset[Key], data: dict[str, Any]) -> list[Key]:
    return [key(f) for f in data["findings"] if key(f) not in baseline]


def victim(manifest: Manifest) -> str:
    return f"{manifest.interpreter.stdlib}/this.py"


def flip_a_byte(path: Path) -> str:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return hashlib.sha256(data).hexdigest()


def rewrite_entry(bundle: Path, rel: str, sha256: str) -> None:
    """Edit the manifest as an attacker would: the entry now matches the tampered file."""
    path = bundle / MANIFEST_NAME
    data = json.loads(path.read_text())
    (entry,) = [e for e in data["files"] if e["path"] == rel]
    entry["sha256"] = sha256
    path.write_text(json.dumps(data, indent=1) + "\n")


# -- the file-level kinds ---------------------------------------------------------------


def test_one_byte_of_content(bundle: Path, manifest: Manifest, baseline: frozenset[Key]) -> None:
    rel = victim(manifest)
    flip_a_byte(bundle / rel)
    result, data = run_verify(bundle)
    assert result.code == 1
    new = new_findings(baseline, data)
    assert [k[:3] for k in new] == [("error", "integrity", rel)]
    assert new[0][3].startswith("content changed: sha256")


def test_mode(bundle: Path, manifest: Manifest, baseline: frozenset[Key]) -> None:
    rel = victim(manifest)
    (bundle / rel).chmod(0o755)
    result, data = run_verify(bundle)
    assert result.code == 1
    assert new_findings(baseline, data) == [
        ("error", "integrity", rel, "mode 0755, the manifest says 0644")]


def test_an_added_file(bundle: Path, manifest: Manifest, baseline: frozenset[Key]) -> None:
    rel = f"{manifest.interpreter.site_packages}/planted.py"
    (bundle / rel).write_text("import os\n")
    result, data = run_verify(bundle)
    assert result.code == 1
    assert new_findings(baseline, data) == [
        ("error", "integrity", rel, "extra file, not in the manifest")]


def test_a_removed_file(bundle: Path, manifest: Manifest, baseline: frozenset[Key]) -> None:
    rel = victim(manifest)
    (bundle / rel).unlink()
    result, data = run_verify(bundle)
    assert result.code == 1
    assert new_findings(baseline, data) == [
        ("error", "integrity", rel, "missing (listed in the manifest)")]


def test_a_file_replaced_by_a_symlink(bundle: Path, manifest: Manifest,
                                      baseline: frozenset[Key]) -> None:
    rel = victim(manifest)
    (bundle / rel).unlink()
    (bundle / rel).symlink_to("colorsys.py")
    result, data = run_verify(bundle)
    assert result.code == 1
    assert new_findings(baseline, data) == [
        ("error", "integrity", rel,
         "replaced by a symlink to 'colorsys.py'; the manifest lists a regular file")]


# -- the manifest itself ----------------------------------------------------------------


def test_a_manifest_rewritten_to_match_a_tampered_file(bundle: Path, manifest: Manifest,
                                                       baseline: frozenset[Key]) -> None:
    rel = victim(manifest)
    rewrite_entry(bundle, rel, flip_a_byte(bundle / rel))
    result, data = run_verify(bundle)
    assert result.code == 1
    new = new_findings(baseline, data)
    assert [k[:3] for k in new] == [("error", "manifest", MANIFEST_NAME)]  # integrity passes
    sidecar = bundle.parent / f"{bundle.name}{SIDECAR_SUFFIX}"
    assert new[0][3].startswith("changed after the build: its sha256 is ")
    assert str(sidecar) in new[0][3]
    human = invoke(["verify", bundle])
    assert human.code == 1
    assert f"error manifest   {MANIFEST_NAME}: changed after the build" in human.out


def test_without_the_recorded_hash_the_edit_passes_with_a_note(
        bundle: Path, manifest: Manifest, baseline: frozenset[Key]) -> None:
    """Why the hash lives outside the bundle: without it, the rewritten manifest passes."""
    rel = victim(manifest)
    rewrite_entry(bundle, rel, flip_a_byte(bundle / rel))
    (bundle.parent / f"{bundle.name}{SIDECAR_SUFFIX}").unlink()
    result, data = run_verify(bundle)
    assert result.code == 0, result.output
    ((severity, check, path, message),) = new_findings(baseline, data)
    assert (severity, check, path) == ("note", "manifest", MANIFEST_NAME)
    assert message.startswith("its own integrity cannot be checked: no ")
    assert "--manifest-sha256 HEX" in message and "isolate bundle" in message


def test_an_explicit_manifest_sha256(bundle: Path, manifest: Manifest, original: Path,
                                     baseline: frozenset[Key]) -> None:
    good = hashlib.sha256((original / MANIFEST_NAME).read_bytes()).hexdigest()
    (bundle.parent / f"{bundle.name}{SIDECAR_SUFFIX}").unlink()
    result, data = run_verify(bundle, "--manifest-sha256", good.upper())
    assert result.code == 0 and new_findings(baseline, data) == []
    detail = next(c["detail"] for c in data["checks"] if c["name"] == "manifest")
    assert detail == "sha256 matches --manifest-sha256"
    rel = victim(manifest)
    rewrite_entry(bundle, rel, flip_a_byte(bundle / rel))
    result, data = run_verify(bundle, "--manifest-sha256", f"sha256:{good}")
    assert result.code == 1
    assert [k[:3] for k in new_findings(baseline, data)] == [
        ("error", "manifest", MANIFEST_NAME)]


def test_a_malformed_recorded_hash_is_an_error(bundle: Path,
                                               baseline: frozenset[Key]) -> None:
    (bundle.parent / f"{bundle.name}{SIDECAR_SUFFIX}").write_text("not a hash\n")
    result, data = run_verify(bundle)
    assert result.code == 1
    ((severity, check, _path, message),) = new_findings(baseline, data)
    assert (severity, check) == ("error", "manifest")
    assert "is not a sha256sum file" in message


@pytest.mark.parametrize("value", ["abc", "g" * 64, "0" * 63, f"{'0' * 64} extra"])
def test_a_bad_manifest_sha256_is_a_usage_error(original: Path, value: str) -> None:
    result = invoke(["verify", original, "--manifest-sha256", value])
    assert result.code == 2, result.output
    assert result.err.startswith("error: --manifest-sha256") and "hint:" in result.err


def test_an_archive_is_covered_by_its_own_sha256(built: Path, original: Path,
                                                 baseline: frozenset[Key]) -> None:
    archive = built / f"{original.name}.tar.zst"
    result, data = run_verify(archive)
    assert frozenset(key(f) for f in data["findings"]) == baseline, result.output
    detail = next(c["detail"] for c in data["checks"] if c["name"] == "manifest")
    assert detail == f"covered by {archive}.sha256"


def test_a_repacked_archive_with_a_rewritten_manifest(bundle: Path, manifest: Manifest,
                                                      original: Path, built: Path,
                                                      baseline: frozenset[Key]) -> None:
    """A tampered archive: refused by its own .sha256; without that, the recorded
    manifest sha256 beside it still names the edited manifest."""
    rel = victim(manifest)
    rewrite_entry(bundle, rel, flip_a_byte(bundle / rel))
    archive = bundle.parent / "dist" / f"{bundle.name}.tar.zst"
    write_archive(bundle, archive, fmt="tar.zst", root_name=bundle.name)
    shutil.copy(built / f"{original.name}.tar.zst.sha256", archive.parent)
    result = invoke(["verify", archive])
    assert result.code == 2, result.output
    assert f"{archive} has sha256 " in result.err and "hint:" in result.err

    Path(f"{archive}.sha256").unlink()
    shutil.copy(bundle.parent / f"{bundle.name}{SIDECAR_SUFFIX}", archive.parent)
    result, data = run_verify(archive)
    assert result.code == 1
    new = new_findings(baseline, data)
    assert [k[:3] for k in new] == [("error", "manifest", MANIFEST_NAME)]
    assert str(archive.parent / f"{bundle.name}{SIDECAR_SUFFIX}") in new[0][3]
