"""End to end: libvirt-python compiled into a runtime (tests/apps/virt) against libvirt
7.0's pinned headers by the interpreter's own cross compiler; libvirt.so.0 stays the
host's.

Needs PyPI, Debian's archive and the source-built CPython 3.13 (cached; its first build
takes ~10 minutes); skipped locally without network, failures on CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isolate.bundle import elf
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
