"""isolate.nox: a project's noxfile gets lock, bundle, matrix(host=...) and report sessions.

The sample project is tests/apps/nox-project; nox runs as a real subprocess on a copy."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from isolate.interpreters import Discovery
from isolate.proc import Completed, Runner, clean_env
from tests.conftest import TARGET, index, require

PROJECT = Path(__file__).parent / "apps" / "nox-project"


def nox(project: Path, *args: str) -> Completed:
    return Runner().run([sys.executable, "-m", "nox", "-f", project / "noxfile.py",
                         "--envdir", project / ".nox", *args],
                        env=clean_env(keep=("ISOLATE_CACHE_DIR",)), cwd=project, timeout=600,
                        check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "nox-project"
    shutil.copytree(PROJECT, copy)
    return copy


def test_register_defines_the_sessions_from_the_host_ids(project: Path) -> None:
    done = nox(project, "-l", "--json")
    assert done.ok, done.tail()
    sessions = {s["session"]: s for s in json.loads(done.stdout)}
    assert list(sessions) == ["lock", "bundle", "matrix(host='local-3.12')",
                              "matrix(host='local-3.13')", "report"]
    assert sessions["matrix(host='local-3.13')"]["call_spec"] == {"host": "local-3.13"}
    assert all(s["description"] for s in sessions.values())


def test_report_session_without_results_says_run_the_matrix(project: Path) -> None:
    done = nox(project, "-s", "report")
    assert not done.ok
    assert "no results in results/" in done.stderr


def test_lock_session_locks_and_checks(project: Path, wheelhouse: Path,
                                       target_python: str) -> None:
    profile = project / "profiles" / "runtimes" / "tiny.toml"
    profile.write_text(profile.read_text().replace('"3.12"', f'"{target_python}"'))
    done = nox(project, "-s", "lock", "--", *index(wheelhouse))
    assert done.ok, done.tail()
    assert (project / "constraints" / "tiny.txt").read_text().count("--hash=sha256:") >= 2
    done = nox(project, "-s", "lock", "--", "--check", *index(wheelhouse))
    assert done.ok, done.tail()
    assert "fresh" in done.stdout + done.stderr


def test_register_needs_hosts() -> None:
    import isolate.nox

    with pytest.raises(ValueError, match="at least one host"):
        isolate.nox.register(runtime="x", hosts=[])


@pytest.mark.slow
def test_the_sessions_run_in_the_order_of_the_documented_workflow(
        project: Path, wheelhouse: Path, target_python: str) -> None:
    """README's GitHub Actions workflow: lock --check and bundle, then each matrix(host=...)
    on the bundle job's out/ (archives only, as an artifact keeps them), then report."""
    found = Discovery(Runner()).by_minor()
    require((3, 12) in found and (3, 13) in found, "needs CPython 3.12 and 3.13 (the hosts)")
    profile = project / "profiles" / "runtimes" / "tiny.toml"
    profile.write_text(profile.read_text().replace('"3.12"', f'"{target_python}"') + TARGET)
    for args in (["lock"], ["lock", "--check"], ["bundle"]):
        done = nox(project, "-s", args[0], "--", *args[1:], *index(wheelhouse))
        assert done.ok, done.tail()
    out = project / "out"
    for p in out.iterdir():  # the artifact of the bundle job: files, no directories
        if p.is_dir():
            shutil.rmtree(p)
    assert [p.name for p in out.glob("*.tar.zst")]
    for host in ("local-3.12", "local-3.13"):
        done = nox(project, "-s", f"matrix(host='{host}')")
        assert done.ok, done.tail()
        assert (project / "results" / f"{host}.json").is_file()
    done = nox(project, "-s", "report")
    assert done.ok, done.tail()
    results = project / "results"
    assert {"report.html", "report.md", "junit.xml"} <= {p.name for p in results.iterdir()}
    assert "2 passed" in (results / "report.md").read_text()


def test_the_matrix_takes_the_bundle_archive_not_its_tests_overlay(tmp_path: Path) -> None:
    import os

    import isolate.nox

    bundle = tmp_path / "app-1.0-cp312-manylinux_2_17_x86_64.tar.zst"
    overlay = tmp_path / "app-1.0-cp312-manylinux_2_17_x86_64.tests.tar.zst"
    for n, p in enumerate((bundle, overlay)):  # the overlay is written last
        p.write_bytes(b"")
        os.utime(p, (1000 + n, 1000 + n))
    assert isolate.nox.newest_archive(tmp_path) == bundle
    (tmp_path / "latest.txt").write_text("app-1.0-cp312-manylinux_2_17_x86_64\n")
    assert isolate.nox.newest_archive(tmp_path) == bundle
    (tmp_path / "latest.txt").write_text("app-2.0-cp312-manylinux_2_17_x86_64\n")
    with pytest.raises(FileNotFoundError, match="has no archive of it"):
        isolate.nox.newest_archive(tmp_path)
