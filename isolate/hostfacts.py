"""Facts about the machine isolate runs on, read from the running system (no commands)."""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection

from isolate.model import floors
from isolate.model.hostlibs import ShippedLibrary

# Where the GCC runtime of this machine is found (Debian multiarch, then RHEL/Fedora).
_GCC_RUNTIME = {"libstdc++.so.6": ("glibcxx", "cxxabi"), "libgcc_s.so.1": ("gcc",)}
_LIB_DIRS = ("lib/{multiarch}", "usr/lib/{multiarch}", "lib64", "usr/lib64", "lib", "usr/lib")


@dataclass(frozen=True, kw_only=True, slots=True)
class MachineFacts:
    distro: str
    release: str
    codename: str
    arch: str
    libc_family: str
    libc_version: str
    kernel: str
    # floor kind (glibcxx, cxxabi, gcc) -> the highest version this machine's GCC runtime
    # defines; a kind is absent when its library was not found
    gcc_runtime: Mapping[str, str] = field(default_factory=dict)


def defined_versions(path: Path) -> set[str]:
    """The symbol versions an ELF library defines (``.gnu.version_d``); empty if unreadable."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            out: set[str] = set()
            for section in elf.iter_sections():
                if isinstance(section, GNUVerDefSection):
                    for _verdef, aux_iter in section.iter_versions():
                        out.update(str(aux.name) for aux in aux_iter)
            return out
    except (OSError, ELFError, ValueError):
        return set()


def gcc_runtime(root: Path = Path("/"), arch: str | None = None) -> dict[str, str]:
    """The highest GLIBCXX_/CXXABI_/GCC_ versions of the GCC runtime under ``root``."""
    multiarch = f"{arch or platform.machine()}-linux-gnu"
    out: dict[str, str] = {}
    for soname, kinds in _GCC_RUNTIME.items():
        path = next((p for d in _LIB_DIRS if (p := root / d.format(multiarch=multiarch)
                                               / soname).is_file()), None)
        if path is None:
            continue
        names = defined_versions(path)
        for kind_name in kinds:
            k = floors.kind(kind_name)
            versions = [v for n in names if (v := k.version_of(n)) is not None]
            if versions:
                out[kind_name] = max(versions, key=floors.version_key)
    return out


def host_library(soname: str, root: Path = Path("/"),
                 arch: str | None = None) -> ShippedLibrary | None:
    """``soname`` as this machine has it (the first of the usual library directories),
    its version the highest numbered symbol version it defines (``LIBVIRT_9.0.0`` ->
    9.0.0); None when it is not there."""
    multiarch = f"{arch or platform.machine()}-linux-gnu"
    path = next((p for d in _LIB_DIRS if (p := root / d.format(multiarch=multiarch)
                                           / soname).is_file()), None)
    if path is None:
        return None
    versions = [split[1] for n in defined_versions(path)
                if (split := floors.split_symbol_version(n)) is not None]
    if not versions:
        return None
    return ShippedLibrary(soname=soname, version=max(versions, key=floors.version_key),
                          source=str(path))


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def this_machine(root: Path = Path("/")) -> MachineFacts:
    """The facts of the system whose root is ``root``; those of the running system (``/``)
    are read once per process (every local host profile asks for them)."""
    return _running_system() if root == Path("/") else _facts(root)


@functools.cache
def _running_system() -> MachineFacts:
    return _facts(Path("/"))


def _facts(root: Path) -> MachineFacts:
    try:
        osr = parse_os_release((root / "etc/os-release").read_text())
    except OSError:
        osr = {}
    libc_family, libc_version = "unknown", "0"
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
        if text.startswith("glibc "):
            libc_family, libc_version = "glibc", text.split()[1]
    except (ValueError, OSError):
        pass
    if libc_family == "unknown":
        name, version = platform.libc_ver()
        if name:
            libc_family, libc_version = name, version
    return MachineFacts(
        distro=osr.get("ID", "linux"),
        release=osr.get("VERSION_ID", ""),
        codename=osr.get("VERSION_CODENAME", ""),
        arch=platform.machine(),
        libc_family=libc_family,
        libc_version=libc_version,
        kernel=platform.release(),
        gcc_runtime=gcc_runtime(root) if libc_family == "glibc" else {},
    )
