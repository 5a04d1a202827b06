"""Reproducibility across controller Pythons: isolate running under CPython 3.10 and 3.13
builds the same lock, for the same target interpreter, into byte-identical archives.

Each controller is a venv with isolate installed in editable mode (from PyPI, pip
configuration ignored), cached under the test cache keyed by pyproject.toml, so reruns
are fast. Each build gets its own empty isolate cache: nothing is shared between them.
Locally a missing interpreter or network skips with the reason; on CI (CI=true) it fails.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import filelock
import pytest

from isolate.interpreters import Discovery
from isolate.proc import Runner
from tests.conftest import REPO, index
from tests.test_offline import assert_same_archives

pytestmark = pytest.mark.slow

ON_CI = os.environ.get("CI") == "true"
CONTROLLERS = ((3, 10), (3, 13))


def _unavailable(reason: str) -> None:
    if ON_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def controller_venv(minor: tuple[int, int], cache_dir: Path) -> Path:
    """A venv of CPython ``minor`` with this checkout installed editable; its python."""
    interp = Discovery(Runner()).by_minor().get(minor)
    if interp is None:
        _unavailable(f"no CPython {minor[0]}.{minor[1]} found (pyenv or PATH) to run isolate "
                     "under")
        raise AssertionError  # not reached
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + str(REPO).encode()
                         + str(interp.path).encode()).hexdigest()[:16]
    tag = f"cp{minor[0]}{minor[1]}"
    base = cache_dir / "controllers"
    home = base / f"{tag}-{key}"
    python = home / "bin" / "python"
    base.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(base / f"{tag}.lock")):
        if (home / ".complete").exists():
            return python
        for old in base.glob(f"{tag}-*"):  # venvs of an older pyproject.toml
            shutil.rmtree(old, ignore_errors=True)
        tmp = base / f".{tag}-{key}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([str(interp.path), "-m", "venv", str(tmp)], check=True, timeout=300,
                       capture_output=True, env=_env())
        done = subprocess.run(
            [str(tmp / "bin" / "python"), "-m", "pip", "install", "-q",
             "--index-url", "https://pypi.org/simple", "-e", str(REPO)],
            capture_output=True, text=True, timeout=900, env=_env())
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            _unavailable(f"cannot install isolate into a CPython {minor[0]}.{minor[1]} venv "
                         f"(no PyPI?): {done.stderr.strip()[-500:]}")
        (tmp / ".complete").touch()
        # The venv's python finds its pyvenv.cfg next to it: a renamed venv still works
        # with `python -m` (its bin/ scripts are not used).
        os.replace(tmp, home)
    return python


def test_controllers_310_and_313_build_byte_identical_archives(
        app_ws: Path, app_wheels: Path, target_python: str, test_cache_dir: Path,
        tmp_path: Path, built: Path) -> None:
    want = tuple(int(p) for p in target_python.split("."))
    target = Discovery(Runner()).find((want[0], want[1]), purpose="as the bundled Python")
    pythons = {minor: controller_venv(minor, test_cache_dir) for minor in CONTROLLERS}
    procs = {}
    for minor, python in pythons.items():
        tag = f"cp{minor[0]}{minor[1]}"
        check = subprocess.run(
            [str(python), "-c", "import sys, isolate; print(sys.version_info[0], "
             "sys.version_info[1], isolate.__file__)"],
            capture_output=True, text=True, timeout=60, env=_env(), cwd=tmp_path)
        assert check.returncode == 0, check.stderr
        major, minor_, where = check.stdout.split()
        assert (int(major), int(minor_)) == minor
        assert Path(where).resolve().is_relative_to(REPO.resolve()), where
        (tmp_path / f"cache-{tag}").mkdir()
        procs[minor] = subprocess.Popen(
            [str(python), "-m", "isolate", "--root", str(app_ws), "bundle", "app",
             "-o", str(tmp_path / f"out-{tag}"), "--format", "tar.gz,tar.zst", "-q",
             "--python", str(target.path), *index(app_wheels)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env=_env(ISOLATE_CACHE_DIR=str(tmp_path / f"cache-{tag}")))
    for minor, proc in procs.items():
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"under {minor}: {out}{err}"
    first, second = (tmp_path / f"out-cp{m[0]}{m[1]}" for m in CONTROLLERS)
    assert_same_archives(first, second)
    # and the same as the in-process build of this test run's controller
    if sys.version_info[:2] not in CONTROLLERS:
        assert_same_archives(first, built)
