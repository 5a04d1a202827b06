"""`isolate verify`: a real bundle, verified clean, then tampered with one way per test.

One small bundle is built per session from a tiny runtime profile (the conftest
wheelhouse's ``alpha`` and ``beta``, a local CPython of ``target_python``), locked and
bundled offline by the real CLI as a directory and a ``.tar.zst``. Every tampering test
works on its own copy and asserts the findings that are *new* against the untouched
bundle, so each names exactly what was changed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import TARGET, Result, invoke

from isolate.bundle.elf_closure import find_patchelf
from isolate.errors import EnvironmentProblem, ExitCode
from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.verify import SCHEMA, Finding
from isolate.verify.probes import _from_record
from isolate.verify.scan import _Search

PROFILE = """\
name = "tiny"
python = "{python}"
requirements = ["alpha"]
""" + TARGET
INDEX = ("--no-index", "--find-links")
# Building the bundle and verifying ~20 tampered copies takes over 20 s in all.
slow = pytest.mark.slow

Key = tuple[str, str, str | None, str]


@dataclass(frozen=True)
class Tiny:
    directory: Path
    archive: Path
    workspace: Path
    manifest: Manifest

    @property
    def stdlib(self) -> str:
        return self.manifest.interpreter.stdlib

    @property
    def site(self) -> str:
        return self.manifest.interpreter.site_packages


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, target_python: str,
          test_cache_dir: Path) -> Tiny:
    base = tmp_path_factory.mktemp("verify")
    ws = base / "ws"
    (ws / "profiles" / "runtimes").mkdir(parents=True)
    (ws / "constraints").mkdir()
    (ws / "profiles" / "runtimes" / "tiny.toml").write_text(PROFILE.format(python=target_python))
    out = base / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ISOLATE_CACHE_DIR", str(test_cache_dir))
        for args in (["lock", "tiny"],
                     ["bundle", "tiny", "-o", str(out), "--format", "dir,tar.zst", "-q"]):
            result = invoke(["--root", ws, *args, *INDEX, wheelhouse])
            if result.code == ExitCode.ENVIRONMENT:
                pytest.skip(f"cannot build the test bundle here: {result.err.strip()}")
            assert result.code == 0, result.output
    name = (out / "latest.txt").read_text().strip()
    directory = out / name
    return Tiny(directory=directory, archive=out / f"{name}.tar.zst", workspace=ws,
                 manifest=Manifest.loads((directory / MANIFEST_NAME).read_text()))


def run_verify(path: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    result = invoke(["verify", path, "--json", *args])
    assert "Traceback" not in result.err, result.err
    return result, json.loads(result.out) if result.out.strip() else {}


def key(f: dict[str, Any]) -> Key:
    return f["severity"], f["check"], f["path"], f["message"]


@pytest.fixture(scope="module")
def baseline(tiny: Tiny) -> frozenset[Key]:
    """The findings on the untouched bundle directory."""
    _result, data = run_verify(tiny.directory)
    return frozenset(key(f) for f in data["findings"])


@pytest.fixture
def bundle(tiny: Tiny, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the bundle directory, to tamper with."""
    copy = tmp_path / tiny.directory.name
    shutil.copytree(tiny.directory, copy, symlinks=True)
    shutil.copy(f"{tiny.directory}.{MANIFEST_NAME}.sha256", tmp_path)  # the manifest's hash
    yield copy


def new_findings(baseline: frozenset[Key], data: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in data["findings"] if key(f) not in baseline]


# -- clean ---------------------------------------------------------------------------------


@slow
def test_a_fresh_bundle_is_clean(tiny: Tiny) -> None:
    result, data = run_verify(tiny.directory)
    assert [f for f in data["findings"] if f["severity"] == "error"] == []
    assert result.code == 0


@slow
def test_directory_and_archive_agree(tiny: Tiny, baseline: frozenset[Key]) -> None:
    result, data = run_verify(tiny.archive)
    assert result.code == (1 if any(k[0] == "error" for k in baseline) else 0), result.output
    assert frozenset(key(f) for f in data["findings"]) == baseline
    probes = [c for c in data["checks"] if c["name"] in ("isolation", "children", "imports")]
    # unpacked for the probes, unless the probe cache answered them all
    assert "unpack" in data["timings"] or all(c["cached"] for c in probes)


