"""Host libraries: the pinned development packages bindings are compiled against, the
floor a runtime needs from each host library, and the verdict on a host."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from isolate import compat
from isolate.bundle.hostlib_copies import copy_of, vendored_copies
from isolate.errors import InputError
from isolate.model.floors import split_symbol_version
from isolate.model.hostlibs import (
    HostLibraryFloor,
    ObservedHostLibrary,
    ShippedLibrary,
    library_floors,
    verdict,
)
from isolate.model.manifest import ElfFacts
from isolate.model.profiles import HostProfile
from isolate.model.results import Cell, Observation, Prediction, Results
from isolate.proc import Runner
from isolate.profiles import load_host_file
from isolate.pybuild.devpackages import dev_root, load_dev_packages, native_build_env
from isolate.pybuild.toolchain import write_wrappers
from isolate.report.render_html import render_html
from isolate.report.render_markdown import render_markdown
from tests.conftest import REPO, debian_archive_reachable

LIBVIRT_LOCK = REPO / "profiles" / "devpackages" / "libvirt-7.0.toml"
ON_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def archive() -> None:
    if not debian_archive_reachable():
        if ON_CI:
            pytest.fail("CI must reach Debian's archive for the pinned .deb files")
        pytest.skip("needs Debian's archive (deb.debian.org) for the pinned .deb files")


# -- the pinned .deb files ----------------------------------------------------------------


def test_the_committed_libvirt_lock_pins_bullseyes_libvirt_7_0() -> None:
    lock = load_dev_packages(LIBVIRT_LOCK)
    assert lock.name == "libvirt-7.0"
    assert "libvirt.so.0" in lock.provides
    assert {d.package for d in lock.debs} == {"libvirt-dev", "libvirt0"}
    assert all(d.version.startswith("7.0.0-") and len(d.sha256) == 64 for d in lock.debs)


def test_a_broken_lock_names_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "libvirt-x.toml"
    bad.write_text('name = "other"\nprovides = []\nsurprise = 1\n'
                   '[[debs]]\npackage = "Bad Name"\nurl = "ftp://x/y.tar"\nsha256 = "abc"\n')
    with pytest.raises(InputError) as exc:
        load_dev_packages(bad)
    details = exc.value.details or ""
    for expected in ("surprise: unknown key", "name: 'other' differs", "provides:",
                     "debs[0].version: missing", "debs[0].package: 'Bad Name'",
                     "debs[0].url: 'ftp://x/y.tar' is not", "debs[0].sha256: not 64"):
        assert expected in details


def test_the_debs_unpack_into_a_tree_pkg_config_finds(archive: None, tmp_path: Path) -> None:
    cache = Path(os.environ["ISOLATE_CACHE_DIR"])  # downloads are kept, keyed by sha256
    root = dev_root(load_dev_packages(LIBVIRT_LOCK), runner=Runner(), cache=cache)
    assert (root.root / "usr" / "include" / "libvirt" / "libvirt.h").is_file()
    env = {**os.environ, **native_build_env({"libvirt-7.0": LIBVIRT_LOCK}, runner=Runner(),
                                            cache=cache)}

    def pkg_config(*args: str) -> str:
        return subprocess.run(["pkg-config", *args, "libvirt"], env=env, capture_output=True,
                              text=True, check=True).stdout.strip()

    assert pkg_config("--modversion") == "7.0.0"
    assert pkg_config("--cflags") == f"-I{root.root}/usr/include"
    assert pkg_config("--variable=libvirt_api") == (
        f"{root.root}/usr/share/libvirt/api/libvirt-api.xml")


def test_a_deb_whose_sha256_differs_is_refused_and_nothing_is_kept(
        archive: None, tmp_path: Path) -> None:
    text = LIBVIRT_LOCK.read_text()
    good = load_dev_packages(LIBVIRT_LOCK).debs[0].sha256  # libvirt-dev: the smaller
    lock_file = tmp_path / "libvirt-7.0.toml"
    lock_file.write_text(text.replace(good, "0" * 64))
    cache = tmp_path / "cache"
    with pytest.raises(InputError) as exc:
        dev_root(load_dev_packages(lock_file), runner=Runner(), cache=cache)
    assert "does not match the development-packages lock" in exc.value.message
    assert "0" * 64 in (exc.value.details or "")
    assert not list((cache / "devpackages").iterdir())  # no tree, whole or half
    assert not [p for p in (cache / "sources").rglob("*") if p.is_file()
                and p.name.startswith("libvirt-dev")]


# -- the compiler wrappers ----------------------------------------------------------------


def test_the_compiler_wrappers_pass_wp_defines_as_plain_defines(tmp_path: Path) -> None:
    fake = tmp_path / "zig"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    tools = write_wrappers(fake, "0", "x86_64-linux-gnu.2.17", tmp_path / "bin", tmp_path / "c")
    out = subprocess.run([tools.cc, "-Wp,-DPy_LIMITED_API=0x03060000", "-Wp,-UX", "-O2",
                          "a b.c"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["cc", "-target", "x86_64-linux-gnu.2.17",
                                "-DPy_LIMITED_API=0x03060000", "-UX", "-O2", "a b.c"]


# -- floors and verdicts --------------------------------------------------------------------


def test_numbered_symbol_versions_of_any_library_are_split() -> None:
    assert split_symbol_version("LIBVIRT_6.10.0") == ("LIBVIRT_", "6.10.0")
    assert split_symbol_version("LIBVIRT_QEMU_1.2.3") == ("LIBVIRT_QEMU_", "1.2.3")
    assert split_symbol_version("GLIBC_2.17") == ("GLIBC_", "2.17")
    assert split_symbol_version("GLIBC_PRIVATE") is None


def test_the_floor_is_the_highest_version_needed_and_names_its_file() -> None:
    needs = [("b.so", "libvirt.so.0", "LIBVIRT_6.10.0"),
             ("a.so", "libvirt.so.0", "LIBVIRT_1.0.2"),
             ("c.so", "libvirt.so.0", "LIBVIRT_6.10.0"),
             ("c.so", "libvirt-qemu.so.0", "")]
    virt, qemu, lxc = library_floors([("libvirt.so.0", False, "driver", "libvirt driver"),
                                      ("libvirt-qemu.so.0", False, "", ""),
                                      ("libvirt-lxc.so.0", False, "", "")], needs)
    assert (virt.version, virt.symbol, virt.file) == ("6.10.0", "LIBVIRT_6.10.0", "b.so")
    assert virt.needed_by == ("a.so", "b.so", "c.so")
    assert (qemu.version, qemu.needed_by) == (None, ("c.so",))
    assert lxc.needed_by == ()
    assert HostLibraryFloor.from_dict(virt.to_dict()) == virt


@pytest.mark.parametrize(("shipped", "status", "text"), [
    ("9.0.0", "provided", "libvirt.so.0 9.0.0 >= LIBVIRT_6.10.0"),
    ("6.10.0", "provided", "libvirt.so.0 6.10.0 >= LIBVIRT_6.10.0"),
    ("6.0.0", "too-old", "libvirt.so.0 6.0.0 is too old: m.so needs LIBVIRT_6.10.0"),
    (None, "absent", "libvirt.so.0 absent"),
])
def test_a_verdict_per_host_library(shipped: str | None, status: str, text: str) -> None:
    floor = HostLibraryFloor(soname="libvirt.so.0", required=False, needed_by=("m.so",),
                             version="6.10.0", symbol="LIBVIRT_6.10.0", file="m.so")
    v = verdict(floor, ShippedLibrary(soname="libvirt.so.0", version=shipped)
                if shipped else None)
    assert (v.status, v.describe()) == (status, text)
    unused = verdict(replace(floor, needed_by=()), None)
    assert unused.status == "unused" and unused.ok


# -- copies of host libraries -----------------------------------------------------------


def test_a_copy_of_a_host_library_in_a_wheels_libs_dir_is_found(tmp_path: Path) -> None:
    assert copy_of("libvirt-1a2b3c4d.so.0.7000.0", "libvirt.so.0")
    assert copy_of("libvirt.so.0", "libvirt.so.0")
    assert not copy_of("libvirt-qemu.so.0", "libvirt.so.0")
    libs = tmp_path / "site-packages" / "virt.libs"
    libs.mkdir(parents=True)
    (libs / "libvirt-1a2b3c4d.so.0.7000.0").write_bytes(b"")
    (libs / "libz-0123abcd.so.1").write_bytes(b"")
    (tmp_path / "site-packages" / "libvirt.so.0").write_bytes(b"")  # not in a .libs dir
    assert vendored_copies(tmp_path, ["libvirt.so.0"]) == [
        ("site-packages/virt.libs/libvirt-1a2b3c4d.so.0.7000.0", "libvirt.so.0")]


# -- host profiles, prediction and report -------------------------------------------------


def _host(host_id: str) -> HostProfile:
    return load_host_file(REPO / "profiles" / "hosts" / f"{host_id}.toml",
                          builtin=True).profile


@pytest.mark.parametrize(("host_id", "version", "installed"), [
    ("debian-11", "7.0.0", False), ("debian-12", "9.0.0", False),
    ("debian-13", "11.3.0", False), ("debian-12-libvirt", "9.0.0", True),
    ("ubuntu-20.04", "6.0.0", True), ("ubuntu-22.04", "8.0.0", True),
    ("ubuntu-24.04", "10.0.0", True), ("rhel-8", "8.0.0", True), ("rhel-9", "10.0.0", True),
])
def test_host_profiles_say_which_libvirt_their_release_ships(
        host_id: str, version: str, installed: bool) -> None:
    host = _host(host_id)
    assert host.host_libraries["libvirt.so.0"].version == version
    assert (host.host_library("libvirt.so.0") is not None) is installed
    assert _host("alpine-3.20").host_libraries == {}


def test_a_rootfs_host_that_says_installed_must_install_the_package(tmp_path: Path) -> None:
    text = (REPO / "profiles" / "hosts" / "debian-12-libvirt.toml").read_text()
    bad = tmp_path / "h.toml"
    bad.write_text(text.replace('packages = ["libvirt0"]', "packages = []"))
    with pytest.raises(InputError) as exc:
        load_host_file(bad, builtin=False)
    assert "not in [provision] packages" in f"{exc.value.message}\n{exc.value.details}"


def _elf(required: bool = False) -> ElfFacts:
    floor = HostLibraryFloor(soname="libvirt.so.0", required=required, feature="libvirt driver",
                             purpose="talks to libvirtd", needed_by=("m.so",),
                             version="6.10.0", symbol="LIBVIRT_6.10.0", file="m.so")
    return ElfFacts(glibc_floor="2.17", glibc_floor_file="python/bin/python3.13",
                    glibc_floor_symbol="GLIBC_2.17", host_floors=(floor,),
                    host_libraries=({"soname": "libvirt.so.0", "required": required},))


def _predict(host_id: str, *, required: bool = False) -> Prediction:
    return compat.predict(arch="x86_64", elf=_elf(required), python_version="3.13.5",
                          host=_host(host_id))


def test_an_optional_host_library_makes_a_feature_unavailable_not_the_cell() -> None:
    absent = _predict("debian-12")
    assert absent.verdict == "compatible"
    assert absent.unavailable == ("libvirt driver unavailable: libvirt.so.0 absent",)
    old = _predict("ubuntu-20.04")
    assert old.verdict == "compatible"
    assert old.unavailable == ("libvirt driver unavailable: libvirt.so.0 6.0.0 is too old: "
                               "m.so needs LIBVIRT_6.10.0",)
    ok = _predict("debian-12-libvirt")
    assert ok.unavailable == ()
    assert "libvirt.so.0 9.0.0 >= LIBVIRT_6.10.0" in ok.reasons
    assert Prediction.from_dict(old.to_dict()) == old


def test_a_required_host_library_that_is_absent_or_too_old_is_incompatible() -> None:
    assert _predict("debian-12", required=True).verdict == "incompatible"
    too_old = _predict("ubuntu-20.04", required=True)
    assert too_old.verdict == "incompatible"
    assert any("LIBVIRT_6.10.0" in r for r in too_old.reasons)
    assert _predict("rhel-9", required=True).verdict == "compatible"


def test_the_report_shows_the_unavailable_feature_beside_the_verdict() -> None:
    cell = Cell(host="debian-12", host_name="Debian 12", executor="rootfs",
                host_facts={}, predicted=_predict("debian-12"),
                observed=Observation(status="not-run", reason="predicted only"))
    results = Results(bundle={"name": "virt"}, cells=(cell,), baseline=None,
                      tool_version="0")
    assert "**compatible**; libvirt driver unavailable: libvirt.so.0 absent" in (
        render_markdown(results))
    assert "libvirt driver unavailable: libvirt.so.0 absent</span>" in render_html(results)


def test_an_observed_host_library_round_trips_and_describes_itself() -> None:
    seen = ObservedHostLibrary(soname="libvirt.so.0", file="/lib/x86_64-linux-gnu/libvirt.so.0",
                               version="9.0.0", smoke="passed")
    obs = Observation(status="passed", host_libraries=(seen,))
    assert Observation.from_dict(obs.to_dict()).host_libraries == (seen,)
    assert seen.describe() == ("libvirt.so.0 9.0.0 (/lib/x86_64-linux-gnu/libvirt.so.0), "
                               "smoke check passed")
    assert "host_libraries" not in Observation(status="passed").to_dict()
