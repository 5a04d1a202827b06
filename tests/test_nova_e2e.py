"""End to end: the real Nova 34.0.0 runtime from the committed lock.

Needs PyPI (the wheels; cached after the first run) and, for the root filesystem test,
root, debootstrap and bubblewrap. Locally these skip with a reason; on CI (CI=true)
a missing prerequisite is a failure, never a silent pass.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from isolate.bundle.unpack import unpack
from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.model.results import Results
from isolate.proc import Runner
from isolate.provision.rootfs import Bind, RootfsSpec, bwrap_argv, ensure_rootfs, missing_tools
from tests.conftest import REPO, invoke, pypi_reachable, require
from tests.package_helpers import (
    deb_of,
    debian_12_copy,
    lintian_errors,
)

pytestmark = pytest.mark.slow
IMPORTS = "import ssl, sqlite3, lzma, ctypes, hashlib, nova.compute.manager; print('imports ok')"


def build(out: Path, fmt: str) -> Path:
    r = invoke(["--root", REPO, "bundle", "nova", "-o", out, "--format", fmt, "-q"])
    assert r.code == 0, r.output
    return out


@pytest.fixture(scope="module")
def nova_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(pypi_reachable(), "needs PyPI to fetch Nova's wheels")
    # The .rpm is left out here (minutes of xz on 2 cores): the small runtime's tests
    # compare its files with the .deb's, and docs/packages.rst has Nova's figures.
    return build(tmp_path_factory.mktemp("nova-out"), "dir,tar.zst,deb")


def the_archive(out: Path) -> Path:
    (a,) = [p for p in out.glob("nova-34.0.0-*.tar.zst") if ".tests." not in p.name]
    return a


def the_dir(out: Path) -> Path:
    (d,) = [p for p in out.glob("nova-34.0.0-*") if p.is_dir() and not p.name.endswith(".tests")]
    return d


def quiet_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LC_ALL": "C",
            "PYTHONWARNINGS": "ignore"}


def test_unpacked_into_a_path_with_a_space_nova_manage_prints_its_version(
        nova_out: Path, tmp_path: Path) -> None:
    dest = tmp_path / "opt with space"
    dest.mkdir()
    top = unpack(the_archive(nova_out), dest)
    r = subprocess.run([top / "bin" / "nova-manage", "--version"], capture_output=True,
                       text=True, env=quiet_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "34.0.0"


def test_runs_in_a_debian_12_root_filesystem_without_python(nova_out: Path) -> None:
    require(not missing_tools(), "; ".join(missing_tools()))
    rootfs = ensure_rootfs(RootfsSpec(suite="bookworm"), runner=Runner())
    assert not list((rootfs / "usr" / "bin").glob("python*")), "minbase has no Python"
    bundle = "/opt/isolate/nova runtime"
    binds = [Bind(source=the_dir(nova_out), dest=bundle)]
    for argv, want in (([f"{bundle}/bin/nova-manage", "--version"], "34.0.0"),
                       ([f"{bundle}/bin/python3", "-W", "ignore", "-c", IMPORTS], "imports ok")):
        r = subprocess.run(bwrap_argv(rootfs, argv, binds=binds), capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip().splitlines()[-1] == want


def test_two_builds_give_the_same_archive(nova_out: Path, tmp_path: Path) -> None:
    second = build(tmp_path / "again", "tar.zst")
    a, b = the_archive(nova_out), the_archive(second)
    assert a.name == b.name
    assert (a.parent / f"{a.name}.sha256").read_text().split()[0] == \
        (b.parent / f"{b.name}.sha256").read_text().split()[0]
    assert a.read_bytes() == b.read_bytes()


def test_the_deb_installs_runs_and_removes_cleanly_in_debian_12(nova_out: Path,
                                                                 tmp_path: Path) -> None:
    with debian_12_copy(tmp_path, nova_out) as inside:
        r = inside("dpkg", "-i", f"/opt/isolate/pkgs/{deb_of(nova_out).name}")
        assert r.returncode == 0, r.stdout + r.stderr
        for argv in (["/opt/nova/bin/nova-manage", "--version"], ["nova-manage", "--version"]):
            r = inside(*argv)
            assert r.returncode == 0 and r.stdout.strip() == "34.0.0", r.stdout + r.stderr
        r = inside("dpkg", "-r", "nova")
        assert r.returncode == 0, r.stdout + r.stderr


def test_lintian_finds_no_error_in_the_deb(nova_out: Path) -> None:
    assert lintian_errors(deb_of(nova_out)) is None


def test_the_build_directory_appears_in_no_file(nova_out: Path) -> None:
    pattern = re.compile(re.escape(str(nova_out).encode()) + rb"|\.isolate-build-\d")
    hits = [p for p in the_dir(nova_out).rglob("*")
            if p.is_file() and not p.is_symlink() and pattern.search(p.read_bytes())]
    assert hits == []


def test_manifest_describes_the_runtime(nova_out: Path) -> None:
    m = Manifest.loads((the_dir(nova_out) / MANIFEST_NAME).read_text())
    assert m.version == "34.0.0" and m.python_tag == "cp313"
    assert "nova-manage" in m.scripts
    names = {d.name for d in m.distributions}
    assert "nova" in names and "oslo-config" in names
    assert m.elf.glibc_floor and m.elf.glibc_floor_file
    assert m.platform == "manylinux_{}_{}_x86_64".format(*m.elf.glibc_floor.split("."))
    assert m.interpreter.version.startswith("3.13.")
    assert m.interpreter.source.startswith("source:3.13.")
    # The floor is the wheels' (greenlet and numpy publish manylinux_2_28 at the oldest),
    # not the build machine's: the runtime runs on RHEL 8 and Debian 11.
    floor = tuple(map(int, m.elf.glibc_floor.split(".")))
    assert floor <= (2, 28), (m.elf.glibc_floor, m.elf.glibc_floor_file)


def test_verify_is_clean_then_names_a_flipped_byte(nova_out: Path, tmp_path: Path) -> None:
    if shutil.which("isolate") is None and not (REPO / "isolate" / "verify").is_dir():
        pytest.fail("isolate verify is missing")
    copy = tmp_path / "copy"
    shutil.copytree(the_dir(nova_out), copy, symlinks=True)
    r = invoke(["verify", copy])
    assert r.code == 0, r.output
    victim = copy / "python" / "lib" / "python3.13" / "site-packages" / "nova" / "__init__.py"
    data = bytearray(victim.read_bytes())
    data[0] ^= 0x01
    victim.write_bytes(bytes(data))
    r = invoke(["verify", copy])
    assert r.code == 1, r.output
    rel = "python/lib/python3.13/site-packages/nova/__init__.py"
    assert rel in r.output
    flagged = {line for line in r.output.splitlines() if "integrity" in line and "error" in line}
    assert all(rel in line for line in flagged), flagged


# -- the matrix: Nova's own unit tests in the runtime on many hosts ------------------------

MATRIX_HOSTS = ["local-2.7", "local-3.6", "local-3.9", "local-3.11", "local-3.13",
                "debian-12", "debian-13", "debian-11"]


@pytest.fixture(scope="module")
def nova_results(nova_out: Path, tmp_path_factory: pytest.TempPathFactory) -> Results:
    from isolate.interpreters import Discovery

    have = {f"local-{m[0]}.{m[1]}" for m in Discovery(Runner()).by_minor()}
    missing = [h for h in MATRIX_HOSTS if h.startswith("local-") and h not in have]
    require(not missing, f"needs local interpreters for {missing} (pyenv install them)")
    require(not missing_tools(), "; ".join(missing_tools()))
    out = tmp_path_factory.mktemp("matrix") / "results.json"
    r = invoke(["matrix", the_archive(nova_out), "--hosts", ",".join(MATRIX_HOSTS), "-j", "2",
                "-o", out])
    assert out.exists(), r.output
    return Results.loads(out.read_text())


def test_every_observed_cell_passes_and_is_equivalent(nova_results: Results) -> None:
    by = {c.host: c for c in nova_results.cells}
    for host in MATRIX_HOSTS:
        c = by[host]
        assert c.observed.status == "passed", (host, c.observed.reason, c.observed.output_tail)
        assert c.equivalent is True, (host, c.differences)
        assert sum(c.observed.counts.values()) >= 1000, c.observed.counts
    for h in MATRIX_HOSTS[:5]:  # the host's own Python really was first on PATH
        version = by[h].observed.host["platform_python"]["version"]
        assert version.startswith(h.removeprefix("local-") + "."), (h, version)
    assert by["debian-12"].observed.host["distro_id"] == "debian"


def test_debian_11_is_predicted_and_observed_compatible(nova_results: Results) -> None:
    """The source-built interpreter needs glibc 2.17 at most, so Debian 11 (2.31), which
    the build machine's own interpreter (2.36) could not reach, runs the tests too."""
    c = next(c for c in nova_results.cells if c.host == "debian-11")
    floor = tuple(map(int, nova_results.bundle["glibc_floor"].split(".")))
    assert floor <= (2, 28)
    assert c.predicted.verdict == "compatible", c.predicted.reasons
    assert c.observed.status == "passed", (c.observed.reason, c.observed.output_tail)
    assert c.equivalent is True, c.differences
    assert sum(c.observed.counts.values()) >= 1000, c.observed.counts