@slow
def test_every_check_runs_and_passes_on_a_fresh_bundle(tiny: Tiny,
                                                       baseline: frozenset[Key]) -> None:
    _result, data = run_verify(tiny.directory)
    names = [c["name"] for c in data["checks"]]
    assert names == ["manifest", "scan", "integrity", "relocation", "elf", "isolation",
                     "children", "imports"]
    assert all(c["skipped"] is None for c in data["checks"])
    for check in ("integrity", "elf", "isolation", "children", "imports"):
        assert not [k for k in baseline if k[1] == check and k[0] == "error"], check
    imports = next(c for c in data["checks"] if c["name"] == "imports")
    assert imports["detail"] == "2 modules of 2 distributions"  # alpha, beta


@slow
def test_the_fallback_prefix_in_libpython_is_a_note(tiny: Tiny,
                                                    baseline: frozenset[Key]) -> None:
    if not tiny.manifest.source_prefixes:
        pytest.skip("the bundled interpreter records no source prefix")
    notes = [k for k in baseline if k[1] == "relocation" and "fallback prefix" in k[3]]
    for severity, _check, path, message in notes:
        assert severity == "note"
        assert "libpython" in (path or "") or path == tiny.manifest.interpreter.executable
        assert "landmark" in message


@slow
def test_human_output(tiny: Tiny) -> None:
    result = invoke(["verify", tiny.directory])
    assert result.code in (0, 1)
    assert result.out.splitlines()[0] == f"verify {tiny.manifest.name}"
    assert "checks: manifest" in result.out
    assert result.out.splitlines()[-1].startswith(("ok: 0 errors", "FAILED: "))


@slow
def test_json_schema(tiny: Tiny, baseline: frozenset[Key]) -> None:
    _result, data = run_verify(tiny.directory)
    assert data["schema"] == SCHEMA == "isolate.verify/1"
    assert set(data) == {"schema", "bundle", "name", "host", "ok", "summary", "checks",
                         "timings", "findings"}
    assert data["name"] == tiny.manifest.name and data["host"] is None
    assert data["ok"] is not any(k[0] == "error" for k in baseline)
    for f in data["findings"]:
        assert set(f) == {"severity", "check", "path", "message"}
        assert f["severity"] in ("error", "note")
    errors = sum(1 for f in data["findings"] if f["severity"] == "error")
    assert data["summary"] == {"errors": errors, "notes": len(data["findings"]) - errors}
    for c in data["checks"]:
        assert set(c) == {"name", "seconds", "errors", "notes", "skipped", "detail", "cached"}
        assert c["seconds"] >= 0 and data["timings"][c["name"]] == round(c["seconds"], 3)
    assert data["timings"]["total"] >= max(c["seconds"] for c in data["checks"])


# -- integrity -------------------------------------------------------------------------------


@slow
def test_one_flipped_byte_is_named(tiny: Tiny, bundle: Path,
                                   baseline: frozenset[Key]) -> None:
    rel = f"{tiny.stdlib}/this.py"
    path = bundle / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result, report = run_verify(bundle)
    assert result.code == 1
    new = new_findings(baseline, report)
    assert [(f["severity"], f["check"], f["path"]) for f in new] == [("error", "integrity", rel)]
    assert new[0]["message"].startswith("content changed: sha256")


@slow
def test_a_mode_change_is_named(tiny: Tiny, bundle: Path, baseline: frozenset[Key]) -> None:
    rel = f"{tiny.stdlib}/this.py"
    (bundle / rel).chmod(0o755)
    result, report = run_verify(bundle)
    assert result.code == 1
    assert [key(f) for f in new_findings(baseline, report)] == [
        ("error", "integrity", rel, "mode 0755, the manifest says 0644")]


@slow
def test_an_added_file_is_named(tiny: Tiny, bundle: Path, baseline: frozenset[Key]) -> None:
    rel = f"{tiny.site}/planted.py"
    (bundle / rel).write_text("x = 1\n")
    result, report = run_verify(bundle)
    assert result.code == 1
    assert [key(f) for f in new_findings(baseline, report)] == [
        ("error", "integrity", rel, "extra file, not in the manifest")]


