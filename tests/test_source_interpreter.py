"""The real source-built CPython 3.13 (`isolate python build 3.13`): its floor, its
libraries, its own test suite, relocation and isolation.

The first build takes about 10-15 minutes on 2 cores and is cached (the Nova build of
tests/test_nova_e2e.py shares it). Needs Debian's archive for the sources; on CI a
missing prerequisite fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from isolate.bundle import elf
from isolate.pybuild.build import tree_digest
from tests.conftest import REPO, debian_archive_reachable, invoke

pytestmark = pytest.mark.slow
ON_CI = os.environ.get("CI") == "true"
GLIBC_LIBS = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
              "libutil.so.1", "ld-linux-x86-64.so.2"}


@pytest.fixture(scope="module")
def built() -> dict[str, object]:
    if not debian_archive_reachable():
        if ON_CI:
            pytest.fail("CI must reach Debian's archive for the CPython sources")
        pytest.skip("needs Debian's archive for the CPython sources")
    r = invoke(["--root", REPO, "python", "build", "3.13", "--json"])
    assert r.code == 0, r.output
    info: dict[str, object] = json.loads(r.out)
    return info


def _home(info: dict[str, object]) -> Path:
    return Path(os.environ["ISOLATE_CACHE_DIR"]) / "interpreters" / str(
        info["dir_name"]) / "python"


def test_floor_is_glibc_2_17_and_only_glibc_is_needed(built: dict[str, object]) -> None:
    assert built["glibc_target"] == "2.17"
    floor = tuple(int(p) for p in str(built["glibc_floor"]).split("."))
    assert floor <= (2, 17)
    assert set(built["needed"]) <= GLIBC_LIBS  # type: ignore[arg-type]
    files = [elf.read_elf(p) for p in elf.iter_elf_files(_home(built))]
    assert len(files) == built["elf_files"] and len(files) > 50
    assert max((f.glibc_max or (0,)) for f in files) <= (2, 17)


def test_cpythons_own_tests_passed_and_were_counted(built: dict[str, object]) -> None:
    tests = built["selftest"]
    assert isinstance(tests, dict)
    assert tests["failed"] == 0 and tests["result"] == "SUCCESS", tests["tail"]
    assert tests["run"] > 3000, tests
    assert "test_ssl" in tests["modules"] and "test_sqlite3" in tests["modules"]


def test_the_cached_tree_is_what_build_info_says(built: dict[str, object]) -> None:
    assert tree_digest(_home(built)) == built["tree_sha256"]


def test_moved_elsewhere_it_runs_with_its_pinned_libraries_and_ignores_the_env(
        built: dict[str, object], tmp_path: Path) -> None:
    dest = tmp_path / "moved here"
    shutil.copytree(_home(built), dest, symlinks=True)
    poison = tmp_path / "poison"
    poison.mkdir()
    (poison / "json.py").write_text("raise SystemExit('poisoned json imported')\n")
    (poison / "sitecustomize.py").write_text("raise SystemExit('poisoned sitecustomize')\n")
    code = ("import json, ssl, sqlite3, lzma, bz2, zlib, ctypes, decimal, uuid, pyexpat, sys\n"
            "print(json.dumps([ssl.OPENSSL_VERSION, sqlite3.sqlite_version, sys.prefix,"
            " sys.flags.ignore_environment, sys.flags.no_user_site, pyexpat.EXPAT_VERSION,"
            " decimal.__libmpdec_version__]))\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(poison), "PYTHONHOME": "/nonexistent",
           "PYTHONSTARTUP": str(poison / "json.py"), "PYTHONUSERBASE": str(poison)}
    r = subprocess.run([dest / "bin" / "python3.13", "-c", code], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    openssl, sqlite, prefix, ignore_env, no_user_site, expat, mpdec = json.loads(r.stdout)
    sources = built["sources"]
    assert isinstance(sources, dict)
    assert sources["openssl"]["version"] in openssl
    assert sqlite == sources["sqlite"]["version"]
    assert expat.endswith(sources["expat"]["version"])
    assert mpdec == sources["mpdecimal"]["version"]
    assert prefix == str(dest)
    assert ignore_env == 1 and no_user_site == 1


def test_python_list_shows_the_cached_build(built: dict[str, object]) -> None:
    r = invoke(["--root", REPO, "python", "list"])
    assert r.code == 0
    assert "3.13" in r.out and "cached at" in r.out
