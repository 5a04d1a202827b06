"""End to end: libvirt-python compiled into a runtime (tests/apps/virt) against libvirt
7.0's pinned headers by the interpreter's own cross compiler; libvirt.so.0 stays the
host's.

Needs PyPI, Debian's archive and the source-built CPython 3.13 (cached; its first build
takes ~10 minutes); the matrix test needs root, debootstrap and bubblewrap. Skipped
locally without them, failures on CI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from isolate.bundle import elf
from isolate.bundle.elf_closure import system_search_dirs
from isolate.provision.rootfs import missing_tools
from tests.conftest import REPO, invoke, pypi_reachable, require

pytestmark = [pytest.mark.slow, pytest.mark.network]
APP = REPO / "tests" / "apps" / "virt"
PYPI = "https://pypi.org/simple"
SITE = "python/lib/python3.13/site-packages"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(pypi_reachable(), "needs PyPI for libvirt-python's sdist and setuptools")
    out = tmp_path_factory.mktemp("virt")
    r = invoke(["--root", APP, "bundle", "virt", "--index-url", PYPI, "--format", "dir",
                "-o", out])
    assert r.code == 0, r.output
    (found,) = [p for p in out.iterdir() if p.is_dir() and p.name.startswith("virt-")]
    return found


def test_the_manifest_records_the_libvirt_floor_and_the_file_that_sets_it(
        bundle: Path) -> None:
    m = json.loads((bundle / "isolate-manifest.json").read_text())
    floors = {h["soname"]: h for h in m["elf"]["host_library_floors"]}
    virt = floors["libvirt.so.0"]
    # built against libvirt 7.0: nothing newer than what 7.0 defines
    assert virt["symbol"].startswith("LIBVIRT_") and virt["version"] <= "7.0.0"
    assert virt["file"] == f"{SITE}/libvirtmod.cpython-313-x86_64-linux-gnu.so"
    assert floors["libvirt-qemu.so.0"]["symbol"].startswith("LIBVIRT_QEMU_")
    assert m["elf"]["floors"]["glibc"]["version"] == "2.17"


def test_libvirt_is_the_hosts_never_a_copy_in_the_runtime(bundle: Path) -> None:
    m = json.loads((bundle / "isolate-manifest.json").read_text())
    assert m["elf"]["vendored"] == []
    paths = [f["path"] for f in m["files"]]
    assert not [p for p in paths if Path(p).name.startswith(("libvirt.so", "libvirt-qemu.so"))]


def test_the_binding_needs_glibc_2_17_only(bundle: Path) -> None:
    mod = elf.read_elf(bundle / SITE / "libvirtmod.cpython-313-x86_64-linux-gnu.so")
    assert mod.glibc_max is not None and mod.glibc_max <= (2, 17)
    assert "libvirt.so.0" in mod.needed
    assert set(mod.needed) - {"libvirt.so.0"} <= {"libc.so.6", "libpthread.so.0",
                                                  "ld-linux-x86-64.so.2"}


@pytest.mark.parametrize(("host", "expected"), [
    ("debian-12-libvirt", "host library libvirt.so.0 9.0.0 >= LIBVIRT_"),
    ("ubuntu-20.04", "libvirt driver unavailable: libvirt.so.0 6.0.0 is too old:"),
    ("debian-12", "libvirt driver unavailable: libvirt.so.0 absent on debian-12"),
])
def test_verify_prints_the_host_library_verdict_of_a_host_profile(
        bundle: Path, host: str, expected: str) -> None:
    r = invoke(["--root", REPO, "verify", bundle, "--host", host])
    assert r.code == 0, r.output  # an optional library: a note, not an error
    assert expected in r.out


def test_verify_here_looks_for_the_host_library_on_this_machine(bundle: Path) -> None:
    r = invoke(["--root", REPO, "verify", bundle, "--here"])
    assert r.code == 0, r.output
    here = system_search_dirs()
    has = any((d / "libvirt.so.0").exists() for d in here)
    assert ("host library libvirt.so.0" in r.out) if has else (
        "libvirt.so.0 absent on here" in r.out)


def test_the_matrix_records_the_host_library_and_runs_the_smoke_check(
        bundle: Path, tmp_path: Path) -> None:
    problems = missing_tools()
    require(not problems, f"root filesystem cells need {'; '.join(problems)}")
    out = tmp_path / "results.json"
    r = invoke(["--root", APP, "matrix", bundle, "--hosts",
                "debian-11-libvirt,debian-12-libvirt,debian-13-libvirt,debian-12-nopython",
                "-o", out])
    assert r.code == 0, r.output
    cells = {c["host"]: c for c in json.loads(out.read_text())["cells"]}
    for host, version in (("debian-11-libvirt", "7.0.0"), ("debian-12-libvirt", "9.0.0"),
                          ("debian-13-libvirt", "11.3.0")):
        with_libvirt = {h["soname"]: h for h in cells[host]["observed"]["host_libraries"]}
        virt = with_libvirt["libvirt.so.0"]
        assert virt["file"].endswith("/x86_64-linux-gnu/libvirt.so.0"), (host, virt)
        assert virt["version"] == version, (host, virt)
        # libvirt's in-process test driver (test:///default): no daemon
        assert virt["smoke"] == "passed", (host, virt["smoke_output"])
        assert cells[host]["predicted"]["warnings"] == [], host
        assert cells[host]["observed"]["status"] == "passed", host
    without = {h["soname"]: h for h in cells["debian-12-nopython"]["observed"]
               ["host_libraries"]}
    assert without["libvirt.so.0"] == {"soname": "libvirt.so.0", "file": None,
                                       "version": None, "smoke": "not-run",
                                       "smoke_output": ""}
    assert cells["debian-12-nopython"]["predicted"]["verdict"] == "compatible"
    assert "libvirt driver unavailable: libvirt.so.0 absent" in (
        cells["debian-12-nopython"]["predicted"]["warnings"])
    assert cells["debian-12-nopython"]["observed"]["status"] == "passed"


def test_a_declared_host_library_no_file_needs_is_a_warning(tmp_path: Path) -> None:
    require(pypi_reachable(), "needs PyPI for libvirt-python's sdist and setuptools")
    app = tmp_path / "virt"
    shutil.copytree(APP, app)
    profile = app / "profiles" / "runtimes" / "virt.toml"
    profile.write_text(profile.read_text() + '\n[[host_libraries]]\nsoname = "libnothere.so.1"\n'
                       'required = false\n')
    shutil.copytree(REPO / "profiles" / "devpackages", app / "profiles" / "devpackages")
    r = invoke(["--root", app, "bundle", "virt", "--index-url", PYPI, "--format", "dir",
                "-o", tmp_path / "out"])
    assert r.code == 0, r.output
    assert ("warning: the host library libnothere.so.1 is declared by the runtime profile "
            "but no ELF file of the runtime needs it") in " ".join(r.output.split())
    (top,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    m = json.loads((top / "isolate-manifest.json").read_text())
    unused = {h["soname"]: h for h in m["elf"]["host_library_floors"]}["libnothere.so.1"]
    assert unused["needed_by"] == [] and unused["symbol"] is None