@slow
def test_a_removed_file_is_named(tiny: Tiny, bundle: Path, baseline: frozenset[Key]) -> None:
    rel = f"{tiny.stdlib}/this.py"
    (bundle / rel).unlink()
    result, report = run_verify(bundle)
    assert result.code == 1
    assert [key(f) for f in new_findings(baseline, report)] == [
        ("error", "integrity", rel, "missing (listed in the manifest)")]


@slow
def test_a_file_replaced_by_a_symlink_is_named(tiny: Tiny, bundle: Path,
                                               baseline: frozenset[Key]) -> None:
    rel = f"{tiny.stdlib}/this.py"
    (bundle / rel).unlink()
    (bundle / rel).symlink_to("colorsys.py")
    result, report = run_verify(bundle)
    assert result.code == 1
    assert [key(f) for f in new_findings(baseline, report)] == [
        ("error", "integrity", rel, "replaced by a symlink to 'colorsys.py'; the manifest "
                                    "lists a regular file")]


@slow
def test_a_symlink_replaced_by_a_file_is_named(tiny: Tiny, bundle: Path,
                                               baseline: frozenset[Key]) -> None:
    links = [e for e in tiny.manifest.files if e.kind == "symlink"]
    if not links:
        pytest.skip("the bundle has no symlink")
    rel = links[0].path
    target = (bundle / rel).resolve()
    (bundle / rel).unlink()
    shutil.copyfile(target, bundle / rel)
    result, report = run_verify(bundle)
    assert result.code == 1
    mine = [f for f in new_findings(baseline, report) if f["check"] == "integrity"]
    assert [(f["path"], f["message"].split(";")[0]) for f in mine] == [
        (rel, "replaced by a regular file")]


@slow
def test_an_unreadable_manifest_is_a_finding(bundle: Path) -> None:
    """Decision: exit 1 with a `manifest` error; the checks that need it are skipped."""
    (bundle / MANIFEST_NAME).write_text('{"schema": "isolate.manifest/1", ')
    result, report = run_verify(bundle)
    assert result.code == 1
    errors = [f for f in report["findings"] if f["check"] == "manifest"]
    assert len(errors) == 1 and errors[0]["path"] == MANIFEST_NAME
    assert errors[0]["message"].startswith("cannot be read: not JSON")
    skipped = {c["name"]: c["skipped"] for c in report["checks"]}
    assert skipped["integrity"] == "needs a readable manifest"
    assert skipped["isolation"] is None and skipped["imports"] is None  # still run


@slow
def test_a_manifest_of_another_schema_is_a_finding(bundle: Path) -> None:
    (bundle / MANIFEST_NAME).write_text('{"schema": "isolate.manifest/99"}')
    result, report = run_verify(bundle)
    assert result.code == 1
    assert any(f["check"] == "manifest" and "schema" in f["message"]
               for f in report["findings"])


@slow
def test_a_directory_without_a_manifest_is_a_usage_error(bundle: Path) -> None:
    """Decision: no manifest at all means PATH is not a bundle: exit 2."""
    (bundle / MANIFEST_NAME).unlink()
    result = invoke(["verify", bundle])
    assert result.code == 2
    assert f"is not an isolate bundle: it has no {MANIFEST_NAME}" in result.err


@pytest.mark.parametrize("what", ["missing", "text file"])
def test_bad_paths_are_usage_errors(tmp_path: Path, what: str) -> None:
    path = tmp_path / "nothing.tar.zst"
    if what == "text file":
        path.write_text("not an archive\n")
    result = invoke(["verify", path])
    assert result.code == 2, result.output
    assert result.err.startswith("error: ") and "Traceback" not in result.err


@slow
def test_an_unknown_host_is_a_usage_error(tiny: Tiny) -> None:
    result = invoke(["verify", tiny.directory, "--host", "no-such-host"])
    assert result.code == 2
    assert "unknown host profile 'no-such-host'" in result.err


# -- relocation ------------------------------------------------------------------------------