def test_the_interpreter_needs_glibc_2_17_at_most(nova_out: Path) -> None:
    from isolate.bundle import elf

    home = the_dir(nova_out) / "python"
    files = [elf.read_elf(p) for p in elf.iter_elf_files(home / "bin")]
    files += [elf.read_elf(p) for p in elf.iter_elf_files(home / "lib" / "python3.13")
              if "site-packages" not in p.parts]
    assert len(files) > 50
    worst = max((f.glibc_max or (0,)) for f in files)
    assert worst <= (2, 17), worst
    glibc_libs = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                  "libutil.so.1", "ld-linux-x86-64.so.2"}
    assert {n for f in files for n in f.needed} <= glibc_libs


def test_a_bundle_missing_a_vendored_library_fails_in_a_root_filesystem(
        nova_out: Path, tmp_path: Path) -> None:
    require(not missing_tools(), "; ".join(missing_tools()))
    src = the_dir(nova_out)
    broken = tmp_path / src.name
    shutil.copytree(src, broken, symlinks=True)
    shutil.copytree(nova_out / f"{src.name}.tests", tmp_path / f"{src.name}.tests",
                    symlinks=True)
    # SQLite is linked into the interpreter's _sqlite3 module (the source-built CPython
    # vendors nothing): remove the module, as a broken copy or a bad prune would.
    (sqlite,) = (broken / "python" / "lib" / "python3.13" / "lib-dynload").glob("_sqlite3.*.so")
    sqlite.unlink()
    out = tmp_path / "results.json"
    # debian-12 is a required host of Nova: observed failing, it fails the matrix.
    r = invoke(["matrix", broken, "--hosts", "debian-12", "-o", out])
    assert r.code == 1, r.output
    cell = Results.loads(out.read_text()).cells[0]
    assert cell.observed.status in ("failed", "error"), cell.observed.reason
    failing = sorted(t for t, o in cell.observed.tests.items() if o in ("failed", "error"))
    md = tmp_path / "summary.md"
    r = invoke(["report", out, "--markdown", md])
    assert r.code == 1
    text = md.read_text()
    if failing:  # tests that ran and failed are named
        assert failing[0] in text
    else:  # a test module that could not be imported: the runner's own message
        assert "sqlite3" in (cell.observed.reason or ""), cell.observed.reason
        assert "debian-12" in text
