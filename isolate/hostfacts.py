"""Facts about the machine isolate runs on, read from the running system (no commands)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True, slots=True)
class MachineFacts:
    distro: str
    release: str
    codename: str
    arch: str
    libc_family: str
    libc_version: str
    kernel: str


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def this_machine(root: Path = Path("/")) -> MachineFacts:
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
    )
