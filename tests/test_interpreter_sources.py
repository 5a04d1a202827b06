"""Where the bundled CPython comes from: Debian's system interpreter, and a
python-build-standalone ``install_only`` archive.

No python-build-standalone archive can be downloaded here (no network but PyPI), so the
archive test BUILDS one in that layout (``python/bin``, ``python/lib/libpython*.so``,
``python/lib/pythonX.Y``, RUNPATH ``$ORIGIN/../lib``) from a local shared-libpython
CPython, to exercise the unpacking path. It is not a real python-build-standalone build.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from isolate.bundle import isolated_main
from isolate.bundle.elf import read_elf
from isolate.bundle.elf_closure import find_patchelf
from isolate.bundle.interpreter import describe
from isolate.interpreters import Discovery
from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.proc import Runner
from tests.conftest import (
    CHILDREN_PROBE,
    TARGET,
    Result,
    assert_children_isolated,
    bundle_dir,
    index,
)

PROFILE = 'name = "app"\npython = "{python}"\nrequirements = ["alpha"]\n' + TARGET


def workspace(tmp: Path, python: str, wheels: Path,
              run_isolate: Callable[..., Result]) -> Path:
    ws = tmp / "ws"
    (ws / "profiles" / "runtimes").mkdir(parents=True)
    (ws / "profiles" / "runtimes" / "app.toml").write_text(PROFILE.format(python=python))
    r = run_isolate("--root", ws, "lock", "app", *index(wheels))
    assert r.code == 0, r.output
    return ws


def check_bundle(out: Path, tmp: Path, run_isolate: Callable[..., Result]) -> Manifest:
    b = bundle_dir(out)
    moved = tmp / "moved here" / b.name
    moved.parent.mkdir()
    shutil.copytree(b, moved, symlinks=True)
    r = subprocess.run([moved / "bin" / "python3", "-c",
                        "import alpha, ssl, sqlite3, sys; print(alpha.__file__); print(sys.prefix)"],
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert r.returncode == 0, r.stderr
    alpha_file, prefix = r.stdout.split("\n")[:2]
    assert alpha_file.startswith(str(moved)) and prefix == str(moved / "python")
    v = run_isolate("verify", moved)
    assert v.code == 0, v.output
    m = Manifest.loads((moved / MANIFEST_NAME).read_text())
    xy = ".".join(m.interpreter.version.split(".")[:2])
    assert_children_isolated([moved / "bin" / "python3", CHILDREN_PROBE], tmp / "children", xy)
    return m


def test_debian_system_interpreter(tmp_path: Path, app_wheels: Path,
                                   run_isolate: Callable[..., Result]) -> None:
    found = sorted(Path("/usr/bin").glob("python3.[0-9]*"))
    found = [p for p in found if p.name.count(".") == 1 and Path(
        f"/usr/lib/{p.name}/lib-dynload").is_dir()]
    if not found:
        pytest.skip("no Debian system CPython in /usr/bin")
    exe = found[-1]
    python = exe.name.removeprefix("python")
    ws = workspace(tmp_path, python, app_wheels, run_isolate)
    out = tmp_path / "out"
    r = run_isolate("--root", ws, "bundle", "app", "--python", exe, "-o", out, "--format",
                    "dir", "-q", *index(app_wheels))
    assert r.code == 0, r.output
    m = check_bundle(out, tmp_path, run_isolate)
    assert m.interpreter.source == f"local:{exe}"
    # Debian's site.py looks in dist-packages: isolate installs where the copy looks
    assert m.interpreter.site_packages.endswith(("dist-packages", "site-packages"))
    # Debian's python is linked statically to libpython, and so is what replaces it
    assert m.interpreter.isolated == "embedded-main"
    exe_in_bundle = bundle_dir(out) / m.interpreter.executable
    assert not any(n.startswith("libpython") for n in read_elf(exe_in_bundle).needed)


def make_install_only_archive(interp: Path, version: str, dest: Path,
                              libdir: Path | None = None) -> Path:
    """A python-build-standalone style install_only archive made from ``interp`` (whose
    installation's ``lib`` is ``libdir``, by default next to its ``bin``)."""
    prefix = libdir.parent if libdir else interp.parent.parent
    xy = ".".join(version.split(".")[:2])
    stage = dest / "stage" / "python"
    (stage / "bin").mkdir(parents=True)
    shutil.copy(interp, stage / "bin" / f"python{xy}")
    (stage / "bin" / "python3").symlink_to(f"python{xy}")
    (stage / "lib").mkdir()
    lib = prefix / "lib" / f"libpython{xy}.so.1.0"
    shutil.copy(lib, stage / "lib" / lib.name)
    shutil.copytree(prefix / "include", stage / "include")  # as install_only archives have
    shutil.copytree(prefix / "lib" / f"python{xy}", stage / "lib" / f"python{xy}",
                    ignore=shutil.ignore_patterns("test", "site-packages", "__pycache__",
                                                  "config-*", "idlelib", "tkinter"))
    subprocess.run([str(find_patchelf()), "--set-rpath", "$ORIGIN/../lib",
                    str(stage / "bin" / f"python{xy}")], check=True)
    archive = dest / f"cpython-{version}+test-x86_64-unknown-linux-gnu-install_only.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(stage, arcname="python")
    return archive


@pytest.mark.slow
def test_python_build_standalone_layout_archive(tmp_path: Path, app_wheels: Path,
                                                run_isolate: Callable[..., Result]) -> None:
    shared = [i for i in Discovery(Runner()).by_minor().values() if i.minor >= (3, 9)
              and (i.prefix / "lib" / f"libpython{i.minor_text}.so.1.0").exists()]
    if not shared:
        pytest.skip("needs a shared-libpython CPython 3.9+ (pyenv builds are)")
    interp = shared[-1]
    archive = make_install_only_archive(interp.path, interp.version_text, tmp_path)
    ws = workspace(tmp_path, interp.minor_text, app_wheels, run_isolate)
    out = tmp_path / "out"
    r = run_isolate("--root", ws, "bundle", "app", "--python", archive, "-o", out,
                    "--format", "dir", "-q", *index(app_wheels))
    assert r.code == 0, r.output
    m = check_bundle(out, tmp_path, run_isolate)
    assert m.interpreter.source == f"archive:{archive.name}"
    assert m.interpreter.version == interp.version_text
    assert m.interpreter.isolated == "embedded-main"


@pytest.mark.slow
def test_an_interpreter_isolated_by_itself_is_kept(tmp_path: Path, app_wheels: Path,
                                                  run_isolate: Callable[..., Result]) -> None:
    """A CPython whose own main() ignores PYTHON* and the user site (as isolate's
    source-built CPython's does) is bundled as it is, and says so in the manifest."""
    shared = [i for i in Discovery(Runner()).by_minor().values() if i.minor >= (3, 9)
              and (i.prefix / "lib" / f"libpython{i.minor_text}.so.1.0").exists()]
    if not shared:
        pytest.skip("needs a shared-libpython CPython 3.9+ (pyenv builds are)")
    interp = shared[-1]
    runner = Runner()
    src = describe(runner, interp.path, source="test")
    program, _ = isolated_main.build_program(
        src, interp.prefix, compiler=isolated_main.find_compiler(runner),
        cache=tmp_path / "cache", runner=runner)
    archive = make_install_only_archive(program, interp.version_text, tmp_path,
                                        libdir=interp.prefix / "lib")
    ws = workspace(tmp_path, interp.minor_text, app_wheels, run_isolate)
    out = tmp_path / "out"
    r = run_isolate("--root", ws, "bundle", "app", "--python", archive, "-o", out,
                    "--format", "dir", "-q", *index(app_wheels))
    assert r.code == 0, r.output
    m = check_bundle(out, tmp_path, run_isolate)
    assert m.interpreter.isolated == "built-in"


def test_an_archive_that_is_not_install_only(tmp_path: Path, app_wheels: Path,
                                            target_python: str,
                                            run_isolate: Callable[..., Result]) -> None:
    bogus = tmp_path / "cpython-bogus-install_only.tar.gz"
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "README").write_text("not python\n")
    with tarfile.open(bogus, "w:gz") as tf:
        tf.add(tmp_path / "stuff", arcname="python")
    ws = workspace(tmp_path, target_python, app_wheels, run_isolate)
    r = run_isolate("--root", ws, "bundle", "app", "--python", bogus, "-o", tmp_path / "out",
                    *index(app_wheels))
    assert r.code == 2, r.output
    assert "not a python-build-standalone install_only archive" in r.err