@slow
def test_a_build_path_in_a_pth_file_is_an_error(tiny: Tiny, bundle: Path,
                                                baseline: frozenset[Key]) -> None:
    rel = f"{tiny.site}/planted.pth"
    planted = f"/srv/ci/{tiny.manifest.build_marker}4242/bundle/extra"
    (bundle / rel).write_text(planted + "\n")
    result, report = run_verify(bundle)
    assert result.code == 1
    new = {(f["check"], f["path"]): f["message"] for f in new_findings(baseline, report)}
    assert set(new) == {("integrity", rel), ("relocation", rel)}
    assert new[("relocation", rel)].startswith(".pth file (run at every start) names the "
                                               "build directory")
    assert planted in new[("relocation", rel)]


@slow
def test_a_build_path_in_a_shebang_is_an_error(tiny: Tiny, bundle: Path,
                                               baseline: frozenset[Key]) -> None:
    rel = "bin/planted-tool"
    (bundle / rel).write_text(f"#!/srv/{tiny.manifest.build_marker}1/bin/python3\nprint()\n")
    result, report = run_verify(bundle)
    assert result.code == 1
    mine = [f for f in new_findings(baseline, report) if f["check"] == "relocation"]
    assert [(f["path"], f["message"].split(" names ")[0]) for f in mine] == [(rel, "shebang")]


@slow
def test_an_absolute_rpath_is_an_error(tiny: Tiny, bundle: Path,
                                       baseline: frozenset[Key]) -> None:
    try:
        patchelf = find_patchelf()
    except EnvironmentProblem:
        pytest.skip("patchelf is not installed")
    dynload = sorted((bundle / tiny.stdlib / "lib-dynload").glob("_json*.so"))
    assert dynload, "no _json extension module in lib-dynload"
    target = dynload[0]
    rel = target.relative_to(bundle).as_posix()
    subprocess.run([patchelf, "--force-rpath", "--set-rpath", "/opt/build-host/lib", target],
                   check=True, capture_output=True)
    result, report = run_verify(bundle)
    assert result.code == 1
    new = {(f["check"], f["path"]): f["message"] for f in new_findings(baseline, report)}
    assert set(new) == {("integrity", rel), ("relocation", rel)}
    assert new[("relocation", rel)].startswith(
        "RPATH entry '/opt/build-host/lib' is not $ORIGIN-relative")


# -- ELF closure and hosts -------------------------------------------------------------------


@slow
def test_a_removed_vendored_library_is_an_elf_finding(tiny: Tiny, bundle: Path,
                                                      baseline: frozenset[Key]) -> None:
    if not tiny.manifest.elf.vendored:
        pytest.skip("the test bundle vendors no library")
    lib = next((v for v in tiny.manifest.elf.vendored if v.soname == "libffi.so.8"),
               tiny.manifest.elf.vendored[0])
    (bundle / lib.path).unlink()
    result, report = run_verify(bundle)
    assert result.code == 1
    new = new_findings(baseline, report)
    elf = sorted((f["path"], f["message"]) for f in new if f["check"] == "elf")
    assert [p for p, _m in elf] == sorted(lib.needed_by)
    assert all(m.startswith(f"needs {lib.soname}: it is not in the bundle") for _p, m in elf)
    assert ("error", "integrity", lib.path, "missing (listed in the manifest)") in map(key, new)


@slow
def test_a_musl_host_is_an_error(tiny: Tiny) -> None:
    result, report = run_verify(tiny.directory, "--host", "alpine-3.20")
    assert result.code == 1
    host = [f for f in report["findings"] if f["check"] == "host"]
    assert len(host) == 1 and host[0]["severity"] == "error"
    assert host[0]["message"].startswith("host alpine-3.20 has musl libc 1.2.5; this bundle is "
                                         "linked against glibc")
    assert report["host"] == "alpine-3.20"


@slow
def test_a_host_below_the_glibc_floor_is_an_error(tiny: Tiny) -> None:
    floor = tiny.manifest.elf.glibc_floor
    if floor is None or tuple(map(int, floor.split("."))) <= (2, 28):
        pytest.skip(f"the test bundle's glibc floor ({floor}) runs on RHEL 8")
    result, report = run_verify(tiny.directory, "--host", "rhel-8")
    assert result.code == 1
    assert [(f["path"], f["message"]) for f in report["findings"] if f["check"] == "host"] == [
        (tiny.manifest.elf.glibc_floor_file,
         f"needs glibc {floor} ({tiny.manifest.elf.glibc_floor_symbol}); host rhel-8 has "
         "glibc 2.28")]


