"""isolate diff between two small runtimes whose locks differ by one pin, and between the
forms of one bundle (directory, archive, manifest, .deb, .rpm)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from isolate.diff.compare import compare
from isolate.diff.load import open_bundle
from isolate.model.manifest import MANIFEST_NAME
from tests.conftest import bundle_dir, index, invoke
from tests.test_package import deb_of, rpm_of

# Packages and diffs need real bundles, .deb and .rpm files (minutes on 2 cores): run
# once, in the e2e session, not on every controller Python.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def upgraded(pkg_ws: Path, app_wheels: Path, newer_wheelhouse: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same runtime, relocked with `--upgrade-package beta` (2.0 -> 2.1), built."""
    ws = tmp_path_factory.mktemp("ws-upgraded")
    shutil.copytree(pkg_ws, ws, dirs_exist_ok=True)
    both = [*index(app_wheels), "--find-links", str(newer_wheelhouse)]
    r = invoke(["--root", ws, "lock", "app", "--upgrade-package", "beta", *both])
    assert r.code == 0, r.output
    out = tmp_path_factory.mktemp("out-upgraded")
    r = invoke(["--root", ws, "bundle", "app", "-o", out, "--format", "dir,tar.gz", "-q",
                "--no-tests-overlay", *both])
    assert r.code == 0, r.output
    return out


def test_diff_names_exactly_the_changed_pin(packaged: Path, upgraded: Path) -> None:
    old, new = bundle_dir(packaged), bundle_dir(upgraded)
    r = invoke(["diff", old, new, "--json"])
    assert r.code == 1, r.output
    d = json.loads(r.out)
    assert d["distributions"]["added"] == d["distributions"]["removed"] == []
    (changed,) = d["distributions"]["changed"]
    assert changed["name"] == "beta"
    assert (changed["old"]["version"], changed["new"]["version"]) == ("2.0", "2.1")
    assert d["interpreter"] == d["floors"] == d["vendored_libraries"] == []
    assert d["launchers"] == {"added": [], "removed": []}
    assert {f["owner"] for f in d["files"]} == {"beta"}
    assert not d["tests_overlay"]["changed"]
    text = invoke(["diff", old, new]).out
    assert "~ beta 2.0 -> 2.1" in text and "alpha" not in text
    md = invoke(["diff", old, new, "--markdown"])
    assert md.code == 1 and "| beta |" in md.out and md.out.startswith("### Runtime diff")


def test_every_form_of_one_bundle_is_identical(packaged: Path) -> None:
    d = bundle_dir(packaged)
    (archive,) = packaged.glob("*.tar.zst")
    forms = [d, archive, d / MANIFEST_NAME, deb_of(packaged), rpm_of(packaged)]
    for form in forms[1:]:
        r = invoke(["diff", d, form])
        assert r.code == 0, (form, r.output)
        assert r.out.startswith("identical:")
    # files owned through RECORD, not guessed, in every form that has them
    for form in (d, archive, deb_of(packaged), rpm_of(packaged)):
        view = open_bundle(form)
        assert "beta" in view.owners.values(), form


def test_diff_across_forms_sees_the_pin(packaged: Path, upgraded: Path) -> None:
    (new_archive,) = upgraded.glob("*.tar.gz")
    diff = compare(open_bundle(deb_of(packaged)), open_bundle(new_archive))
    assert [c.what for c in diff.distributions_changed] == ["beta"]


def test_not_a_bundle_says_what_it_is_not(packaged: Path, tmp_path: Path) -> None:
    d = bundle_dir(packaged)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    r = invoke(["diff", d, text])
    assert r.code == 2
    assert "is not a bundle: neither a bundle directory" in r.err
    r = invoke(["diff", tmp_path, d])
    assert r.code == 2 and f"without {MANIFEST_NAME}" in r.err
    other = tmp_path / "other.json"
    other.write_text('{"schema": "something/1"}')
    r = invoke(["diff", other, d])
    assert r.code == 2 and "is not an isolate manifest" in r.err
    r = invoke(["diff", tmp_path / "missing", d])
    assert r.code == 2 and "does not exist" in r.err


def test_a_package_not_made_by_isolate_is_not_a_bundle(tmp_path: Path) -> None:
    import subprocess

    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    image = tmp_path / "image"
    (image / "DEBIAN").mkdir(parents=True)
    (image / "DEBIAN" / "control").write_text(
        "Package: hello\nVersion: 1.0\nArchitecture: all\nMaintainer: A <a@b.org>\n"
        "Description: hello\n")
    (image / "usr/share/hello").mkdir(parents=True)
    (image / "usr/share/hello/README").write_text("hi\n")
    deb = tmp_path / "hello.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(image), str(deb)], check=True,
                   capture_output=True)
    r = invoke(["diff", deb, deb])
    assert r.code == 2
    assert "this .deb holds no isolate-manifest.json; it was not made by `isolate bundle`" in r.err
