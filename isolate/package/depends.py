"""What a runtime package needs from its host, for every package format: the C library
at the manifest's glibc floor, the package of each host library the runtime profile
declares (required or optional) and the profile's extra dependencies. A format only
spells the result (isolate.package.deb: Depends/Recommends; rpm: Requires/Recommends)."""

from __future__ import annotations

from dataclasses import dataclass

from isolate.package.payload import PackageInfo


@dataclass(frozen=True, kw_only=True, slots=True)
class HostPackages:
    """Relations in one format's names and syntax, each named once."""

    requires: tuple[str, ...]
    recommends: tuple[str, ...]  # none of them required too


def host_packages(info: PackageInfo, fmt: str, *, libc: str) -> HostPackages:
    """The host packages of ``info`` as format ``fmt`` ("deb" or "rpm") names them.

    ``libc`` is the format's relation on its C library at ``info.glibc_floor``
    (``libc6 (>= 2.28)``, ``glibc >= 2.28``; unversioned without a floor). Several
    sonames of one package (libvirt0: libvirt.so.0, libvirt-qemu.so.0, ...) name it
    once, and a package that is required is not recommended as well."""
    requires = [libc]
    recommends: list[str] = []
    for dep in info.host_dependencies:
        name = dep.debian if fmt == "deb" else dep.rpm
        if name:
            (requires if dep.required else recommends).append(name)
    requires += info.debian_depends if fmt == "deb" else info.rpm_requires
    unique = tuple(dict.fromkeys(requires))
    return HostPackages(requires=unique,
                        recommends=tuple(r for r in dict.fromkeys(recommends)
                                         if r not in unique))