@slow
def test_a_host_at_or_above_the_floor_has_no_host_finding(tiny: Tiny) -> None:
    _result, report = run_verify(tiny.directory, "--host", "debian-13")
    assert [f for f in report["findings"] if f["check"] == "host"] == []
    assert any(c["name"] == "host" for c in report["checks"])


# -- isolation and imports -------------------------------------------------------------------


# The interpreter ignores PYTHON* and the user site by itself; without -I the launcher
# still puts the working directory on sys.path.
@slow
@pytest.mark.parametrize(("flags", "expected"), [
    ("-E -s", ["bin/python3 does not start the interpreter in isolated mode (-I)",
               "not isolated: a module in the working directory shadowed the runtime's",
               "sys.path holds the current directory"]),
    ("", ["bin/python3 does not start the interpreter in isolated mode (-I)",
          "not isolated: a module in the working directory shadowed the runtime's"]),
])
def test_a_launcher_without_isolated_mode_is_caught(bundle: Path, baseline: frozenset[Key],
                                                    flags: str, expected: list[str]) -> None:
    launcher = bundle / "bin" / "python3"
    launcher.write_text(launcher.read_text().replace(" -I ", f" {flags} " if flags else " "))
    result, report = run_verify(bundle)
    assert result.code == 1
    iso = [f for f in new_findings(baseline, report) if f["check"] == "isolation"]
    assert all(f["severity"] == "error" for f in iso)
    for text in expected:
        assert any(text in f["message"] for f in iso), (text, iso)


@slow
def test_a_module_that_fails_to_import_is_an_error(tiny: Tiny, bundle: Path,
                                                   baseline: frozenset[Key]) -> None:
    pkg = bundle / tiny.site / "alpha"
    (pkg / "__init__.py").write_text('raise RuntimeError("planted failure")\n')
    shutil.rmtree(pkg / "__pycache__")  # unchecked-hash byte code would hide the change
    result, report = run_verify(bundle)
    assert result.code == 1
    imports = [f for f in new_findings(baseline, report) if f["check"] == "imports"]
    assert [(f["severity"], f["message"]) for f in imports] == [
        ("error", "`import alpha` (alpha) fails: RuntimeError: planted failure")]
    assert imports[0]["path"].endswith("alpha-1.1.dist-info")


@slow
def test_a_missing_optional_dependency_is_a_note(tiny: Tiny, bundle: Path,
                                                 baseline: frozenset[Key]) -> None:
    pkg = bundle / tiny.site / "beta"
    (pkg / "__init__.py").write_text("import isolate_absent_extra\n")
    shutil.rmtree(pkg / "__pycache__")
    _result, report = run_verify(bundle)
    imports = [f for f in new_findings(baseline, report) if f["check"] == "imports"]
    assert [(f["severity"], f["message"]) for f in imports] == [
        ("note", "`import beta` (beta) fails: ModuleNotFoundError: No module named "
                 "'isolate_absent_extra'; isolate_absent_extra is not part of the bundle and "
                 "beta does not declare it: an optional dependency outside the lock")]


@slow
def test_a_missing_required_dependency_is_an_error(tiny: Tiny, bundle: Path,
                                                   baseline: frozenset[Key]) -> None:
    site = bundle / tiny.site
    (site / "alpha" / "__init__.py").write_text("import beta\n")
    shutil.rmtree(site / "alpha" / "__pycache__")
    shutil.rmtree(site / "beta")  # alpha requires beta (Requires-Dist: beta>=1)
    _result, report = run_verify(bundle)
    imports = [f for f in new_findings(baseline, report) if f["check"] == "imports"]
    assert [(f["severity"], f["message"]) for f in imports] == [
        ("error", "`import alpha` (alpha) fails: ModuleNotFoundError: No module named 'beta'")]


@slow
def test_verify_does_not_write_into_the_bundle(tiny: Tiny, bundle: Path) -> None:
    before = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*"))
    run_verify(bundle)
    assert sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*")) == before


