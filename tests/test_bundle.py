"""isolate bundle on a small runtime made of wheels the tests build: fast, offline."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from isolate import hostile_env
from isolate.bundle.elf import read_elf
from isolate.model.manifest import MANIFEST_NAME, Manifest
from tests.conftest import (
    CHILDREN_PROBE,
    MACHINE_GLIBC,
    Result,
    app_profile,
    assert_children_isolated,
    build_wheel,
    bundle_dir,
    index,
)


def run(argv: list[str | Path], env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_bundle_layout_and_manifest(built: Path, app_ws: Path, target_python: str) -> None:
    b = bundle_dir(built)
    xy = target_python.replace(".", "")
    assert b.name.startswith(f"app-1.1-cp{xy}-manylinux_2_")  # alpha 1.1 is the app
    m = Manifest.loads((b / MANIFEST_NAME).read_text())
    assert m.runtime == "app" and m.version == "1.1"
    assert {"alpha", "tool", "beta"} <= {d.name for d in m.distributions}
    assert "gamma" not in {d.name for d in m.distributions}  # test-only: in the overlay
    assert m.scripts == ("tool", "tool-children")
    assert m.interpreter.isolated == "embedded-main"
    assert any(p.startswith("stdlib/test") for p in m.interpreter.pruned)
    assert any(p.startswith("stdlib/idlelib") for p in m.interpreter.pruned)
    assert m.elf.glibc_floor is not None and m.elf.glibc_floor_file
    listed = {f.path for f in m.files}
    assert "bin/tool" in listed and "bin/python3" in listed
    on_disk = {p.relative_to(b).as_posix() for p in b.rglob("*")
               if (p.is_file() or p.is_symlink()) and p.name != MANIFEST_NAME}
    assert listed == on_disk
    # the lock's hashes are what was installed
    lock = (app_ws / "constraints" / "app.txt").read_text()
    for d in m.distributions:
        assert d.sha256 in lock, d
    overlay = built / f"{b.name}.tests"
    assert list(overlay.glob("site-packages/gamma*"))


def test_launcher_runs_moved_through_symlink_with_spaces_and_hostile_env(
        built: Path, tmp_path: Path, target_python: str) -> None:
    b = bundle_dir(built)
    moved = tmp_path / "a dir with spaces" / "rt"
    moved.parent.mkdir()
    shutil.copytree(b, moved, symlinks=True)
    link = tmp_path / "tool-link"
    link.symlink_to(moved / "bin" / "tool")
    host = Path(shutil.which(f"python{target_python}") or "/usr/bin/python3")
    hostile = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "PYTHONPATH": str(tmp_path / "shadow"),
        "PYTHONHOME": str(host.parent.parent),
        "PYTHONSTARTUP": str(tmp_path / "startup.py"),
        "LD_LIBRARY_PATH": str(host.parent.parent / "lib"),
        "LC_ALL": "C",
    }
    (tmp_path / "shadow").mkdir()
    (tmp_path / "shadow" / "alpha.py").write_text("raise SystemExit('shadow imported')\n")
    (tmp_path / "startup.py").write_text("raise SystemExit('startup ran')\n")
    for argv in ([moved / "bin" / "tool"], [link]):
        r = run(argv, env=hostile, cwd=tmp_path / "shadow")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[:2] == ["tool", "1.1"]
        assert r.stdout.split(" ", 2)[2].strip() == str(moved / "python")
    r = run([moved / "bin" / "python3", "-c",
             "import sys, json, ssl, sqlite3, ctypes, hashlib; print(json.dumps(sys.path))"],
            env=hostile)
    assert r.returncode == 0, r.stderr
    assert all(p.startswith(str(moved)) for p in json.loads(r.stdout))


def test_children_of_the_runtime_ignore_every_hostile_variable(built: Path, tmp_path: Path,
                                                                target_python: str) -> None:
    """sys.executable started by subprocess -c, multiprocessing spawn and forkserver and
    os.execv, from bin/python3 and from a console script: the same with every hostile
    variable set as without."""
    b = bundle_dir(built)
    moved = tmp_path / "moved here" / "rt"
    shutil.copytree(b, moved, symlinks=True)
    assert_children_isolated([moved / "bin" / "python3", CHILDREN_PROBE], tmp_path / "script",
                             target_python)
    assert_children_isolated([moved / "bin" / "tool-children"], tmp_path / "console",
                             target_python)


def test_sys_executable_started_bare_ignores_the_environment(built: Path, tmp_path: Path,
                                                             target_python: str) -> None:
    """What the issue saw: PYTHONHOME=/nonexistent killed a child, PYTHONPATH reached it."""
    b = bundle_dir(built)
    exe = b / "python" / "bin" / f"python{target_python}"
    planted = hostile_env.plant(tmp_path / "env", versions=[target_python])
    code = "import sys, colorsys; print(sys.flags.ignore_environment, colorsys.__file__)"
    for env in ({**planted.env, "PYTHONHOME": "/nonexistent"}, planted.env):
        r = run([exe, "-c", code], env={"PATH": "/usr/bin:/bin", **env}, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        flag, where = r.stdout.split()
        assert flag == "1" and where.startswith(str(b / "python")), r.stdout
    assert planted.ran() == []
    # linked against the bundled libpython, found through $ORIGIN only
    info = read_elf(exe)
    assert info.rpath == ("$ORIGIN/../lib",) and not info.runpath
    assert any(n.startswith("libpython") for n in info.needed)


def test_build_path_appears_in_no_file(built: Path) -> None:
    b = bundle_dir(built)
    build_dir = re.compile(re.escape(str(built).encode()) + rb"|\.isolate-build-\d")
    for p in b.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert not build_dir.search(p.read_bytes()), p


def test_two_builds_give_identical_archives(built: Path, app_ws: Path, app_wheels: Path,
                                            tmp_path: Path,
                                            run_isolate: Callable[..., Result]) -> None:
    out2 = tmp_path / "second"
    r = run_isolate("--root", app_ws, "bundle", "app", "-o", out2, "--format", "tar.gz,tar.zst",
                    "-q", *index(app_wheels))
    assert r.code == 0, r.output
    for fmt in ("tar.gz", "tar.zst"):
        (a,) = [p for p in built.glob(f"*.{fmt}") if ".tests." not in p.name]
        (c,) = [p for p in out2.glob(f"*.{fmt}") if ".tests." not in p.name]
        assert a.name == c.name
        assert a.read_bytes() == c.read_bytes(), fmt
        assert (a.parent / f"{a.name}.sha256").read_text().split()[0] == \
            (c.parent / f"{c.name}.sha256").read_text().split()[0]


def _tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Every file's bytes (a symlink's target) and mode below ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if p.is_symlink():
            out[p.relative_to(root).as_posix()] = (os.readlink(p), st.st_mode)
        elif p.is_file():
            data = hashlib.sha256(p.read_bytes()).hexdigest()
            out[p.relative_to(root).as_posix()] = (data, st.st_mode)
    return out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_a_warm_build_parses_no_elf_file_and_a_damaged_cache_changes_nothing(
        run_isolate: Callable[..., Result], tmp_path: Path, target_python: str,
        wheelhouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ELF closure's facts come from the ELF cache by content, the sha256 of the files
    placed from the store taken from the store; a damaged entry is parsed again."""
    from isolate.bundle import build, elf, elf_closure
    from isolate.bundle.elf_cache import ElfCache

    so = tmp_path / "_speed.so"
    src = tmp_path / "speed.c"
    src.write_text("#include <string.h>\nsize_t speed(const char *s) { return strlen(s); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    wh = tmp_path / "wh"
    shutil.copytree(wheelhouse, wh)
    build_wheel(wh, "native", "1.0", extra={"native/_speed.so": so.read_bytes()})
    ws = tmp_path / "ws"
    (ws / "profiles" / "runtimes").mkdir(parents=True)
    (ws / "profiles" / "runtimes" / "nat.toml").write_text(
        f'name = "nat"\npython = "{target_python}"\nrequirements = ["native"]\n'
        f'[target]\nglibc = "{MACHINE_GLIBC}"\n')
    r = run_isolate("--root", ws, "lock", "nat", *index(wh))
    assert r.code == 0, r.output

    elf_dir = tmp_path / "elf"  # this test's own: the shared test cache is left alone
    monkeypatch.setattr(build, "ElfCache", lambda _directory: ElfCache(elf_dir))
    parsed: list[Path] = []
    real_parse = elf._parse

    def counting(path: Path, obj: object) -> elf.ElfFile:
        parsed.append(path)
        return real_parse(path, obj)

    monkeypatch.setattr(elf, "_parse", counting)
    hashed: list[str] = []
    real_sha256 = elf_closure.hashlib.sha256

    class Spy:
        @staticmethod
        def sha256(data: bytes) -> Any:
            hashed.append(real_sha256(data).hexdigest())
            return real_sha256(data)

    monkeypatch.setattr(elf_closure, "hashlib", Spy)

    def bundle(name: str) -> tuple[Path, list[str], str]:
        parsed.clear()
        r = run_isolate("--root", ws, "bundle", "nat", "-o", tmp_path / name, "--format", "dir",
                        *index(wh))
        assert r.code == 0, r.output
        out = tmp_path / name  # built in out/.isolate-build-PID/bundle, then published
        return bundle_dir(out), [Path(*p.relative_to(out).parts[2:]).as_posix()
                                 for p in parsed if p.is_relative_to(out)], r.output

    cold, cold_parsed, _ = bundle("cold")
    (speed,) = cold.glob("python/lib/*/site-packages/native/_speed.so")
    speed_rel = speed.relative_to(cold).as_posix()
    assert speed_rel in cold_parsed and "python/bin/python" + target_python in cold_parsed
    # the store knows the wheel's file: the closure never hashed it
    assert hashlib.sha256(speed.read_bytes()).hexdigest() not in hashed
    assert hashed  # the interpreter's files, copied, not placed from the store

    warm, warm_parsed, output = bundle("warm")
    assert warm_parsed == []  # (the source interpreter is read before, outside the bundle)
    # (the local interpreter's own libraries are vendored and patched here: libcrypt ...)
    assert re.search(r"elf closure: \d+ ELF files, \d+ patched, \d+ vendored; ELF facts "
                     r"[1-9]\d* from the cache, 0 parsed elf", " ".join(output.split()))
    assert _tree_digest(warm) == _tree_digest(cold)

    for entry in elf_dir.glob("*/*.json"):
        data = json.loads(entry.read_text())
        data["facts"].update(needed=["libforged.so.1"], rpath=["/forged"])
        entry.write_text(json.dumps(data))
    damaged, damaged_parsed, output = bundle("damaged")
    assert sorted(damaged_parsed) == sorted(cold_parsed)
    assert "does not match its checksum" in output
    assert _tree_digest(damaged) == _tree_digest(cold)


# -- bad input ----------------------------------------------------------------------------


def test_unknown_runtime(run_isolate: Callable[..., Result], app_ws: Path) -> None:
    r = run_isolate("--root", app_ws, "bundle", "nope")
    assert r.code == 2
    assert "unknown runtime profile 'nope'" in r.err


def test_missing_lock_says_run_isolate_lock(run_isolate: Callable[..., Result], tmp_path: Path,
                                            target_python: str) -> None:
    (tmp_path / "profiles" / "runtimes").mkdir(parents=True)
    (tmp_path / "profiles" / "runtimes" / "app.toml").write_text(app_profile(target_python))
    r = run_isolate("--root", tmp_path, "bundle", "app", "-o", tmp_path / "out")
    assert r.code == 2, r.output
    assert "does not exist" in r.err and "isolate lock app" in r.err
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_stale_lock_is_refused(run_isolate: Callable[..., Result], app_ws: Path,
                               tmp_path: Path, target_python: str) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(app_ws, ws)
    prof = ws / "profiles" / "runtimes" / "app.toml"
    prof.write_text(prof.read_text().replace('["alpha", "tool"]', '["alpha", "tool", "beta"]'))
    r = run_isolate("--root", ws, "bundle", "app", "-o", tmp_path / "out")
    assert r.code == 2, r.output
    assert "stale" in r.err and "added beta" in r.err and "isolate lock app" in r.err


def test_python_source_of_the_wrong_version(run_isolate: Callable[..., Result], app_ws: Path,
                                            tmp_path: Path, target_python: str,
                                            app_wheels: Path) -> None:
    from isolate.interpreters import Discovery
    from isolate.proc import Runner

    other = [i for m, i in Discovery(Runner()).by_minor().items()
             if f"{m[0]}.{m[1]}" != target_python and m >= (3, 8)]
    if not other:
        pytest.skip("needs a second CPython 3.8+")
    r = run_isolate("--root", app_ws, "bundle", "app", "-o", tmp_path / "out", "--python",
                    other[0].path, *index(app_wheels))
    assert r.code == 2, r.output
    assert f"asks for {target_python}" in r.err
    r = run_isolate("--root", app_ws, "bundle", "app", "-o", tmp_path / "out", "--python",
                    tmp_path / "no-such-python")
    assert r.code == 2 and "no such file" in r.err


def test_no_interpreter_of_the_profile_version(run_isolate: Callable[..., Result], app_ws: Path,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PYENV_ROOT", str(empty))
    monkeypatch.setenv("PATH", str(empty))
    # ... and no interpreter that isolate built from source in its cache either
    monkeypatch.setenv("ISOLATE_CACHE_DIR", str(empty))
    r = run_isolate("--root", app_ws, "bundle", "app", "-o", tmp_path / "out")
    assert r.code == 3, r.output
    assert "no CPython" in r.err and "found: none" in r.err and "pyenv install" in r.err


def test_hash_mismatch_names_the_package_and_installs_nothing(
        run_isolate: Callable[..., Result], app_ws: Path, app_wheels: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOLATE_CACHE_DIR", str(tmp_path / "cache"))
    evil = tmp_path / "evil"
    shutil.copytree(app_wheels, evil)
    (alpha,) = [p for p in evil.glob("alpha-*.whl") if p.name.startswith("alpha-1.1")]
    data = bytearray(alpha.read_bytes())
    data[-30] ^= 0xFF
    alpha.write_bytes(bytes(data))
    out = tmp_path / "out"
    r = run_isolate("--root", app_ws, "bundle", "app", "-o", out, *index(evil))
    assert r.code == 2, r.output
    assert "hash mismatch for alpha==1.1" in r.err and "expected" in r.err and "got" in r.err
    assert [p.name for p in out.iterdir()] in ([], [".isolate-build.lock"])


def test_no_wheel_for_the_target(run_isolate: Callable[..., Result], tmp_path: Path,
                                 target_python: str, wheelhouse: Path) -> None:
    xy = target_python.replace(".", "")
    wh = tmp_path / "wh"
    shutil.copytree(wheelhouse, wh)
    build_wheel(wh, "native", "1.0", tag=f"cp{xy}-cp{xy}-manylinux_2_28_x86_64")
    ws = tmp_path / "ws"
    (ws / "profiles" / "runtimes").mkdir(parents=True)
    (ws / "profiles" / "runtimes" / "nat.toml").write_text(
        f'name = "nat"\npython = "{target_python}"\nrequirements = ["native"]\n'
        '[target]\nglibc = "2.17"\n')
    # pip-tools resolves for this machine and locks it (uv, the default, resolves for the
    # target and refuses at lock time already: tests/test_lock.py)
    r = run_isolate("--root", ws, "lock", "nat", "--backend", "pip-tools", *index(wh))
    assert r.code == 0, r.output
    r = run_isolate("--root", ws, "bundle", "nat", "-o", tmp_path / "out", *index(wh))
    assert r.code == 2, r.output
    assert "no wheel for native==1.0 fits the target" in r.err and "glibc 2.17" in r.err


def test_unwritable_output(run_isolate: Callable[..., Result], app_ws: Path,
                           tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run_isolate("--root", app_ws, "bundle", "app", "-o", blocker / "out")
    assert r.code == 2, r.output
    assert "cannot create output directory" in r.err


def test_interrupted_build_keeps_previous_output(built: Path) -> None:
    """A leftover build directory (a killed build) is removed by the next build, and
    the published output is never a partial one: see test_two_builds... for the rename."""
    leftovers = list(built.glob(".isolate-build-*"))
    assert leftovers == []
    assert os.access(bundle_dir(built) / MANIFEST_NAME, os.R_OK)


# -- in a Debian root filesystem -------------------------------------------------------------


def test_rootfs_cells_get_the_hostile_environment(built: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The rootfs executor passes isolate.hostile_env's variables into bubblewrap."""
    from isolate.matrix import execute
    from isolate.matrix.plan import PlannedCell
    from isolate.model.profiles import HostProfile, Libc, Provision
    from isolate.proc import Completed, Runner

    seen: list[list[str]] = []

    class Recording(Runner):
        def run(self, argv, **kwargs):  # type: ignore[no-untyped-def,override]
            seen.append([str(a) for a in argv])
            return Completed(argv=tuple(seen[-1]), returncode=1, stdout="", stderr="",
                             seconds=0.0)

    monkeypatch.setattr(execute, "missing_tools", lambda: [])
    monkeypatch.setattr(execute, "ensure_rootfs", lambda spec, runner: tmp_path / "rootfs")
    host = HostProfile(id="debian-12", name="Debian 12", distro="debian", release="12",
                       arch="x86_64", python=None, libc=Libc(family="glibc", version="2.36"),
                       provision=Provision(method="debootstrap", suite="bookworm"))
    cell = PlannedCell(host=host, executor="rootfs", prediction=None)  # type: ignore[arg-type]
    b = bundle_dir(built)
    bundle = execute.open_bundle(b)
    execute.CellRunner(runner=Recording(), bundle=bundle, work=tmp_path / "work",
                       timeout=60).run(cell)
    (argv,) = seen
    env = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "--setenv"}
    for name in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE",
                 "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONBREAKPOINT"):
        assert name in env, name
    assert env["PYTHONPATH"].startswith("/opt/isolate/work/")
    assert argv[argv.index("--chdir") + 1] == "/opt/isolate/work/hostile/cwd"


@pytest.mark.slow
def test_children_of_the_runtime_are_isolated_in_a_debian_rootfs(
        built: Path, tmp_path: Path, target_python: str) -> None:
    """The same script as above, in a Debian 12 minbase root filesystem (no Python of its
    own) under bubblewrap, with and without every hostile variable."""
    from isolate.proc import Runner
    from isolate.provision.rootfs import Bind, RootfsSpec, bwrap_argv, ensure_rootfs, missing_tools
    from tests.conftest import assert_same_views

    problems = missing_tools()
    if problems:
        pytest.skip("cannot run root filesystems here: " + "; ".join(problems))
    rootfs = ensure_rootfs(RootfsSpec(suite="bookworm"), runner=Runner())
    b = bundle_dir(built)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(CHILDREN_PROBE, work / "children_probe.py")
    views = {}
    for run_name in ("clean", "hostile"):
        (work / run_name / "cwd").mkdir(parents=True)
        env = {"LC_ALL": "C.UTF-8", "TMPDIR": "/tmp"}
        planted = None
        if run_name == "hostile":
            planted = hostile_env.plant(work / run_name / "env", versions=[target_python],
                                        seen_as=f"/opt/isolate/work/{run_name}/env")
            env.update(planted.env)
        argv = bwrap_argv(rootfs, ["/opt/isolate/rt/bin/python3",
                                   "/opt/isolate/work/children_probe.py", "--out",
                                   f"/opt/isolate/work/{run_name}/children.json"],
                          binds=[Bind(source=b, dest="/opt/isolate/rt"),
                                 Bind(source=work, dest="/opt/isolate/work", writable=True)],
                          env=env, cwd=f"/opt/isolate/work/{run_name}/cwd")
        r = run(argv, env={"PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout == r.stderr == "", r.stdout + r.stderr
        if planted is not None:
            assert planted.ran() == []
        views[run_name] = json.loads((work / run_name / "children.json").read_text())
    assert_same_views(views["clean"], views["hostile"])
    assert views["clean"]["subprocess"]["prefix"] == "/opt/isolate/rt/python"
