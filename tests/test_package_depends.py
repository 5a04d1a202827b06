"""isolate.package.depends: the host packages of a runtime package, once for both formats."""

from __future__ import annotations

import dataclasses

from isolate.package.depends import HostPackages, host_packages
from isolate.package.payload import HostDependency, PackageInfo

VIRT = tuple(HostDependency(soname=so, required=False, debian="libvirt0", rpm="libvirt-libs")
             for so in ("libvirt.so.0", "libvirt-qemu.so.0", "libvirt-lxc.so.0"))
FOO = HostDependency(soname="libfoo.so.1", required=True, debian="libfoo1", rpm="foo-libs")
DEB_ONLY = HostDependency(soname="libdeb.so.1", required=True, debian="libdeb1", rpm=None)

INFO = PackageInfo(
    name="nova", version="34.0.0", release="1", arch="x86_64", prefix="/opt/nova",
    summary="Nova", description="A runtime.", maintainer="A B <a@b.org>",
    license="Apache-2.0", homepage=None, section="misc", links=(), glibc_floor="2.28",
    host_dependencies=(*VIRT, FOO, DEB_ONLY), debian_depends=("adduser",),
    rpm_requires=("shadow-utils",), mtime=0, manifest_name="nova-34", tool_version="0.1.0",
    lock_sha256="0" * 64)


def test_each_format_gets_its_own_names_after_the_c_library() -> None:
    assert host_packages(INFO, "deb", libc="libc6 (>= 2.28)") == HostPackages(
        requires=("libc6 (>= 2.28)", "libfoo1", "libdeb1", "adduser"),
        recommends=("libvirt0",))
    assert host_packages(INFO, "rpm", libc="glibc >= 2.28") == HostPackages(
        requires=("glibc >= 2.28", "foo-libs", "shadow-utils"), recommends=("libvirt-libs",))


def test_a_package_providing_several_libraries_is_named_once() -> None:
    deps = host_packages(INFO, "deb", libc="libc6")
    assert deps.recommends.count("libvirt0") == 1


def test_a_required_package_is_not_recommended_too() -> None:
    required_virt = HostDependency(soname="libvirt-admin.so.0", required=True,
                                   debian="libvirt0", rpm="libvirt-libs")
    info = dataclasses.replace(INFO, host_dependencies=(*VIRT, required_virt))
    for fmt in ("deb", "rpm"):
        deps = host_packages(info, fmt, libc="c")
        assert deps.recommends == () and len(deps.requires) == len(set(deps.requires)) == 3


def test_an_extra_dependency_equal_to_another_is_named_once() -> None:
    info = dataclasses.replace(INFO, debian_depends=("libc6 (>= 2.28)", "libfoo1"))
    deps = host_packages(info, "deb", libc="libc6 (>= 2.28)")
    assert deps.requires == ("libc6 (>= 2.28)", "libfoo1", "libdeb1")