# -- units -----------------------------------------------------------------------------------


def test_top_level_modules_from_record() -> None:
    record = "\n".join([
        "pkg/__init__.py,sha256=x,1", "pkg/sub/mod.py,sha256=x,1", "single.py,sha256=x,1",
        "_speedups.cpython-312-x86_64-linux-gnu.so,sha256=x,1", "plain.abi3.so,,",
        "pkg-1.0.dist-info/RECORD,,", "../../bin/tool,sha256=x,1", "README.txt,,",
        "pkg-1.0.data/scripts/x,,", "__editable__.pkg.pth,,",
    ])
    assert _from_record(record) == ["pkg", "pkg", "single", "_speedups", "plain"]


def test_a_finding_has_a_known_severity() -> None:
    with pytest.raises(ValueError, match="severity"):
        Finding(severity="warning", check="integrity", path=None, message="x")



@pytest.mark.parametrize("chunk", [3, 7, 16, 1000])
def test_the_search_counts_each_occurrence_once_across_chunks(chunk: int) -> None:
    data = b"xx/build-1/ab/build-2/..ab..ab/build-"
    search = _Search([b"/build-", b"ab"])
    for start in range(0, len(data), chunk):
        search.feed(data[start:start + chunk], start)
    hits = {h.needle: h for h in search.hits(["build", "ab"])}
    assert hits["build"].count == 3 and hits["build"].offsets == (2, 13, 30)
    assert hits["ab"].count == 3 and hits["ab"].offsets == (11, 24, 28)


@slow
def test_a_sys_executable_that_reads_the_environment_is_caught(tiny: Tiny, bundle: Path,
                                                               baseline: frozenset[Key]) -> None:
    """The bundle's interpreter swapped for the plain CPython it was copied from: children
    started with sys.executable meet PYTHONHOME, PYTHONPATH, ... and verify says so."""
    source = Path(tiny.manifest.interpreter.source.removeprefix("local:"))
    if not source.is_file():
        pytest.skip(f"the bundle's source interpreter is not a local file: {source}")
    exe = bundle / tiny.manifest.interpreter.executable
    exe.unlink()
    shutil.copy(source, exe)
    subprocess.run([str(find_patchelf()), "--force-rpath", "--set-rpath", "$ORIGIN/../lib",
                    str(exe)], check=True)
    result, report = run_verify(bundle)
    assert result.code == 1
    found = [f["message"] for f in new_findings(baseline, report) if f["check"] == "children"]
    rel = tiny.manifest.interpreter.executable
    for how in ("subprocess", "execv"):
        assert any(m.startswith(f"{how}: sys.executable did not start in the hostile "
                                "environment") for m in found), found
        assert f"{how}: sys.executable started without flags reads PYTHON* variables or the " \
               "user site (it is not isolated by itself)" in found
    # multiprocessing forwards the parent's -I: those children were isolated anyway
    assert not [m for m in found if m.startswith(("spawn", "forkserver"))], found
    assert any(f["path"] == rel for f in report["findings"] if f["check"] == "children")


# -- the probe cache ---------------------------------------------------------------------------


def probe_runs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in data["checks"]
            if c["name"] in ("isolation", "children", "imports")}


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ISOLATE_CACHE_DIR", str(cache))
    return cache


@slow
def test_a_second_verify_takes_the_probes_from_the_cache_and_says_so(
        tiny: Tiny, bundle: Path, own_cache: Path) -> None:
    first, data1 = run_verify(bundle)
    assert all(c["cached"] is None for c in probe_runs(data1).values())
    second, data2 = run_verify(bundle)
    assert second.code == first.code
    assert {key(f) for f in data2["findings"]} == {key(f) for f in data1["findings"]}
    for name, c in probe_runs(data2).items():
        assert c["cached"], name
        assert c["seconds"] == 0.0
    text = invoke(["verify", bundle])
    assert "cached: isolation, children, imports passed on" in text.out
    assert "--no-cache" in text.out
    _result, fresh = run_verify(bundle, "--no-cache")
    assert all(c["cached"] is None for c in probe_runs(fresh).values())


