"""isolate.nox: a project's noxfile gets lock, bundle, matrix(host=...) and report sessions.

The sample project is tests/apps/nox-project; nox runs as a real subprocess on a copy."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from isolate.proc import Completed, Runner, clean_env
from tests.conftest import index

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