@slow
def test_a_tampered_bundle_misses_the_cache_and_fails(tiny: Tiny, bundle: Path,
                                                      own_cache: Path) -> None:
    run_verify(bundle)  # stores the probes' results for the untouched bytes
    target = bundle / tiny.site / "alpha" / "__init__.py"
    target.write_bytes(target.read_bytes() + b"\n# tampered\n")
    result, report = run_verify(bundle)
    assert result.code == 1
    assert any(f["check"] == "integrity" and f["severity"] == "error" and
               f["path"] == f"{tiny.site}/alpha/__init__.py" for f in report["findings"])
    assert all(c["cached"] is None for c in probe_runs(report).values())


@slow
def test_a_forged_cache_entry_cannot_make_a_tampered_bundle_pass(
        tiny: Tiny, bundle: Path, own_cache: Path) -> None:
    run_verify(bundle)
    target = bundle / tiny.site / "alpha" / "__init__.py"
    target.write_bytes(b"raise SystemExit('tampered')\n")
    run_verify(bundle)  # the tampered tree's probes fail: nothing stored for it
    (entry,) = (own_cache / "verify").glob("*.json")
    # forge: claim every probe passed for whatever tree is there now
    forged = json.loads(entry.read_text())
    _r, now = run_verify(bundle, "--no-cache")
    for name in ("isolation", "children", "imports"):
        forged["checks"][name] = {"stored": "2000-01-01T00:00:00Z", "detail": "",
                                  "findings": []}
    forged["key"]["tree"] = "0" * 64
    entry.write_text(json.dumps(forged))
    result, report = run_verify(bundle)
    assert result.code == 1  # integrity is never cached
    assert any(f["check"] == "integrity" and f["severity"] == "error"
               for f in report["findings"])
    assert all(c["cached"] is None for c in probe_runs(report).values())  # another tree
    assert now["ok"] is False


@slow
def test_a_cache_entry_others_can_write_is_ignored(tiny: Tiny, bundle: Path,
                                                   own_cache: Path) -> None:
    run_verify(bundle)
    (entry,) = (own_cache / "verify").glob("*.json")
    entry.chmod(0o666)
    _result, report = run_verify(bundle)
    runs = probe_runs(report)
    assert all(c["cached"] is None for c in runs.values())
    assert all("cache entry ignored" in c["detail"] and "written by others" in c["detail"]
               for c in runs.values())


@slow
def test_an_archive_is_verified_from_its_stream_once_its_probes_are_cached(
        tiny: Tiny, baseline: frozenset[Key], own_cache: Path) -> None:
    first, data1 = run_verify(tiny.archive)
    assert "unpack" in data1["timings"]  # nothing stored yet: unpacked for the probes
    second, data2 = run_verify(tiny.archive)
    assert second.code == first.code
    assert "unpack" not in data2["timings"]
    scan = next(c for c in data2["checks"] if c["name"] == "scan")
    assert "read from the archive stream" in scan["detail"]
    assert all(c["cached"] for c in probe_runs(data2).values())
    assert frozenset(key(f) for f in data2["findings"]) == baseline


@slow
def test_a_tampered_archive_read_from_its_stream_fails(tiny: Tiny, tmp_path: Path,
                                                       own_cache: Path) -> None:
    from isolate.bundle.archive import write_archive

    copy = tmp_path / "copy" / tiny.directory.name
    shutil.copytree(tiny.directory, copy, symlinks=True)
    archive = tmp_path / "a" / f"{copy.name}.tar.zst"
    archive.parent.mkdir()
    write_archive(copy, archive, fmt="tar.zst", root_name=copy.name)
    run_verify(archive)  # the untouched archive: its probes are stored
    target = copy / tiny.site / "alpha" / "__init__.py"
    target.write_bytes(target.read_bytes() + b"\n# tampered\n")
    archive.unlink()
    write_archive(copy, archive, fmt="tar.zst", root_name=copy.name)
    result, report = run_verify(archive)
    assert result.code == 1
    scan = next(c for c in report["checks"] if c["name"] == "scan")
    assert "read from the archive stream" in scan["detail"]
    assert any(f["check"] == "integrity" and f["path"] == f"{tiny.site}/alpha/__init__.py"
               for f in report["findings"])
    assert all(c["cached"] is None for c in probe_runs(report).values())
